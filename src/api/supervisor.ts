/**
 * The supervisor's methods, declared once: the node's status, the services'
 * states and log lines, and starting, stopping and restarting them.
 * @module
 */

import { healthSpec, type MethodSpec } from "./method.ts";

/** Default time a stopping service gets to finish its requests. */
export const DEFAULT_DRAIN_MS = 5000;

/** Log lines of each service the supervisor holds in memory (and supervisor.logs returns at most). */
export const RING_LINES = 1000;

/** Audit events one supervisor.audit answer returns at most. */
export const MAX_EVENTS = 1000;

const NAME = { type: "string", minLength: 1, maxLength: 32 } as const;
const DRAIN = { type: "integer", default: DEFAULT_DRAIN_MS, min: 0, max: 120_000 } as const;

/** Every method the supervisor answers. */
export const SUPERVISOR_METHODS: readonly MethodSpec[] = [
  healthSpec("supervisor"),
  {
    name: "supervisor.status",
    access: "public",
    params: {},
    summary: "node id, uptime and version",
  },
  {
    name: "supervisor.svc.list",
    access: "public",
    params: {},
    summary: "state, pid and restarts of each service",
  },
  {
    name: "supervisor.svc.status",
    access: "public",
    params: { name: NAME },
    summary: "one service in detail: restarts by cause, memory, endpoint",
    example: { name: "fs" },
  },
  {
    name: "supervisor.logs",
    access: { right: "supervisor.logs" },
    params: {
      service: { ...NAME, optional: true },
      lines: { type: "integer", default: 100, min: 1, max: RING_LINES },
      since_ms: { type: "integer", optional: true, min: 0 },
      after: { type: "integer", optional: true, min: 0 },
    },
    summary: "the services' last log lines (operator)",
    example: { service: "fs", lines: 100 },
  },
  {
    name: "supervisor.audit",
    access: { right: "supervisor.audit" },
    params: {
      lines: { type: "integer", default: 100, min: 1, max: MAX_EVENTS },
      since_ms: { type: "integer", optional: true, min: 0 },
      cap_id: {
        type: "string",
        optional: true,
        pattern: /^[0-9a-f]{32}$/,
        hint: "must be 32 hex digits",
      },
      event: { type: "string", optional: true, minLength: 1, maxLength: 64 },
      after: { type: "string", optional: true, minLength: 3, maxLength: 40 },
    },
    summary: "the audit trail, filtered; a cursor to follow it (operator)",
    example: { event: "auth.denied", lines: 50 },
  },
  {
    name: "supervisor.svc.start",
    access: { right: "supervisor.svc.start" },
    params: { name: NAME },
    summary: "start a service (lifts a quarantine)",
    example: { name: "fs" },
  },
  {
    name: "supervisor.svc.stop",
    access: { right: "supervisor.svc.stop" },
    params: { name: NAME, drain_ms: DRAIN },
    summary: "drain and stop a service",
    example: { name: "fs", drain_ms: 5000 },
  },
  {
    name: "supervisor.svc.restart",
    access: { right: "supervisor.svc.restart" },
    params: { name: NAME, drain_ms: DRAIN },
    summary: "stop, then start a service",
    example: { name: "fs" },
  },
];
