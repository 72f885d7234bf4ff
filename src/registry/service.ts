/**
 * The registry: where services are found. Entries written by the supervisor
 * (requests on its private pipe, served by the same request path as the
 * socket's, as the SUPERVISOR principal) describe the services it runs; holders of the
 * registry.register right may add their own, within limits, never under a
 * name the supervisor runs, and only for as long as their token lives.
 * @module
 */

import { invalidArgument, notFound, permissionDenied, StrataError } from "../wire/errors.ts";
import { formatEndpoint, parseEndpoint } from "../wire/endpoint.ts";
import type { Method } from "../server/server.ts";
import { bindMethods } from "../server/bind.ts";
import { SERVICES } from "../api/mod.ts";
import { compareNames } from "../api/method.ts";
import { REGISTRY_METHODS } from "../api/registry.ts";
import type { Audit } from "../runtime/audit.ts";
import { type Clock, systemClock } from "../runtime/clock.ts";
import {
  MemoryRegistryStore,
  type RegistryRecord,
  type RegistryStore,
} from "../sources/registry_store.ts";
import type { Capability } from "../token/claims.ts";
import type { ClusterEntry } from "../sources/etcd_registry_store.ts";

/**
 * Where a NOT_FOUND points: the method, and the strata-ctl command that calls
 * it, so strata-ctl prints this one pointer and adds no second one.
 */
const LISTED = "registry.list (`strata-ctl registry list`)";

/** One registered service. */
export interface Entry {
  service: string;
  endpoint: string;
  api_v: number;
  registered_at: string;
  /** "supervisor" or the cap_id of the token that registered it. */
  owner: string;
}

/** What a registration says. */
export interface Registration {
  service: string;
  endpoint: string;
  api_v: number;
}

/** Who registers: the supervisor, or a capability (whose lineage and expiry bound the entry). */
export type Owner = typeof SUPERVISOR | Capability;

/** The owner name of entries the supervisor wrote. */
export const SUPERVISOR_OWNER = "supervisor";

/** The supervisor as an owner. */
export const SUPERVISOR = { capId: SUPERVISOR_OWNER } as const;

/** Names only the supervisor may register: the services it runs, and itself. */
export const RESERVED: readonly string[] = SERVICES;

/**
 * Limits of the table: entries per capability, per delegation tree (an entry
 * counts against every ancestor of its owner below the operator token), and
 * in all, of which the last `operatorReserve` only root tokens may take.
 */
export const REGISTRY_LIMITS = { entries: 256, perOwner: 16, perTree: 64, operatorReserve: 32 };

/** A row of the table: the entry, the owner's lineage and expiry (see sources/registry_store). */
type Row = RegistryRecord;

/**
 * Checks an endpoint URL: unix:///absolute/path.sock, or tcp://host:port
 * (served with TLS; see server/transport.ts). Returns its normal form.
 */
export function checkEndpoint(endpoint: string): string {
  if (!/^(unix|tcp):\/\//.test(endpoint)) {
    throw invalidArgument(
      'params.endpoint: must be "unix:///absolute/path.sock" or "tcp://host:port"',
    );
  }
  return formatEndpoint(parseEndpoint(endpoint, "params.endpoint"));
}

function isSupervisor(owner: Owner): boolean {
  return owner.capId === SUPERVISOR_OWNER;
}

/** Options for {@link Registry}. */
export interface RegistryOptions {
  /** When entries expire with their owner's token (default {@link systemClock}). */
  clock?: Clock;
  /** Where the table is kept (default a {@link MemoryRegistryStore}). */
  store?: RegistryStore;
  /** Cluster mode: this node's id and every node's rows (an EtcdRegistryStore). */
  cluster?: ClusterView;
}

/** What the registry of a cluster node sees of the other nodes. */
export interface ClusterView {
  /** This node's id. */
  node: string;
  /** Every node's rows as last read from etcd. */
  entries(): ClusterEntry[];
  /** Every endpoint of one of this node's rows (its socket, and its tcp:// one). */
  endpointsOf(record: RegistryRecord): string[];
  /** When every node's rows were last read whole from etcd (ms since the epoch; 0: never). */
  readAt?(): number;
}

