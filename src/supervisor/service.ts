/**
 * The supervisor's methods: status and svc.list for anyone who can reach the
 * socket; svc.start, svc.stop and svc.restart for holders of the matching
 * supervisor right.
 * @module
 */

import type { Method } from "../ipc/server.ts";
import { VERSION } from "../version.ts";
import type { Manager } from "./manager.ts";

/** What the supervisor's methods need. */
export interface SupervisorDeps {
  manager: Manager;
  nodeId: string;
  startedAt: number;
}

/** Default time a stopping service gets to finish its requests. */
export const DEFAULT_DRAIN_MS = 5000;

/** The methods the supervisor serves. */
export function supervisorMethods(d: SupervisorDeps): Method[] {
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
