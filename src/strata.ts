/**
 * `await Strata.connect()`: a node found the way strata-ctl finds it (the
 * runtime dir from STRATA_RUNTIME_DIR or the places the supervisor may run,
 * the token from the options, STRATA_TOKEN or a readable operator token),
 * with typed calls: `strata.fs.list(path)`, `strata.fs.readFile(path)`,
 * `strata.identity.issue({...})`, … One connection per service, opened on
 * first use; a refusal throws RemoteError with the protocol code.
 * @module
 */

import { SERVICES } from "./api/mod.ts";
import type { ListedCapability } from "./api/identity.ts";
import { Client } from "./server/client.ts";
import { type Layout, type ServiceName, socketPath, stateFiles } from "./runtime/config.ts";
import { findRuntimeDir, readEnv, stateDirCandidates } from "./runtime/locate.ts";
import { StrataError } from "./wire/errors.ts";
import type { Claims } from "./token/claims.ts";

/** Where to connect and as whom; everything is found as strata-ctl finds it when left out. */
export interface ConnectOptions {
  /** The node's runtime dir (default: STRATA_RUNTIME_DIR, else where a supervisor.sock is). */
  runtimeDir?: string;
  /** The state dir holding operator.token (default: STRATA_STATE_DIR, else the usual ones). */
  stateDir?: string;
  /** The token to present (default: STRATA_TOKEN, else the operator token when readable). */
  token?: string;
  /** How long to wait for each answer, in ms (default 10000). */
  timeoutMs?: number;
  /**
   * Cluster mode: call the services of this node (found through this node's
   * registry, `registry.resolve {service, node}`) over their tcp:// endpoint.
   */
  node?: string;
  /** With `node`: the cluster CA (PEM file) the other node's certificate must chain to. */
  caFile?: string;
  /**
   * With `node`: the certificate (PEM file) to present to the other node, one
   * the cluster CA signed (its tcp:// endpoints are mutual TLS).
   */
  certFile?: string;
  /** With `node`: the private key (PEM file) of `certFile`. */
  keyFile?: string;
}

/** One entry of a folder, as fs.list returns it. */
export interface DirEntry {
  /** The name within the folder. */
  name: string;
  /** A folder. */
  is_dir: boolean;
  /** A symlink (reported, not followed). */
  is_symlink: boolean;
  /** Size in bytes. */
  size: number;
}

/** What fs.list returns. */
export interface Listing {
  /** The folder, resolved. */
  path: string;
  /** Its entries, sorted by name. */
  entries: DirEntry[];
  /** More entries than the limit. */
  truncated?: boolean;
}

/** What identity.issue takes (api/protocol.md lists each field's limits). */
export interface IssueParams {
  /** The service the token is for ("fs"). */
  service: string;
  /** Rights without the service prefix (["list", "open", "read"]). */
  actions?: string[];
  /** Full rights (["fs.list"]). */
  rights?: string[];
  /** Confine file access to this folder. */
  path_prefix?: string;
  /** Lifetime in seconds (default 3600). */
  ttl_seconds?: number;
  /** A request rate limit ("50rps"). */
  rate_limit?: string;
  /** Who it is for (default: yours). */
  sub?: string;
}

/** What identity.issue returns. */
export interface IssuedToken {
  /** The token to present. */
  token: string;
  /** Its capability id (to revoke it by). */
  cap_id: string;
  /** When it expires (unix seconds). */
  expires: number;
}

/** What identity.introspect returns. */
export interface Introspection {
  /** Whether every service would accept it now. */
  valid: boolean;
  /** What it says, when it could be read. */
  claims?: Claims;
  /** Why it is not valid ("expired", "revoked", …). */
  reason?: string;
}

/** What identity.revoke returns. */
export interface Revocation {
  /** Always "revoked". */
  status: "revoked";
  /** The capability revoked. */
  cap_id: string;
  /** It was revoked already. */
  already?: boolean;
}

/** One live capability, as identity.list returns it (declared with the method, in src/api/). */
export type LiveCapability = ListedCapability;

/** What identity.list returns. */
export interface LiveCapabilities {
  /** Newest first. */
  capabilities: LiveCapability[];
  /** How many matched. */
  total: number;
  /** More matched than were returned. */
  truncated?: boolean;
  /** Records identity dropped to stay within bounds (operator only). */
  dropped?: number;
}

/** What supervisor.status returns. */
export interface NodeStatus {
  /** The node's id. */
  node_id: string;
  /** Seconds since the supervisor started. */
  uptime_sec: number;
  /** Strata's version. */
  version: string;
  /** How many services run, and how many of them are Healthy. */
  services: { total: number; healthy: number };
}