/** A cluster entry as answered: its endpoint for other nodes is its tcp:// one when it has one. */
export interface NodeEntry extends Entry {
  node: string;
  endpoints: string[];
}

/** A time of the last read of etcd, RFC 3339, or null when there was none yet. */
function readAtText(ms: number): string | null {
  return ms > 0 ? new Date(ms).toISOString() : null;
}

/** The endpoint another node dials: the first tcp:// one, else the first. */
function remoteEndpoint(endpoints: string[]): string {
  return endpoints.find((e) => e.startsWith("tcp://")) ?? endpoints[0];
}

/** The registry's table. */
export class Registry {
  #rows: RegistryStore;
  #audit?: Audit;
  #clock: Clock;
  #cluster?: ClusterView;

  constructor(audit?: Audit, options: RegistryOptions = {}) {
    this.#audit = audit;
    this.#cluster = options.cluster;
    this.#clock = options.clock ?? systemClock;
    this.#rows = options.store ?? new MemoryRegistryStore();
  }

  /** Adds or replaces an entry; only its owner (or the supervisor) may replace it. */
  register(reg: Registration, owner: Owner): Entry {
    const { service } = reg;
    const sup = isSupervisor(owner);
    if (!sup && RESERVED.includes(service)) {
      throw permissionDenied(`service ${service} is run by the supervisor; register another name`, {
        reason: "reserved_name",
      });
    }
    const old = this.#live(service);
    if (old && old.owner !== owner.capId && !sup) {
      throw new StrataError(
        "CONFLICT",
        `service ${service} is registered by ${old.owner}; only it may change the entry`,
      );
    }
    if (!old && !sup) {
      const tree = (owner as Capability).lineage.slice(1);
      const room = tree.length > 0
        ? REGISTRY_LIMITS.entries - REGISTRY_LIMITS.operatorReserve
        : REGISTRY_LIMITS.entries;
      if (this.#rows.size >= room) {
        throw new StrataError("RESOURCE_EXHAUSTED", "the registry is full; deregister something");
      }
      const mine = this.#rows.snapshot().filter((r) => r.owner === owner.capId).length;
      if (mine >= REGISTRY_LIMITS.perOwner) {
        throw new StrataError(
          "RESOURCE_EXHAUSTED",
          `this capability already registered ${mine} services, the most one may`,
        );
      }
      for (const id of tree) {
        const used = this.#rows.snapshot().filter((r) => r.lineage.includes(id)).length;
        if (used >= REGISTRY_LIMITS.perTree) {
          throw new StrataError(
            "RESOURCE_EXHAUSTED",
            `the delegation tree of capability ${id} already registered ${used} services, ` +
              "the most one may; deregister some",
          );
        }
      }
    }
    const row: Row = {
      service,
      endpoint: checkEndpoint(reg.endpoint),
      api_v: reg.api_v,
      registered_at: new Date(this.#clock.now()).toISOString(),
      owner: owner.capId,
      lineage: sup ? [] : (owner as Capability).lineage,
      expMs: sup ? Infinity : (owner as Capability).expMs,
    };
    this.#rows.put(row);
    this.#audit?.event("registry.register", { service, endpoint: row.endpoint, owner: row.owner });
    return this.#entry(row);
  }

  /** Removes an entry if `owner` owns it (the supervisor may remove any). */
  deregister(service: string, owner: Owner): boolean {
    const old = this.#live(service);
    if (!old) return false;
    if (old.owner !== owner.capId && !isSupervisor(owner)) {
      throw new StrataError("CONFLICT", `service ${service} is registered by ${old.owner}`);
    }
    this.#rows.delete(service);
    this.#audit?.event("registry.deregister", { service, owner: owner.capId });
    return true;
  }

  /** Whether any entry was registered under a capability (one a revocation could drop). */
  holdsGranted(): boolean {
    return this.#rows.snapshot().some((row) => row.lineage.length > 0);
  }

  /** Drops the entries of revoked capabilities (or of tokens delegated from them). */
  dropRevoked(capIds: Iterable<string>): void {
    const ids = new Set(capIds);
    for (const row of this.#rows.snapshot()) {
      if (row.lineage.some((id) => ids.has(id))) this.#rows.delete(row.service);
    }
  }

  /** An entry whose owner's token has not expired; expired ones are dropped. */
  #live(service: string): Row | undefined {
    const row = this.#rows.get(service);
    if (row && row.expMs <= this.#clock.now()) {
      this.#rows.delete(service);
      return undefined;
    }
    return row;
  }

