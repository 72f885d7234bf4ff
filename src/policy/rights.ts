/**
 * The rights each service defines. A right is the name of the method it opens
 * ("fs.read"); a token's `actions` are the same rights without the service
 * prefix, as the v1 seed API spelled them.
 * @module
 */

import { invalidArgument } from "../wire/errors.ts";

/** Every right, by the service that defines it. */
export const SERVICE_RIGHTS: Readonly<Record<string, readonly string[]>> = {
  fs: ["fs.open", "fs.read", "fs.list"],
  identity: ["identity.issue", "identity.revoke", "identity.rotate_key", "identity.list"],
  supervisor: [
    "supervisor.svc.start",
    "supervisor.svc.stop",
    "supervisor.svc.restart",
    "supervisor.logs",
    "supervisor.audit",
  ],
  registry: ["registry.register"],
};

/**
 * Rights added after operator tokens were first minted. The operator token
 * (the root capability: service "*" and no parent, which only identity's
 * operator-token step mints) lists every right of the day it was minted; one
 * minted before these existed holds them as well, so the operator token on
 * disk keeps working without being replaced. A delegated token holds only
 * the rights it lists, and the operator can delegate these only once its
 * token lists them (a new operator token does).
 */
export const ROOT_IMPLIED_RIGHTS: readonly string[] = [
  "supervisor.logs",
  "identity.list",
  "supervisor.audit",
];

/** The service name that stands for "every service" (the operator token). */
export const ANY_SERVICE = "*";

/** Names of the services that define rights. */
export const SERVICES: readonly string[] = Object.keys(SERVICE_RIGHTS);

/** Every right of every service. */
export function allRights(): string[] {
  return Object.values(SERVICE_RIGHTS).flat();
}

/** The rights a token for `service` may hold. */
export function rightsOf(service: string): readonly string[] {
  return service === ANY_SERVICE ? allRights() : SERVICE_RIGHTS[service] ?? [];
}

/** A right without its service prefix ("fs.read" → "read"). */
export function actionOf(right: string): string {
  return right.slice(right.indexOf(".") + 1);
}

/** Inputs to {@link resolveRights}. */
export interface RightsRequest {
  service: string;
  actions?: string[];
  rights?: string[];
}

/**
 * Turns the `actions` and `rights` of an issue request into one sorted list of
 * rights for `service`. A right the service does not have is INVALID_ARGUMENT.
 */
export function resolveRights(req: RightsRequest): string[] {
  if (req.service !== ANY_SERVICE && !SERVICE_RIGHTS[req.service]) {
    throw invalidArgument(
      `params.service: unknown service ${JSON.stringify(req.service)}; expected one of ${
        SERVICES.join(", ")
      }`,
    );
  }
  const known = rightsOf(req.service);
  const out = new Set<string>();
  for (const action of req.actions ?? []) {
    const right = req.service === ANY_SERVICE ? action : `${req.service}.${action}`;
    if (!known.includes(right)) {
      throw invalidArgument(
        `params.actions: ${req.service} has no action ${JSON.stringify(action)}; expected ${
          known.map(actionOf).join(", ")
        }`,
      );
    }
    out.add(right);
  }
  for (const right of req.rights ?? []) {
    if (!known.includes(right)) {
      throw invalidArgument(
        `params.rights: ${req.service} has no right ${JSON.stringify(right)}; expected ${
          known.join(", ")
        }`,
      );
    }
    out.add(right);
  }
  if (out.size === 0) {
    throw invalidArgument('params: give at least one of actions or rights, e.g. actions: ["read"]');
  }
  return [...out].sort();
}
