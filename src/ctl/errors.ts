/**
 * strata-ctl's errors as values: each carries its exit code, what went wrong,
 * what to try next, and the object `--json` prints for it.
 * @module
 */

import type { ErrorBody } from "../wire/errors.ts";
import { CHILD_SERVICES } from "../runtime/config.ts";

/** The services `strata-ctl svc start` can start. */
const SUPERVISED: readonly string[] = CHILD_SERVICES;

/**
 * Exit codes: 0 ok, 1 refused by a service, 2 usage or connection error, 3
 * the node or service asked about is not (all) Healthy (`status`, `svc
 * status`), as `systemctl status` exits 3 for a unit that is not running.
 */
export const EXIT = { OK: 0, REFUSED: 1, USAGE: 2, DEGRADED: 3 } as const;

/** A usage error: printed as one line, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The machine form of a failure, as `--json` prints it on stdout. */
export interface ErrorJson {
  /** The protocol code, when a service answered or could not be reached. */
  code?: number;
  /** A protocol error name, or "USAGE" for a command-line mistake. */
  name: string;
  message: string;
  details?: Record<string, unknown>;
  /** What to try next. */
  hint?: string;
}

/** A failure of a subcommand: a refusal (exit 1) or a usage/connection error (exit 2). */
export class CtlError extends Error {
  /** The exit code to leave with. */
  readonly exit: number;
  /** What to try next, or undefined when the message already says it. */
  readonly hint?: string;
  /** The error object printed by `--json`. */
  readonly json: ErrorJson;

  constructor(exit: number, json: ErrorJson) {
    super(json.message);
    this.name = "CtlError";
    this.exit = exit;
    this.hint = json.hint;
    this.json = json;
  }
}

/** Where to look up names, by the service that said NOT_FOUND. */
const LOOK_UP: Readonly<Record<string, string>> = {
  fs: "check the path with `strata-ctl fs ls FOLDER`",
  supervisor: "see the services with `strata-ctl svc list`",
  registry: "see what is registered with `strata-ctl registry list`",
  identity: "check the name or id",
};

/**
 * What to try after a refusal, by `details.reason`, then by protocol error
 * name (and, for NOT_FOUND, by the service of `method`).
 */
export function hintFor(error: Pick<ErrorBody, "name" | "details">, method = ""): string {
  const reason = typeof error.details?.reason === "string" ? error.details.reason : undefined;
  switch (reason) {
    case "no_token":
      return "the operator token is used when you may read it: run as its owner, " +
        "or give --state-dir (`strata-ctl token inspect` shows which token is sent)";
    case "expired":
    case "revoked":
      return "get a new token with `strata-ctl token issue`";
    case "unknown_key":
      // A token was given: telling its holder to pass one would be beside the point.
      return "get a new token with `strata-ctl token issue` (identity drops a retired key once " +
        "every token it signed has expired; in a cluster, another node's key counts once the " +
        "operator runs `strata-ctl cluster join NODE`)";
    case "missing_right":
    case "wrong_service":
      return "see what your token allows with `strata-ctl token inspect`, " +
        "and issue one with that right (`strata-ctl token issue --help`)";
    case "outside_prefix":
    case "symlink_escape":
    case "symlinked_prefix":
    case "path_swapped":
      return "use a path inside the token's path prefix and the exported roots " +
        "(`strata-ctl token inspect` shows the prefix)";
    case "strata_private":
      return "that is Strata's own state or runtime folder, never served; " +
        "export and ask for paths outside it";
    case "rate_limited":
      return "slow down: the token has a rate limit (`strata-ctl token inspect` shows it)";
    case "partitioned":
    case "etcd_unreachable":
      // The service is up: it is etcd, or the way to it, that does not answer.
      return "the service runs, but this node cannot reach etcd: check etcd and the network " +
        "to it (`strata-ctl cluster status` shows whether etcd answers); retry once it does";
    case "unendorsed_key":
      // Also a rotated-in key awaiting `cluster endorse`: the node itself may well be endorsed.
      // And a key its node dropped: no endorsement brings that back, a new token is the way.
      return "the cluster root does not endorse the token's key (the message says why): for a " +
        "key its node still signs with, the operator runs `strata-ctl cluster join NODE`, or " +
        "`cluster endorse NODE` after a key rotation (docs/cluster.md); for one it dropped, " +
        "get a new token";
  }
  switch (error.name) {
    case "UNAUTHENTICATED":
      return "pass a token with -token or STRATA_TOKEN, or check it with `strata-ctl token inspect`";
    case "PERMISSION_DENIED":
      return "see what your token allows with `strata-ctl token inspect`";
    case "NOT_FOUND":
      return LOOK_UP[method.split(".")[0]] ?? "check the name or path";
    case "INVALID_ARGUMENT":
      return "fix the value named above; `--help` after the command shows an example";
    case "RESOURCE_EXHAUSTED":
      return "wait a moment and try again";
    case "CONFLICT":
      return "that entry belongs to someone else; use another name";
    case "UNAVAILABLE":
      return SUPERVISED.includes(method.split(".")[0])
        ? `start it with \`strata-ctl svc start ${method.split(".")[0]}\` ` +
          "(`strata-ctl svc list` shows its state)"
        : "see `strata-ctl svc list` for the state of each service";
    default:
      return "this is a bug in the service; its log (the supervisor's output) has the details";
  }
}

/**
 * Services whose NOT_FOUND message names the listing to look in, in
 * strata-ctl's words too (the registry's: "registry.list (`strata-ctl
 * registry list`) shows what is"): strata-ctl adds no second pointer.
 */
const NAMES_ITS_LISTING: ReadonlySet<string> = new Set(["registry"]);

/**
 * A CtlError for a service's refusal of `method` (exit 1), with a hint unless
 * the message already says what to try.
 */
export function refusal(error: ErrorBody, method?: string): CtlError {
  const said = error.name === "NOT_FOUND" &&
    NAMES_ITS_LISTING.has((method ?? "").split(".")[0]);
  return new CtlError(EXIT.REFUSED, {
    code: error.code,
    name: error.name,
    message: error.message,
    ...(error.details ? { details: error.details } : {}),
    ...(said ? {} : { hint: hintFor(error, method) }),
  });
}

/** A CtlError for a mistake on the command line (exit 2). */
export function usage(message: string, hint?: string): CtlError {
  return new CtlError(EXIT.USAGE, { name: "USAGE", message, ...(hint ? { hint } : {}) });
}

/** What {@link unknownName} suggests: the nearest known name, else another hint. */
export interface Suggestion {
  near: string | undefined;
  otherwise: string;
}

/**
 * A usage error for a name that does not exist: the hint is "did you mean
 * NEAR?" when there is a near one, else `otherwise`.
 */
export function unknownName(message: string, s: Suggestion): CtlError {
  return usage(message, s.near ? `did you mean ${s.near}?` : s.otherwise);
}

/** The one line printed on stderr for a failure: "strata-ctl: what; what to try". */
export function errorLine(message: string, hint?: string): string {
  return `strata-ctl: ${message}${hint ? `; ${hint}` : ""}`;
}
