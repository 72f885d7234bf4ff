/** The Strata release this build is. */
export const VERSION = "0.4.0";
