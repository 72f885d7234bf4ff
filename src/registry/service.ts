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
import { REGISTRY_METHODS } from "../api/registry.ts";
import type { Audit } from "../runtime/audit.ts";
import { type Clock, systemClock } from "../runtime/clock.ts";
import {
  MemoryRegistryStore,
  type RegistryRecord,
  type RegistryStore,
} from "../sources/registry_store.ts";
import type { Capability } from "../token/claims.ts";

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
}

/** The registry's table. */
export class Registry {
  #rows: RegistryStore;
  #audit?: Audit;
  #clock: Clock;

  constructor(audit?: Audit, options: RegistryOptions = {}) {
    this.#audit = audit;
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
      throw notFound(`service ${service} is not registered; registry.list shows what is`);
    }
    return this.#entry(row);
  }

  /** Every live entry, sorted by name. */
  list(): Entry[] {
    return this.#rows.snapshot().map((r) => this.#live(r.service)).filter((r): r is Row => !!r)
      .sort((a, b) => a.service.localeCompare(b.service)).map((r) => this.#entry(r));
  }

  /** The methods the registry serves on its socket (declared in src/api/registry.ts). */
  methods(): Method<Capability>[] {
    const view = (e: Entry) => ({ service: e.service, endpoint: e.endpoint, api_v: e.api_v });
    return bindMethods<Capability>(REGISTRY_METHODS, {
      "registry.resolve": {
        handler: (p: { service: string }) => view(this.resolve(p.service)),
      },
      "registry.list": {
        handler: () => ({ services: this.list().map((e) => ({ ...view(e), owner: e.owner })) }),
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
