/**
 * The registry's methods, declared once: where services are found, and
 * registrations of services of one's own.
 * @module
 */

import { healthSpec, type MethodSpec } from "./method.ts";

const SERVICE = {
  type: "string",
  pattern: /^[a-z][a-z0-9_-]{0,31}$/,
  hint: "must be a lowercase name like fs or my-service",
} as const;

/** Every method the registry answers. */
export const REGISTRY_METHODS: readonly MethodSpec[] = [
  healthSpec("registry"),
  {
    name: "registry.resolve",
    access: "public",
    params: {
      service: SERVICE,
      node: {
        type: "string",
        optional: true,
        pattern: /^[A-Za-z0-9._-]{1,63}$/,
        hint: "must be a node id like a or node-2 (cluster mode only)",
      },
    },
    summary: "the endpoint of a service (on a node of the cluster)",
    example: { service: "fs" },
  },
  {
    name: "registry.list",
    access: "public",
    params: {},
    summary: "every registered service",
  },
  {
    name: "registry.register",
    access: { right: "registry.register" },
    params: {
      service: SERVICE,
      endpoint: { type: "string", minLength: 1, maxLength: 1024 },
      api_v: { type: "integer", default: 1, min: 1, max: 1000 },
    },
    summary: "register a service of your own",
    example: { service: "my-svc", endpoint: "unix:///run/strata/my-svc.sock", api_v: 1 },
  },
  {
    name: "registry.deregister",
    access: { right: "registry.register" },
    params: { service: SERVICE },
    summary: "remove your registration",
    example: { service: "my-svc" },
  },
];
