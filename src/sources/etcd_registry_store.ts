/**
 * Cluster mode's registry table (docs/cluster.md): this node's rows are kept
 * in memory as on a single node and mirrored to etcd under
 * `/strata/<cluster>/registry/<node>/<service>`, all on one lease of this
 * node's (TTL {@link REGISTRY_LEASE_TTL_S}) kept alive while the registry
 * lives, so a dead node's rows vanish within the TTL. Every node's rows are
 * read at start, watched, and re-read every {@link REREAD_MS}, into a mirror
 * the registry answers `registry.list` and `registry.resolve {node}` from.
 * @module
 */

import type { EtcdHttp, EtcdKeyValue, EtcdLease, EtcdWatch } from "./etcd_http.ts";
import type { Unsubscribe } from "./key_set.ts";
import { compareNames } from "../api/method.ts";
import {
  MemoryRegistryStore,
  type RegistryChange,
  type RegistryRecord,
  type RegistryStore,
} from "./registry_store.ts";

/** The lease of a node's registry rows (s): they vanish this long after the node dies. */
export const REGISTRY_LEASE_TTL_S = 10;

/** How often the mirror is re-read whole besides the watch (ms). */
const REREAD_MS = 2000;

/** How long the read at start may take (ms): the supervisor waits 10 s for the registry. */
const START_READ_MS = 2000;

/** The etcd prefix of a cluster's registry. */
export function registryPrefix(cluster: string): string {
  return `/strata/${cluster}/registry/`;
}

/** One row of the cluster's registry, as stored in etcd. */
export interface ClusterEntry {
  /** The node that runs the service. */
  node: string;
  service: string;
  /** Every endpoint of the service: its socket, and its tcp:// one when it listens on one. */
  endpoints: string[];
  api_v: number;
  registered_at: string;
  owner: string;
}

/** Options for {@link EtcdRegistryStore}. */
export interface EtcdRegistryOptions {
  /** A connected etcd client (closed by {@link EtcdRegistryStore.close}). */
  client: EtcdHttp;
  /** The cluster's name (the prefix). */
  cluster: string;
  /** This node's id. */
  node: string;
  /** Every endpoint of a row (the socket, and a tcp:// one from the layout). */
  endpointsOf(record: RegistryRecord): string[];
  /** The lease TTL (s), default {@link REGISTRY_LEASE_TTL_S}. */
  ttlS?: number;
}

function isClusterEntry(v: unknown): v is ClusterEntry {
  const e = v as ClusterEntry;
  return typeof e === "object" && e !== null && typeof e.node === "string" &&
    typeof e.service === "string" && Array.isArray(e.endpoints) &&
    e.endpoints.every((x) => typeof x === "string") && typeof e.api_v === "number" &&
    typeof e.registered_at === "string" && typeof e.owner === "string";
}

/** This node's rows in memory and in etcd under a lease; every node's rows mirrored. */
export class EtcdRegistryStore implements RegistryStore {
  #o: EtcdRegistryOptions;
  #prefix: string;
  #local = new MemoryRegistryStore();
  #lease?: EtcdLease;
  /** Every node's rows, by etcd key. */
  #mirror = new Map<string, ClusterEntry>();
  #watcher?: EtcdWatch;
  /** Whether a watch is being set up. */
  #settingUp = false;
  #timer?: ReturnType<typeof setInterval>;
  /** Writes to etcd, one after another so they land in order. */
  #writes: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** Why the last write or read of etcd failed, while it fails. */
  lastError?: string;
  /** When the mirror was last read whole (ms since the epoch), 0 before. */
  lastRead = 0;

  /** A store for `options.node`; {@link start} takes the lease and reads the mirror. */
  constructor(options: EtcdRegistryOptions) {
    this.#o = options;
    this.#prefix = registryPrefix(options.cluster);
  }

