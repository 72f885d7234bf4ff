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
import type { LogBook } from "./logs.ts";
import { bindMethods } from "../server/bind.ts";
import { DEFAULT_DRAIN_MS, SUPERVISOR_METHODS } from "../api/supervisor.ts";
import { type AuditFiles, readAudit } from "./audit_trail.ts";
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
export { DEFAULT_DRAIN_MS };

/** The methods the supervisor serves (declared in src/api/supervisor.ts). */
export function supervisorMethods(d: SupervisorDeps): Method<Capability>[] {
  return bindMethods<Capability>(SUPERVISOR_METHODS, {
    "supervisor.status": {
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
    "supervisor.svc.list": { handler: () => ({ services: d.manager.list() }) },
    "supervisor.svc.status": {
      handler: (p: { name: string }) => d.manager.detail(p.name),
    },
    "supervisor.logs": {
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
    "supervisor.audit": {
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
    "supervisor.svc.start": {
      handler: (p: { name: string }) => d.manager.start(p.name),
    },
    "supervisor.svc.stop": {
      handler: (p: { name: string; drain_ms: number }) => d.manager.stop(p.name, p.drain_ms),
    },
    "supervisor.svc.restart": {
      handler: (p: { name: string; drain_ms: number }) => d.manager.restart(p.name, p.drain_ms),
    },
  });
}
