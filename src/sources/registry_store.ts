/**
 * Where the registry's entries are kept: a {@link RegistryStore} gives
 * synchronous reads and writes of the table, a snapshot and a change feed.
 * {@link MemoryRegistryStore} is today's, a Map in the registry process (the
 * supervisor re-announces its services after a registry restart). A store
 * kept elsewhere (a cluster store) is another implementation that keeps a
 * local mirror fed by its watch, so the registry's lookups stay in memory.
 * @module
 */

import type { Unsubscribe } from "./key_set.ts";

/** One row of the table: the entry, and what bounds its life. */
export interface RegistryRecord {
  /** The service name, the table's key. */
  service: string;
  /** Where it listens: unix:///path.sock. */
  endpoint: string;
  /** The API version it speaks. */
  api_v: number;
  /** RFC 3339. */
  registered_at: string;
  /** "supervisor" or the cap_id of the token that registered it. */
  owner: string;
  /** The owner's lineage: a revoked ancestor removes the entry. */
  lineage: readonly string[];
  /** When the owner's token expires (Infinity for the supervisor's). */
  expMs: number;
}

/** One change of the table. */
export type RegistryChange =
  | { op: "put"; record: RegistryRecord }
  | { op: "delete"; service: string };

/** The registry's table, by service name. */
export interface RegistryStore {
  /** How many rows are held. */
  readonly size: number;
  /** The row of `service`, if any. */
  get(service: string): RegistryRecord | undefined;
  /** Adds or replaces the row of `record.service`. */
  put(record: RegistryRecord): void;
  /** Removes the row of `service`; whether there was one. */
  delete(service: string): boolean;
  /** Every row now, in insertion order. */
  snapshot(): RegistryRecord[];
  /** The change feed: `fn` runs synchronously after each put and delete. */
  subscribe(fn: (change: RegistryChange) => void): Unsubscribe;
}

/** The table in this process's memory. */
export class MemoryRegistryStore implements RegistryStore {
  #rows = new Map<string, RegistryRecord>();
  #listeners = new Set<(change: RegistryChange) => void>();

  /** How many rows are held. */
  get size(): number {
    return this.#rows.size;
  }

  /** The row of `service`, if any. */
  get(service: string): RegistryRecord | undefined {
    return this.#rows.get(service);
  }

  /** Adds or replaces a row. */
  put(record: RegistryRecord): void {
    this.#rows.set(record.service, record);
    this.#emit({ op: "put", record });
  }

  /** Removes a row. */
  delete(service: string): boolean {
    const had = this.#rows.delete(service);
    if (had) this.#emit({ op: "delete", service });
    return had;
  }

  /** Every row now. */
  snapshot(): RegistryRecord[] {
    return [...this.#rows.values()];
  }

  /** Subscribes to changes. */
  subscribe(fn: (change: RegistryChange) => void): Unsubscribe {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #emit(change: RegistryChange): void {
    for (const fn of this.#listeners) fn(change);
  }
}
