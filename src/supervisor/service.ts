/**
 * The supervisor's methods: status, svc.list and svc.status for anyone who
 * can reach the socket; svc.start, svc.stop and svc.restart for holders of
 * the matching supervisor right, the services' log lines (logs) for
 * holders of supervisor.logs, and the audit trail (audit) for holders of
 * supervisor.audit.
 * @module
 */

import type { Capability } from "../token/claims.ts";
import type { Method } from "../server/server.ts";
import { VERSION } from "../runtime/version.ts";
import { MAX_FRAME } from "../wire/frame.ts";
import { type AuditFiles, MAX_EVENTS, readAudit } from "./audit_trail.ts";
import { type LogBook, RING_LINES } from "./logs.ts";
import type { Manager } from "./manager.ts";

/** What the supervisor's methods need. */
export interface SupervisorDeps {
  manager: Manager;
  /** The services' log lines. */
  logs: LogBook;
  /** The audit trail's files (for supervisor.audit). */
  audit: AuditFiles;
  nodeId: string;
  startedAt: number;
}

/** Default time a stopping service gets to finish its requests. */
export const DEFAULT_DRAIN_MS = 5000;

/** The methods the supervisor serves. */
export function supervisorMethods(d: SupervisorDeps): Method<Capability>[] {
  const name = { type: "string", minLength: 1, maxLength: 32 } as const;
  const drain = { type: "integer", default: DEFAULT_DRAIN_MS, min: 0, max: 120_000 } as const;
  return [
    {
      name: "supervisor.status",
      access: "public",
      params: {},
      handler: () => {
        const list = d.manager.list();
        return {
          node_id: d.nodeId,
          uptime_sec: Math.floor((Date.now() - d.startedAt) / 1000),
          version: VERSION,
          services: {
            total: list.length,
            healthy: list.filter((s) => s.state === "Healthy").length,
          },
        };
      },
    },
    {
      name: "supervisor.svc.list",
      access: "public",
      params: {},
      handler: () => ({ services: d.manager.list() }),
    },
    {
      name: "supervisor.svc.status",
      access: "public",
      params: { name },
      handler: (p: { name: string }) => d.manager.detail(p.name),
    },
    {
      name: "supervisor.logs",
      access: { right: "supervisor.logs" },
      params: {
        service: { ...name, optional: true },
        lines: { type: "integer", default: 100, min: 1, max: RING_LINES },
        since_ms: { type: "integer", optional: true, min: 0 },
        after: { type: "integer", optional: true, min: 0 },
      },
      cost: () => MAX_FRAME,
      handler: (p: { service?: string; lines: number; since_ms?: number; after?: number }) => {
        if (p.service !== undefined) d.manager.status(p.service); // NOT_FOUND names the services
        return d.logs.read({
          service: p.service,
          lines: p.lines,
          sinceMs: p.since_ms,
          after: p.after,
        });
      },
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
      cost: () => MAX_FRAME,
      handler: (p: {
        lines: number;
        since_ms?: number;
        cap_id?: string;
        event?: string;
        after?: string;
      }) =>
        readAudit(d.audit, {
          lines: p.lines,
          sinceMs: p.since_ms,
          capId: p.cap_id,
          event: p.event,
          after: p.after,
        }),
    },
    {
      name: "supervisor.svc.start",
      access: { right: "supervisor.svc.start" },
      params: { name },
      handler: (p: { name: string }) => d.manager.start(p.name),
    },
    {
      name: "supervisor.svc.stop",
      access: { right: "supervisor.svc.stop" },
      params: { name, drain_ms: drain },
      handler: (p: { name: string; drain_ms: number }) => d.manager.stop(p.name, p.drain_ms),
    },
    {
      name: "supervisor.svc.restart",
      access: { right: "supervisor.svc.restart" },
      params: { name, drain_ms: drain },
      handler: (p: { name: string; drain_ms: number }) => d.manager.restart(p.name, p.drain_ms),
    },
  ];
}
