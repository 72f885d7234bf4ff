/**
 * The method table: every method of every service, declared once (one file
 * per service), and what is derived from it — the services, the rights of
 * each, the services the supervisor runs. Adding a method is a declaration
 * here and a handler in the service (docs/adding_a_method.md).
 * @module
 */

import { FS_METHODS } from "./fs.ts";
import { IDENTITY_METHODS } from "./identity.ts";
import { type MethodSpec, rightOf } from "./method.ts";
import { REGISTRY_METHODS } from "./registry.ts";
import { SUPERVISOR_METHODS } from "./supervisor.ts";

export type { Access, MethodSpec } from "./method.ts";
export { healthSpec, rightOf } from "./method.ts";

/**
 * Each service's methods. The supervisor comes first; the others follow in
 * the order the supervisor starts them (their dependency order).
 */
export const API = {
  supervisor: SUPERVISOR_METHODS,
  registry: REGISTRY_METHODS,
  identity: IDENTITY_METHODS,
  fs: FS_METHODS,
} as const;

/** A service of the table. */
export type ApiService = keyof typeof API;

/** The service that runs the others. */
const SUPERVISOR: ApiService = "supervisor";

/** Every service, in the table's order. */
export const SERVICES: readonly ApiService[] = Object.keys(API) as ApiService[];

/** A service the supervisor runs. */
export type SupervisedService = Exclude<ApiService, "supervisor">;

/** The services the supervisor runs: every service but itself, in start order. */
export const SUPERVISED: readonly SupervisedService[] = SERVICES.filter((s) =>
  s !== SUPERVISOR
) as SupervisedService[];

/** Every method of every service. */
export const METHODS: readonly MethodSpec[] = Object.values(API).flat();

/** The methods of `service` (none for a service not in the table). */
export function methodsOf(service: string): readonly MethodSpec[] {
  return Object.hasOwn(API, service) ? API[service as ApiService] : [];
}

/** The declaration of a method, if the table has it. */
export function findMethod(name: string): MethodSpec | undefined {
  return METHODS.find((m) => m.name === name);
}

/** The rights of `service`: every right one of its methods needs, each once. */
function rightsIn(service: ApiService): string[] {
  return [...new Set(API[service].map(rightOf).filter((r): r is string => r !== undefined))];
}

/** Every right, by the service that defines it. */
export const SERVICE_RIGHTS: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  SERVICES.map((s) => [s, rightsIn(s)]),
);