  #entry(row: Row): Entry {
    const { lineage: _l, expMs: _e, ...entry } = row;
    return entry;
  }

  /** Looks a service up. */
  resolve(service: string): Entry {
    const row = this.#live(service);
    if (!row) {
      throw notFound(`service ${service} is not registered; ${LISTED} shows what is`);
    }
    return this.#entry(row);
  }

  /**
   * Cluster mode: `service` on `node` (this node when absent), with its node
   * and every endpoint; for another node the endpoint is its tcp:// one.
   */
  resolveOn(service: string, node?: string): NodeEntry {
    const c = this.#cluster;
    if (!c) {
      throw invalidArgument(
        "params.node: this node is not in a cluster (docs/cluster.md); leave node out",
      );
    }
    if (node === undefined || node === c.node) {
      const row = this.#live(service);
      if (row) return { ...this.#entry(row), node: c.node, endpoints: c.endpointsOf(row) };
      if (node !== undefined) {
        throw notFound(
          `service ${service} is not registered on node ${node}; ${LISTED} shows what is`,
        );
      }
    }
    const found = c.entries().find((e) =>
      e.service === service && e.node !== c.node && (node === undefined || e.node === node)
    );
    if (!found) {
      const where = node === undefined ? "on any node" : `on node ${node}`;
      throw notFound(
        `service ${service} is not registered ${where}; ${LISTED} shows every node's services`,
      );
    }
    return { ...found, endpoint: remoteEndpoint(found.endpoints) };
  }

  /** Cluster mode: this node's live entries and every other node's, by node and name. */
  listCluster(): NodeEntry[] {
    const c = this.#cluster!;
    const own: NodeEntry[] = this.#rows.snapshot().map((r) => this.#live(r.service))
      .filter((r): r is Row => !!r)
      .map((r) => ({ ...this.#entry(r), node: c.node, endpoints: c.endpointsOf(r) }));
    const others: NodeEntry[] = c.entries().filter((e) => e.node !== c.node)
      .map((e) => ({ ...e, endpoint: remoteEndpoint(e.endpoints) }));
    return [...own, ...others].sort((a, b) =>
      compareNames(a.node, b.node) || compareNames(a.service, b.service)
    );
  }

  /** Every live entry, sorted by name. */
  list(): Entry[] {
    return this.#rows.snapshot().map((r) => this.#live(r.service)).filter((r): r is Row => !!r)
      .sort((a, b) => compareNames(a.service, b.service)).map((r) => this.#entry(r));
  }

  /** The methods the registry serves on its socket (declared in src/api/registry.ts). */
  methods(): Method<Capability>[] {
    const view = (e: Entry) => ({ service: e.service, endpoint: e.endpoint, api_v: e.api_v });
    const nodeView = (e: NodeEntry) => ({ ...view(e), node: e.node, endpoints: e.endpoints });
    return bindMethods<Capability>(REGISTRY_METHODS, {
      "registry.resolve": {
        handler: (p: { service: string; node?: string }) =>
          this.#cluster
            ? nodeView(this.resolveOn(p.service, p.node))
            : p.node === undefined
            ? view(this.resolve(p.service))
            : view(this.resolveOn(p.service, p.node)),
      },
      "registry.list": {
        handler: () => ({
          services: this.#cluster
            ? this.listCluster().map((e) => ({ ...nodeView(e), owner: e.owner }))
            : this.list().map((e) => ({ ...view(e), owner: e.owner })),
          // How fresh the other nodes' rows are: when etcd was last read whole.
          ...(this.#cluster?.readAt ? { read_at: readAtText(this.#cluster.readAt()) } : {}),
        }),
      },
      "registry.register": {
        handler: (p: Registration, ctx) => view(this.register(p, ctx.cap!)),
      },
      "registry.deregister": {
        handler: (p: { service: string }, ctx) => ({
          removed: this.deregister(p.service, ctx.cap!),
        }),
      },
    });
  }
}
