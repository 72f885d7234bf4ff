/**
 * Strata for your own programs: a client for the Strata sockets and the
 * protocol's error values.
 *
 * ```ts
 * import { Client } from "./src/mod.ts";
 * const fs = await Client.connect("/run/strata/fs.sock");
 * const { entries } = await fs.call("fs.list", { path: "/srv/data" }, { token });
 * await fs.close();
 * ```
 * @module
 */

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
export type { Claims, Constraints, RateBucket } from "./token/claims.ts";