/** The largest fs.read (fs's MAX_READ). */
const READ_SIZE = 767 * 1024;

/** fs's methods, typed. */
export interface FsCalls {
  /** A folder's entries (sorted by name); needs fs.list. */
  list(path: string, options?: { limit?: number }): Promise<Listing>;
  /** A whole file's bytes (opened, read to the end, closed); needs fs.open and fs.read. */
  readFile(path: string): Promise<Uint8Array>;
  /** A whole file as UTF-8 text; needs fs.open and fs.read. */
  readText(path: string): Promise<string>;
  /** The export roots fs serves (public). */
  roots(): Promise<string[]>;
}

/** identity's methods, typed. */
export interface IdentityCalls {
  /** A new token no broader than yours; needs identity.issue. */
  issue(params: IssueParams): Promise<IssuedToken>;
  /** Revokes a capability (by cap_id or by the token itself); needs identity.revoke. */
  revoke(capIdOrToken: string, options?: { confirmRoot?: boolean }): Promise<Revocation>;
  /** Whether a token is valid, and its claims (public). */
  introspect(token: string): Promise<Introspection>;
  /** The live capabilities issued (yours and those delegated from it); needs identity.list. */
  list(filter?: { service?: string; sub?: string; revoked?: boolean; limit?: number }): Promise<
    LiveCapabilities
  >;
}

/** The supervisor's methods, typed. */
export interface SupervisorCalls {
  /** Node id, uptime, version and how many services are healthy (public). */
  status(): Promise<NodeStatus>;
}

/** A connection to a node: typed calls per service, and `call` for any method. */
export class Strata {
  /** Where the node is. */
  readonly layout: Layout;
  /** fs's methods. */
  readonly fs: FsCalls;
  /** identity's methods. */
  readonly identity: IdentityCalls;
  /** The supervisor's methods. */
  readonly supervisor: SupervisorCalls;
  #token?: string;
  #timeoutMs: number;
  #remote?: { node: string; caFile?: string; certFile?: string; keyFile?: string };
  #clients = new Map<string, Promise<Client>>();

