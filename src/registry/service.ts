/**
 * The registry: where services are found. Entries written by the supervisor
 * (over its private pipe) describe the services it runs; holders of the
 * registry.register right may add their own, but never overwrite the
 * supervisor's.
 * @module
 */

import { invalidArgument, notFound, StrataError } from "../ipc/errors.ts";
import type { Method } from "../ipc/server.ts";
import type { Audit } from "../runtime/audit.ts";

/** One registered service. */
export interface Entry {
  service: string;
  endpoint: string;
  api_v: number;
  registered_at: string;
  /** "supervisor" or the cap_id of the token that registered it. */
  owner: string;
}

/** The owner name of entries the supervisor wrote. */
export const SUPERVISOR_OWNER = "supervisor";

const SERVICE = {
  type: "string",
  pattern: /^[a-z][a-z0-9_-]{0,31}$/,
  hint: "must be a lowercase name like fs or my-service",
} as const;

/** Checks an endpoint URL: unix:///absolute/path today; tcp:// is reserved. */
export function checkEndpoint(endpoint: string): string {
  if (endpoint.startsWith("tcp://")) {
    throw invalidArgument("params.endpoint: tcp:// endpoints are reserved for a later version");
  }
  if (
    !endpoint.startsWith("unix:///") || endpoint.includes("\0") || /\/\.\.?(\/|$)/.test(endpoint)
  ) {
    throw invalidArgument('params.endpoint: must be "unix:///absolute/path.sock"');
  }
  return endpoint;
}

/** The registry's table. */
export class Registry {
  #entries = new Map<string, Entry>();
  #audit?: Audit;

  constructor(audit?: Audit) {
    this.#audit = audit;
  }

  /** Adds or replaces an entry; only its owner (or the supervisor) may replace it. */
  register(service: string, endpoint: string, apiV: number, owner: string): Entry {
    const old = this.#entries.get(service);
    if (old && old.owner !== owner && owner !== SUPERVISOR_OWNER) {
      throw new StrataError(
        "CONFLICT",
        `service ${service} is registered by ${old.owner}; only it may change the entry`,
      );
    }
    const entry: Entry = {
      service,
      endpoint: checkEndpoint(endpoint),
      api_v: apiV,
      registered_at: new Date().toISOString(),
      owner,
    };
    this.#entries.set(service, entry);
    this.#audit?.event("registry.register", { service, endpoint, owner });
    return entry;
  }

  /** Removes an entry if `owner` owns it (the supervisor may remove any). */
  deregister(service: string, owner: string): boolean {
    const old = this.#entries.get(service);
    if (!old) return false;
    if (old.owner !== owner && owner !== SUPERVISOR_OWNER) {
      throw new StrataError("CONFLICT", `service ${service} is registered by ${old.owner}`);
    }
    this.#entries.delete(service);
    this.#audit?.event("registry.deregister", { service, owner });
    return true;
  }

  /** Looks a service up. */
  resolve(service: string): Entry {
    const e = this.#entries.get(service);
    if (!e) {
      throw notFound(`service ${service} is not registered; registry.list shows what is`);
    }
    return e;
  }

  /** Every entry, sorted by name. */
  list(): Entry[] {
    return [...this.#entries.values()].sort((a, b) => a.service.localeCompare(b.service));
  }

  /** The methods the registry serves on its socket. */
  methods(): Method[] {
    const view = (e: Entry) => ({ service: e.service, endpoint: e.endpoint, api_v: e.api_v });
    return [
      {
        name: "registry.resolve",
        access: "public",
        params: { service: SERVICE },
        handler: (p: { service: string }) => view(this.resolve(p.service)),
      },
      {
        name: "registry.list",
        access: "public",
        params: {},
        handler: () => ({ services: this.list().map((e) => ({ ...view(e), owner: e.owner })) }),
      },
      {
        name: "registry.register",
        access: { right: "registry.register" },
        params: {
          service: SERVICE,
          endpoint: { type: "string", minLength: 1, maxLength: 1024 },
          api_v: { type: "integer", default: 1, min: 1, max: 1000 },
        },
        handler: (p: { service: string; endpoint: string; api_v: number }, ctx) =>
          view(this.register(p.service, p.endpoint, p.api_v, ctx.cap!.capId)),
      },
      {
        name: "registry.deregister",
        access: { right: "registry.register" },
        params: { service: SERVICE },
        handler: (p: { service: string }, ctx) => ({
          removed: this.deregister(p.service, ctx.cap!.capId),
        }),
      },
    ];
  }
}
