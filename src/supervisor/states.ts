/**
 * Service states and the one table of allowed transitions. Any other
 * transition is a bug and throws.
 * @module
 */

/** The state of a supervised service. */
export type State =
  | "Declared"
  | "Starting"
  | "Healthy"
  | "Crashed"
  | "Restarting"
  | "Stopped"
  | "Quarantined";

/** From each state, the states it may move to. */
export const TRANSITIONS: Readonly<Record<State, readonly State[]>> = {
  // Declared: known, not yet started (waiting for its dependencies).
  Declared: ["Starting", "Stopped"],
  // Starting: spawned, not yet answering its health call.
  Starting: ["Healthy", "Crashed", "Stopped"],
  Healthy: ["Crashed", "Stopped"],
  // Crashed: exited (or never became ready) without being asked to.
  Crashed: ["Restarting", "Quarantined", "Stopped"],
  // Restarting: waiting out the backoff before the next start.
  Restarting: ["Starting", "Stopped"],
  Stopped: ["Starting"],
  // Quarantined: crashed too often; only an operator's start brings it back.
  Quarantined: ["Starting", "Stopped"],
};

/** Throws unless `from → to` is in the table. */
export function assertTransition(from: State, to: State): void {
  if (!TRANSITIONS[from].includes(to)) {
    throw new Error(`illegal service state transition ${from} → ${to}`);
  }
}