  private constructor(
    layout: Layout,
    token: string | undefined,
    options: {
      timeoutMs: number;
      node?: string;
      caFile?: string;
      certFile?: string;
      keyFile?: string;
    },
  ) {
    const timeoutMs = options.timeoutMs;
    this.layout = layout;
    if (options.node !== undefined) {
      const { caFile, certFile, keyFile } = options;
      this.#remote = { node: options.node, caFile, certFile, keyFile };
    }
    this.#token = token;
    this.#timeoutMs = timeoutMs;
    this.fs = {
      list: (path, o = {}) => this.call<Listing>("fs.list", { path, ...o }),
      readFile: (path) => this.#readFile(path),
      readText: async (path) => new TextDecoder().decode(await this.#readFile(path)),
      roots: async () => (await this.call<{ roots: string[] }>("fs.roots")).roots,
    };
    this.identity = {
      issue: (params) => this.call<IssuedToken>("identity.issue", { ...params }),
      revoke: (target, o = {}) =>
        this.call<Revocation>("identity.revoke", {
          ...(/^[0-9a-f]{32}$/.test(target) ? { cap_id: target } : { token: target }),
          ...(o.confirmRoot ? { confirm_root: true } : {}),
        }),
      introspect: (token) => this.call<Introspection>("identity.introspect", { token }),
      list: (filter = {}) => this.call<LiveCapabilities>("identity.list", { ...filter }),
    };
    this.supervisor = { status: () => this.call<NodeStatus>("supervisor.status") };
  }

  /**
   * Finds the node and the token as strata-ctl does. Throws UNAVAILABLE
   * naming each place it looked when no supervisor is running, and
   * INVALID_ARGUMENT for an empty token (never "all rights").
   */
  static async connect(options: ConnectOptions = {}): Promise<Strata> {
    let runtimeDir = options.runtimeDir;
    if (runtimeDir === undefined) {
      const found = findRuntimeDir();
      if (found.dir === undefined) {
        throw new StrataError(
          "UNAVAILABLE",
          `no Strata supervisor is running: looked in ${found.lookedIn.join(", ")}; start one ` +
            "(deno task start), or set STRATA_RUNTIME_DIR (or runtimeDir) to its folder",
          { reason: "not_running" },
        );
      }
      runtimeDir = found.dir;
    }
    const stateDirs = options.stateDir !== undefined ? [options.stateDir] : stateDirCandidates();
    const token = chooseToken(options.token, stateDirs);
    const layout: Layout = { runtimeDir, stateDir: stateDirs[0], nodeId: "local", fsRoots: [] };
    const strata = new Strata(layout, token, {
      timeoutMs: options.timeoutMs ?? 10_000,
      node: options.node,
      caFile: options.caFile,
      certFile: options.certFile,
      keyFile: options.keyFile,
    });
    // Reach the node now, so a wrong folder fails here rather than at the first call.
    await strata.#client("supervisor");
    return strata;
  }

  /** Whether requests carry a token (from the options, STRATA_TOKEN or the operator token). */
  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  /** Calls any method with the connection's token; a refusal throws RemoteError. */
  async call<T = Record<string, unknown>>(
    method: string,
    params?: Record<string, unknown>,
  ): Promise<T> {
    const client = await this.#client(method.split(".")[0]);
    return await client.call<T>(method, params, { token: this.#token });
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(clients.map((c) => c.then((c) => c.close()).catch(() => {})));
  }

  /** The connection to `service`, opened on first use (again after it broke). */
  #client(service: string): Promise<Client> {
    const open = this.#clients.get(service);
    if (open) {
      return open.then((c) => {
        if (!c.closed) return c;
        this.#clients.delete(service);
        return this.#client(service);
      });
    }
    if (!(SERVICES as readonly string[]).includes(service)) {
      return Promise.reject(
        new StrataError(
          "INVALID_ARGUMENT",
          `no service ${service}: a method begins with its service`,
        ),
      );
    }
    const remote = service === "supervisor" || service === "registry" ? undefined : this.#remote;
    const connecting = remote
      ? this.#remoteEndpoint(service, remote.node).then((endpoint) =>
        Client.connect(endpoint, {
          timeoutMs: this.#timeoutMs,
          caFile: remote.caFile,
          certFile: remote.certFile,
          keyFile: remote.keyFile,
        })
      )
      : Client.connect(socketPath(this.layout, service as ServiceName), {
        timeoutMs: this.#timeoutMs,
      });
    this.#clients.set(service, connecting);
    connecting.catch(() => this.#clients.delete(service));
    return connecting;
  }

  /** The tcp:// endpoint of `service` on `node`, from this node's registry. */
  async #remoteEndpoint(service: string, node: string): Promise<string> {
    const registry = await this.#client("registry");
    const r = await registry.call<{ endpoint: string; endpoints?: string[] }>(
      "registry.resolve",
      { service, node },
    );
    const tcp = (r.endpoints ?? [r.endpoint]).find((e) => e.startsWith("tcp://"));
    if (!tcp) {
      throw new StrataError(
        "NOT_FOUND",
        `service ${service} on node ${node} has no tcp:// endpoint; it must listen on one ` +
          "(docs/cluster.md)",
      );
    }
    return tcp;
  }

  async #readFile(path: string): Promise<Uint8Array> {
    const { handle } = await this.call<{ handle: string }>("fs.open", { path });
    const parts: Uint8Array[] = [];
    let offset = 0;
    try {
      while (true) {
        const r = await this.call<{ data_b64: string; eof: boolean }>("fs.read", {
          handle,
          offset,
          size: READ_SIZE,
        });
        const bytes = Uint8Array.fromBase64(r.data_b64);
        parts.push(bytes);
        offset += bytes.length;
        if (r.eof || bytes.length === 0) break;
      }
    } finally {
      await this.call("fs.close", { handle }).catch(() => {});
    }
    const out = new Uint8Array(offset);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

/** The token: given, else STRATA_TOKEN, else the first readable operator token. */
function chooseToken(given: string | undefined, stateDirs: readonly string[]): string | undefined {
  const empty = () =>
    new StrataError(
      "INVALID_ARGUMENT",
      "token: empty; give a token, or leave it out (and unset STRATA_TOKEN) to use the " +
        "operator token",
    );
  if (given !== undefined) {
    if (given.trim() === "") throw empty();
    return given;
  }
  const env = readEnv("STRATA_TOKEN");
  if (env !== undefined) return env;
  if (envIsEmpty("STRATA_TOKEN")) throw empty();
  for (const dir of stateDirs) {
    try {
      const text = Deno.readTextFileSync(stateFiles({ ...NO_LAYOUT, stateDir: dir }).operatorToken)
        .trim();
      if (text) return text;
    } catch {
      // Not there, or not ours to read: the next place.
    }
  }
  return undefined;
}

/** Whether an environment variable is set but empty (false when it may not be read). */
function envIsEmpty(name: string): boolean {
  try {
    return Deno.env.get(name) === "";
  } catch {
    return false;
  }
}

const NO_LAYOUT: Layout = { runtimeDir: "/", stateDir: "/", nodeId: "local", fsRoots: [] };
