/**
 * How strata-ctl reaches a service and which token it presents: endpoints
 * come from the registry, falling back to the socket convention when the
 * registry is down; the token is -token, else STRATA_TOKEN, else the
 * operator token when the caller may read it (only when no token was given
 * at all: an empty -token or STRATA_TOKEN is a usage error, never "all rights").
 * @module
 */

import { callOnce, type CallOptions, Client } from "../server/client.ts";
import type { Response } from "../wire/envelope.ts";
import { StrataError } from "../wire/errors.ts";
import {
  CHILD_SERVICES,
  type Layout,
  type ServiceName,
  socketPath,
  stateFiles,
} from "../runtime/config.ts";
import { usage } from "./errors.ts";
import { SERVICES } from "../api/mod.ts";

/** Services with a conventional socket: those of the method table. */
const KNOWN: readonly string[] = SERVICES;

/** How long ctl waits for the registry before using the convention. */
const RESOLVE_TIMEOUT_MS = 500;

/** Reads an environment variable the program may not be allowed to read. */
export function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The operator token, when this user may read it. */
export function operatorToken(layout: Layout): string | undefined {
  try {
    return Deno.readTextFileSync(stateFiles(layout).operatorToken).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** STRATA_TOKEN as set, "" included (undefined when unset or unreadable). */
export function envToken(): string | undefined {
  try {
    return Deno.env.get("STRATA_TOKEN");
  } catch {
    return undefined;
  }
}

/**
 * Refuses a given but empty token (`-token ""`, or STRATA_TOKEN set to ""):
 * a usage error (exit 2), whether or not the command sends a token, so the
 * operator token is never presented in place of a token left empty.
 */
export function refuseEmptyToken(explicit?: string): void {
  if (explicit !== undefined && explicit.trim() === "") {
    throw usage(
      "-token is empty; give a token, or leave -token out to use STRATA_TOKEN or the operator token",
    );
  }
  const env = explicit === undefined ? envToken() : undefined;
  if (env !== undefined && env.trim() === "") {
    throw usage(
      "STRATA_TOKEN is set but empty; set it to a token, or unset it (unset STRATA_TOKEN) " +
        "to use the operator token",
    );
  }
}

/**
 * The token to send: explicit, else STRATA_TOKEN, else the operator token.
 * A given but empty token throws a usage error (exit 2).
 */
export function chooseToken(layout: Layout, explicit?: string): string | undefined {
  refuseEmptyToken(explicit);
  return explicit ?? envToken() ?? operatorToken(layout);
}

/**
 * The endpoint of a service: via the registry (unix:// or tcp://), else its
 * socket by convention.
 */
export async function endpointFor(layout: Layout, service: string): Promise<string> {
  const conventional = KNOWN.includes(service)
    ? `unix://${socketPath(layout, service as ServiceName)}`
    : undefined;
  if (service !== "registry" && service !== "supervisor") {
    try {
      const r = await callOnce<{ endpoint: string }>(
        socketPath(layout, "registry"),
        "registry.resolve",
        { service },
        { timeoutMs: RESOLVE_TIMEOUT_MS, connectTimeoutMs: RESOLVE_TIMEOUT_MS },
      );
      if (r.endpoint.startsWith("unix://") || r.endpoint.startsWith("tcp://")) return r.endpoint;
    } catch {
      // Registry down or service unknown to it: use the convention.
    }
  }
  if (!conventional) {
    throw new StrataError("NOT_FOUND", `no service ${service} is registered`);
  }
  return conventional;
}

/**
 * Cluster mode: the tcp:// endpoint of `service` on node `node`, from this
 * node's registry (`registry.resolve {service, node}`); another node is
 * reached only over tcp:// (its sockets are on its machine).
 */
export async function nodeEndpointFor(
  layout: Layout,
  service: string,
  options: { node: string },
): Promise<string> {
  if (!layout.cluster) {
    throw usage(
      `--node ${options.node}: this node is not in a cluster; set STRATA_CLUSTER and friends ` +
        "(docs/cluster.md) or leave --node out",
    );
  }
  const r = await callOnce<{ endpoint: string; endpoints?: string[]; node?: string }>(
    socketPath(layout, "registry"),
    "registry.resolve",
    { service, node: options.node },
    { timeoutMs: RESOLVE_TIMEOUT_MS * 4, connectTimeoutMs: RESOLVE_TIMEOUT_MS * 4 },
  );
  if (r.node !== undefined && r.node === layout.nodeId) return r.endpoint;
  const tcp = (r.endpoints ?? [r.endpoint]).find((e) => e.startsWith("tcp://"));
  if (!tcp) {
    throw new StrataError(
      "NOT_FOUND",
      `service ${service} on node ${options.node} has no tcp:// endpoint; start it there ` +
        `with --${service}-listen=tcp://HOST:PORT (docs/cluster.md)`,
    );
  }
  return tcp;
}

/**
 * How strata-ctl dials a tcp:// endpoint: the server checked against the
 * cluster CA (--cluster-ca), else the layout's CA (--tls-ca); in cluster mode
 * with peers to dial it presents the node's certificate (--tls-cert,
 * --tls-key: mutual TLS), which is when its grants let it read the key.
 */
export function tlsOf(
  layout: Layout,
): { caFile?: string; certFile?: string; keyFile?: string } {
  const mine = (layout.cluster?.peers ?? []).length > 0 && layout.tls?.cert && layout.tls.key
    ? { certFile: layout.tls.cert, keyFile: layout.tls.key }
    : {};
  return { caFile: layout.cluster?.ca ?? layout.tls?.ca, ...mine };
}

/**
 * A connection to `service` at the endpoint {@link endpointFor} finds (or,
 * with `node`, its tcp:// endpoint on that node), dialled as {@link tlsOf} says.
 */
export async function connectTo(
  layout: Layout,
  service: string,
  options: { timeoutMs?: number; node?: string } = {},
): Promise<Client> {
  const endpoint = options.node !== undefined
    ? await nodeEndpointFor(layout, service, { node: options.node })
    : await endpointFor(layout, service);
  return await Client.connect(endpoint, { timeoutMs: options.timeoutMs, ...tlsOf(layout) });
}

/** What {@link unreachableAdvice} may add: where the launcher looked for a supervisor. */
export interface AdviceOptions {
  /** Each runtime dir the launcher tried, with what it found ("DIR: no supervisor.sock"). */
  lookedIn?: readonly string[];
}

/** Why a service could not be reached, and what to do about it. */
export interface Advice {
  message: string;
  hint: string;
}

/** The hint for a socket this user may not connect to (the node is running). */
const NOT_YOURS = "run strata-ctl as the user the node runs as, or as a member of its socket " +
  "group when the node runs with group access (STRATA_GROUP_ACCESS=1, --group-access)";

/**
 * Advice for an unreachable service: start the supervisor when it is the one
 * missing (naming every place the launcher looked for it), else start just
 * that service through the running supervisor; a socket this user may not
 * use is not called "not running".
 */
export function unreachableAdvice(
  service: string,
  err: StrataError,
  options: AdviceOptions = {},
): Advice {
  // The client's details.reason says why (src/server/transport.ts), not the message's words.
  const reason = err.details?.reason;
  const denied = reason === "permission_denied";
  if (service === "supervisor") {
    const looked = options.lookedIn?.length ? `; looked in ${options.lookedIn.join(", ")}` : "";
    if (denied) {
      return {
        message: `cannot use the supervisor's socket (${err.message}${looked})`,
        hint: NOT_YOURS,
      };
    }
    return {
      message: `the supervisor is not running (${err.message}${looked})`,
      hint: "start it with `deno task start` (or `systemctl start strata`), " +
        "or point --runtime-dir (STRATA_RUNTIME_DIR) at the folder it runs in",
    };
  }
  const message = `cannot reach ${service}: ${err.message}`;
  if (denied) return { message, hint: NOT_YOURS };
  // A tcp:// endpoint (`--node`): `svc start` here would start this node's service, not that one.
  const where = err.details?.endpoint;
  if (typeof where === "string" && where.startsWith("tcp://")) {
    if (reason === "not_permitted") {
      return {
        message,
        hint: "strata-ctl dials only the peers of --cluster-peers (STRATA_CLUSTER_PEERS): add " +
          `${where.slice("tcp://".length)} there`,
      };
    }
    return {
      message,
      hint: "`strata-ctl cluster status` shows every node's services and their health",
    };
  }
  if ((CHILD_SERVICES as readonly string[]).includes(service)) {
    return {
      message,
      hint: `start it with \`strata-ctl svc start ${service}\` ` +
        "(`strata-ctl svc list` shows its state and last exit)",
    };
  }
  return {
    message,
    hint: "it is not a supervised service: start the program that serves it " +
      "(`strata-ctl registry list` shows what is registered)",
  };
}

/** One request to the service that serves `method`. */
export async function requestOnce(
  layout: Layout,
  method: string,
  params: Record<string, unknown> | undefined,
  options: CallOptions & { node?: string },
): Promise<Response> {
  const service = method.split(".")[0];
  const client = await connectTo(layout, service, {
    timeoutMs: options.timeoutMs,
    node: options.node,
  });
  try {
    return await client.request(method, params, options);
  } finally {
    await client.close();
  }
}
