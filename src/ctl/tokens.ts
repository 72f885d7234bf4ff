/**
 * The `token` commands' flags turned into identity's params: durations such
 * as `1h` into ttl_seconds, `--rights` and `--actions` lists, `50rps` rate
 * limits, and a CAP_ID or a token for revoke. Each mistake is a usage error
 * naming the flag and the fix.
 * @module
 */

import { isWithin, posix } from "../runtime/paths.ts";
import { actionOf, ANY_SERVICE, rightsOf, SERVICES } from "../policy/rights.ts";
import { unknownName, usage } from "./errors.ts";
import { parseDuration } from "./format.ts";
import { nearest } from "./methods.ts";

/** The longest ttl identity accepts: one year. */
export const MAX_TTL_SECONDS = 31_536_000;

/** The flags of `token issue`, as the command line gave them. */
export interface IssueFlags {
  service?: string;
  rights?: string;
  actions?: string;
  "path-prefix"?: string;
  ttl?: string;
  rate?: string;
  sub?: string;
}

/** A comma-separated list, trimmed, without empty items. */
export function splitList(text: string | undefined): string[] {
  return (text ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** Refuses a right or action the service does not have, suggesting the nearest. */
function checkKnown(flag: string, given: string[], known: readonly string[], service: string) {
  for (const g of given) {
    if (known.includes(g)) continue;
    throw unknownName(
      `${flag}: ${service} has no ${flag === "--rights" ? "right" : "action"} ${g}`,
      { near: nearest(g, known), otherwise: `${service} has ${known.join(", ")}` },
    );
  }
}

/** `--ttl` in whole seconds: 90s, 15m, 1h, 7d, 1h30m or plain seconds. */
export function ttlSeconds(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw usage(`--ttl: cannot read "${text}" as a duration`, "use e.g. 90s, 15m, 1h, 7d or 3600");
  }
  if (ms === 0) {
    // Not "no expiry" (as some tools read a zero ttl), nor the default: identity takes 1s to 365d.
    throw usage(
      `--ttl: ${text} is no lifetime; a token lives 1s to 365d, none for ever`,
      "leave --ttl out for 1h, or give e.g. 90s or 7d",
    );
  }
  if (ms < 1000) throw usage(`--ttl: ${text} is shorter than a second`, "use e.g. 90s or 1h");
  if (ms % 1000 !== 0) {
    throw usage(`--ttl: ${text} is not a whole number of seconds`, "use e.g. 90s or 1h");
  }
  const s = ms / 1000;
  if (s > MAX_TTL_SECONDS) {
    throw usage(`--ttl: ${text} is longer than a year`, "use at most 365d");
  }
  return s;
}

/** `--rate` as identity spells it: "50rps" (a bare number means per second). */
export function rateLimit(text: string): string {
  const m = /^\s*(\d+)\s*(rps|\/s)?\s*$/.exec(text);
  if (!m || Number(m[1]) < 1) {
    throw usage(`--rate: cannot read "${text}" as a rate`, "use requests per second, e.g. 50rps");
  }
  return `${Number(m[1])}rps`;
}

/** The params of identity.issue for the given flags. */
export function issueParams(f: IssueFlags): Record<string, unknown> {
  if (!f.service) {
    throw usage("token issue needs --service", `e.g. --service fs (one of ${SERVICES.join(", ")})`);
  }
  if (f.service !== ANY_SERVICE && !SERVICES.includes(f.service)) {
    throw unknownName(`--service: there is no service ${f.service}`, {
      near: nearest(f.service, SERVICES),
      otherwise: `use one of ${SERVICES.join(", ")}`,
    });
  }
  const rights = splitList(f.rights);
  const actions = splitList(f.actions);
  const bare = rights.find((r) => !r.includes("."));
  if (bare !== undefined) {
    throw usage(
      `--rights: ${bare} is not a full right`,
      `write ${f.service}.${bare}, or pass it as --actions ${bare}`,
    );
  }
  if (rights.length === 0 && actions.length === 0) {
    throw usage(
      "token issue needs --rights or --actions",
      `e.g. --rights ${f.service}.${f.service === "fs" ? "read" : "issue"}`,
    );
  }
  checkKnown("--rights", rights, rightsOf(f.service), f.service);
  if (f.service !== ANY_SERVICE) {
    checkKnown("--actions", actions, rightsOf(f.service).map(actionOf), f.service);
  }
  const params: Record<string, unknown> = { service: f.service };
  if (rights.length > 0) params.rights = rights;
  if (actions.length > 0) params.actions = actions;
  if (f["path-prefix"] !== undefined) params.path_prefix = f["path-prefix"];
  if (f.ttl !== undefined) params.ttl_seconds = ttlSeconds(f.ttl);
  if (f.rate !== undefined) params.rate_limit = rateLimit(f.rate);
  if (f.sub !== undefined) params.sub = f.sub;
  return params;
}

/**
 * The warning `token issue` prints for a path_prefix that neither lies in
 * a root fs serves nor holds one (fs would refuse every path of such a
 * token), or undefined. In cluster mode the roots are this node's: another
 * node's fs may serve the prefix.
 */
export function prefixWarning(
  prefix: string,
  roots: readonly string[],
  options: { cluster?: boolean } = {},
): string | undefined {
  // identity refuses a relative prefix with its own error.
  if (!prefix.startsWith("/")) return undefined;
  const p = posix.normalize(prefix).replace(/(.)\/$/, "$1");
  // A prefix around a root (/tmp around /tmp/export) lets the token use what is in the root.
  if (roots.some((root) => isWithin(p, root) || isWithin(root, p))) return undefined;
  const served = roots.length > 0 ? roots.join(", ") : "none";
  if (options.cluster) {
    return `warning: --path-prefix ${prefix} lies outside the roots this node's fs serves ` +
      `(${served}); it will refuse every path of this token (another node's fs may serve it)`;
  }
  return `warning: --path-prefix ${prefix} lies outside the roots fs serves (${served}); ` +
    "fs will refuse every path of this token";
}

const CAP_ID_RE = /^[0-9a-f]{32}$/;

/**
 * The params of identity.revoke for `token revoke ARG`: a cap_id, or a token
 * (sent as params.token, which a delegated revoker must do).
 */
export function revokeParams(arg: string): Record<string, unknown> {
  const a = arg.trim();
  if (a.startsWith("v4.")) return { token: a };
  if (CAP_ID_RE.test(a)) return { cap_id: a };
  throw usage(
    `${arg} is neither a cap_id (32 hex digits) nor a token (v4.public.…)`,
    "copy the cap_id from `strata-ctl token issue` or `strata-ctl token inspect`",
  );
}
