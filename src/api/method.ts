/**
 * The shape of a method declaration: what every service, the server,
 * strata-ctl and the docs know of a method without its handler.
 * @module
 */

import type { ParamsSchema } from "../wire/schema.ts";

/** What a method requires: a named right, or nothing ("public"). */
export type Access = { right: string } | "public";

/** One method, declared once: everything about it but its handler. */
export interface MethodSpec {
  /** Full method name, "service.action". */
  name: string;
  /** The right it needs, or "public". Nothing is public unless it says so. */
  access: Access;
  /** Its params. */
  params: ParamsSchema;
  /** One line: what it does (help, completion, docs). */
  summary: string;
  /** Example params, when it takes any (help and docs). */
  example?: Record<string, unknown>;
  /** Who answers it when not the service's own handlers: the server (`<service>.health`). */
  servedBy?: "server";
}

/**
 * The order of the protocol's listings (fs.list's entries, registry.list's
 * services and nodes): names compared by UTF-16 code unit, the same on every
 * machine and in every locale. (`localeCompare` had the registry load ICU's
 * collation at its first listing: 1.5 MB more of the Deno executable's code,
 * 1.1-1.4 MB of its data and 0.5 MB of malloc's heap in a one-line program.)
 */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `<service>.health`, which the server answers for every service. */
export function healthSpec(service: string): MethodSpec {
  return {
    name: `${service}.health`,
    access: "public",
    params: {},
    summary: "readiness and liveness: status, pid, uptime, memory",
    servedBy: "server",
  };
}

/** The right a method needs, or undefined for a public one. */
export function rightOf(spec: MethodSpec): string | undefined {
  return spec.access === "public" ? undefined : spec.access.right;
}
