/**
 * Strata for your own programs: `Strata.connect()`, which finds a node and a
 * token as strata-ctl does and offers typed calls; a plain client for the
 * Strata sockets; and the protocol's error values. docs/library.md lists the
 * Deno flags a program needs.
 *
 * ```ts
 * import { Strata } from "./src/mod.ts";
 * const strata = await Strata.connect();
 * const { entries } = await strata.fs.list("/tmp");
 * await strata.close();
 * ```
 * @module
 */

export {
  type ConnectOptions,
  type DirEntry,
  type FsCalls,
  type IdentityCalls,
  type Introspection,
  type IssuedToken,
  type IssueParams,
  type Listing,
  type LiveCapabilities,
  type LiveCapability,
  type NodeStatus,
  type Revocation,
  Strata,
  type SupervisorCalls,
} from "./strata.ts";

export {
  callOnce,
  type CallOptions,
  Client,
  type ClientOptions,
  RemoteError,
} from "./server/client.ts";
export type { ErrorResponse, OkResponse, Request, Response } from "./wire/envelope.ts";
export { type ErrorBody, ErrorCode, type ErrorName, StrataError } from "./wire/errors.ts";
export { MAX_FRAME } from "./wire/frame.ts";
export {
  CHILD_SERVICES,
  type ChildService,
  type ClusterConfig,
  DEFAULT_LAYOUT,
  type Layout,
  type ServiceName,
  socketPath,
  type TlsFiles,
} from "./runtime/config.ts";
export { API, type ApiService, type SupervisedService } from "./api/mod.ts";
export type { ListedCapability } from "./api/identity.ts";
export type { Claims, Constraints, RateBucket } from "./token/claims.ts";