  /** Takes the lease, reads every node's rows and watches them (etcd down: retried). */
  async start(): Promise<void> {
    this.#relet();
    // Bounded: the registry must be ready within the supervisor's time, etcd or not.
    await this.#readAll({ deadline: new Date(Date.now() + START_READ_MS) }).catch(() => {});
    void this.#watch();
    this.#timer = setInterval(() => {
      void this.#readAll().catch(() => {});
      // No watch (etcd was out of reach when it was set up): try again.
      if (!this.#watcher) void this.#watch();
    }, REREAD_MS);
  }

  /** A new lease, and every local row written under it (at start, and when one is lost). */
  #relet(): void {
    if (this.#closed) return;
    const lease = this.#o.client.lease(this.#o.ttlS ?? REGISTRY_LEASE_TTL_S);
    this.#lease = lease;
    lease.on("lost", (err: Error) => {
      this.lastError = err.message;
      if (this.#lease !== lease || this.#closed) return;
      // etcd dropped it (this node was cut off longer than the TTL): take another.
      setTimeout(() => this.#relet(), 500);
    });
    for (const r of this.#local.snapshot()) this.#write(r);
  }

  #key(service: string): string {
    return `${this.#prefix}${this.#o.node}/${service}`;
  }

  #write(record: RegistryRecord): void {
    const lease = this.#lease!;
    const entry: ClusterEntry = {
      node: this.#o.node,
      service: record.service,
      endpoints: this.#o.endpointsOf(record),
      api_v: record.api_v,
      registered_at: record.registered_at,
      owner: record.owner,
    };
    this.#mirror.set(this.#key(record.service), entry);
    this.#writes = this.#writes.then(() =>
      lease.put(this.#key(record.service), JSON.stringify(entry))
    ).then(() => (this.lastError = undefined), (err) => (this.lastError = String(err)));
  }

  async #readAll(options: { deadline?: Date } = {}): Promise<void> {
    const all = await this.#o.client.strings(this.#prefix, options);
    const next = new Map<string, ClusterEntry>();
    for (const [k, v] of all) {
      const e = this.#parse(k, v);
      if (e) next.set(k, e);
    }
    // This node's rows are what it holds, whatever etcd says meanwhile.
    for (const r of this.#local.snapshot()) {
      const k = this.#key(r.service);
      if (!next.has(k)) next.set(k, { ...this.#mirror.get(k)! });
    }
    this.#mirror = next;
    this.lastRead = Date.now();
  }

  /** An entry stored under the node and service it names, else nothing. */
  #parse(key: string, value: string): ClusterEntry | undefined {
    try {
      const e = JSON.parse(value);
      if (!isClusterEntry(e)) return undefined;
      return key === `${this.#prefix}${e.node}/${e.service}` ? e : undefined;
    } catch {
      return undefined;
    }
  }

  async #watch(): Promise<void> {
    if (this.#settingUp || this.#closed) return;
    this.#settingUp = true;
    try {
      const w = await this.#o.client.watch(this.#prefix);
      if (this.#closed) {
        await w.cancel().catch(() => {});
        return;
      }
      this.#watcher = w;
      w.on("put", (kv: EtcdKeyValue) => {
        const k = kv.key;
        const e = this.#parse(k, kv.value);
        if (e) this.#mirror.set(k, e);
      });
      w.on("delete", (kv: EtcdKeyValue) => {
        const k = kv.key;
        if (!k.startsWith(`${this.#prefix}${this.#o.node}/`)) this.#mirror.delete(k);
      });
      // Cancelled by etcd: the next re-read sets up another.
      w.on("error", () => {
        if (this.#watcher === w) this.#watcher = undefined;
      });
    } catch {
      // etcd down: the re-read every REREAD_MS keeps the mirror meanwhile, and tries again.
    } finally {
      this.#settingUp = false;
    }
  }

  /** Every node's rows as last seen (this node's as it holds them), by node and service. */
  cluster(): ClusterEntry[] {
    return [...this.#mirror.values()].sort((a, b) =>
      compareNames(a.node, b.node) || compareNames(a.service, b.service)
    );
  }

  /** How many rows this node holds. */
  get size(): number {
    return this.#local.size;
  }

  /** This node's row of `service`. */
  get(service: string): RegistryRecord | undefined {
    return this.#local.get(service);
  }

  /** Adds or replaces a row here and in etcd. */
  put(record: RegistryRecord): void {
    this.#local.put(record);
    this.#write(record);
  }

  /** Removes a row here and from etcd. */
  delete(service: string): boolean {
    const had = this.#local.delete(service);
    if (had) {
      const key = this.#key(service);
      this.#mirror.delete(key);
      this.#writes = this.#writes.then(() => this.#o.client.delete(key)).catch(
        (err) => (this.lastError = String(err)),
      );
    }
    return had;
  }

  /** This node's rows. */
  snapshot(): RegistryRecord[] {
    return this.#local.snapshot();
  }

  /** This node's changes. */
  subscribe(fn: (change: RegistryChange) => void): Unsubscribe {
    return this.#local.subscribe(fn);
  }

  /** Waits for the writes so far to reach etcd (or fail). */
  async flushed(): Promise<void> {
    await this.#writes;
  }

  /** Stops the watch and the re-reads, revokes the lease (the rows go at once) and closes the client. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.#watcher?.cancel().catch(() => {});
    await this.#writes;
    await this.#lease?.revoke().catch(() => {});
    this.#o.client.close();
  }
}
