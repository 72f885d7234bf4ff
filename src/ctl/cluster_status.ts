/**
 * strata-ctl's views of the whole cluster (docs/cluster.md): `cluster
 * status` (every node: its endorsement, its services in the registry, their
 * health, and how fresh this node's view of etcd is) and `svc list
 * --all-nodes`. Nodes come from the endorsements in etcd (judged by the root
 * key) and from this node's registry; another node's service is probed over
 * its tcp:// endpoint only when that host:port is one of `--cluster-peers`
 * (strata-ctl's exact net grant), else it is shown as "not probed".
 * @module
 */

import type { EtcdHttp } from "../sources/etcd_http.ts";
import { Client } from "../server/client.ts";
import { tlsOf } from "./connect.ts";
import type { Layout } from "../runtime/config.ts";
import { verifyEndorsement, verifyPendingKeys } from "../token/endorsement.ts";
import { endorsementsPrefix, pendingKeysPrefix } from "../sources/etcd_key_set.ts";
import { parseEndpoint } from "../wire/endpoint.ts";
import type { Session } from "./session.ts";
import { compareNames } from "../api/method.ts";

/** How long a health probe of another node's service may take. */
const PROBE_TIMEOUT_MS = 1500;

/** One service of one node, as the registry lists it, with its health. */
export interface NodeService {
  node: string;
  service: string;
  endpoint: string;
  endpoints: string[];
  /** "ok", "not probed" (no peer grant for it) or why the health call failed. */
  health: string;
}

/** One node of the cluster. */
export interface NodeRow {
  node: string;
  /** "yes until …", or why its endorsement does not hold, or "none". */
  endorsed: string;
  /**
   * Key ids its identity published after a rotation, signed by its endorsed
   * key, that the root does not endorse yet (`cluster endorse NODE`).
   */
  pending?: string[];
  /** Whether its registry's lease is alive (it has entries in etcd). */
  up: boolean;
  services: NodeService[];
}

/** What `strata-ctl cluster status` shows. */
export interface ClusterStatus {
  cluster: string;
  /** This node. */
  node: string;
  /** Whether etcd answered, and how long the read took (or why it failed). */
  etcd: { reachable: boolean; ms?: number; error?: string };
  /** How old this node's registry's view of the other nodes is (ms), null when never read. */
  registry_staleness_ms: number | null;
  nodes: NodeRow[];
}

interface Listed {
  service: string;
  endpoint: string;
  endpoints?: string[];
  node?: string;
}

/** The registry's cluster-wide list, with how stale it is. */
export async function clusterServices(
  session: Session,
): Promise<{ services: Listed[]; stalenessMs: number | null }> {
  const r = await session.call<{ services: Listed[]; read_at?: string | null }>(
    "registry.list",
    undefined,
    { auth: false },
  );
  const at = r.read_at ? Date.parse(r.read_at) : NaN;
  return { services: r.services, stalenessMs: Number.isNaN(at) ? null : Date.now() - at };
}

/** The health of one service: over its socket on this node, over tcp:// (peers only) elsewhere. */
async function probe(layout: Layout, e: Listed): Promise<string> {
  const own = e.node === layout.nodeId;
  const peers = layout.cluster?.peers ?? [];
  const endpoint = own ? e.endpoint : (e.endpoints ?? [e.endpoint]).find((x) => {
    if (!x.startsWith("tcp://")) return false;
    const p = parseEndpoint(x);
    return p.kind === "tcp" && peers.includes(`${p.host}:${p.port}`);
  });
  if (!endpoint) return "not probed";
  try {
    const c = await Client.connect(endpoint, {
      timeoutMs: PROBE_TIMEOUT_MS,
      connectTimeoutMs: PROBE_TIMEOUT_MS,
      ...tlsOf(layout),
    });
    try {
      const res = await c.request(`${e.service}.health`, undefined, {
        timeoutMs: PROBE_TIMEOUT_MS,
      });
      return res.ok ? "ok" : res.error.message;
    } finally {
      await c.close();
    }
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Every node's services from this node's registry, each probed. */
export async function allNodeServices(session: Session): Promise<NodeService[]> {
  const { services } = await clusterServices(session);
  return await Promise.all(services.map(async (e) => ({
    node: e.node ?? session.layout.nodeId,
    service: e.service,
    endpoint: e.endpoint,
    endpoints: e.endpoints ?? [e.endpoint],
    health: await probe(session.layout, e),
  })));
}

/** Reads the endorsements from etcd and puts them beside the registry's view of every node. */
export async function clusterStatus(
  session: Session,
  options: { etcd: EtcdHttp },
): Promise<ClusterStatus> {
  const layout = session.layout;
  const c = layout.cluster!;
  const { readRootKey } = await import("../sources/cluster.ts");
  const root = await readRootKey(c.root);
  const etcd: ClusterStatus["etcd"] = { reachable: false };
  let endorsements: Record<string, string> = {};
  let pending: Record<string, string> = {};
  const t0 = performance.now();
  try {
    // Bounded by strata-ctl's --timeout: an etcd that does not answer is reported, not waited for.
    const deadline = { deadline: new Date(Date.now() + session.timeoutMs) };
    [endorsements, pending] = await Promise.all([
      options.etcd.strings(endorsementsPrefix(c.name), deadline).then(Object.fromEntries),
      options.etcd.strings(pendingKeysPrefix(c.name), deadline).then(Object.fromEntries),
    ]);
    etcd.reachable = true;
    etcd.ms = +(performance.now() - t0).toFixed(1);
  } catch (err) {
    etcd.error = err instanceof Error ? err.message : String(err);
  }
  const { stalenessMs } = await clusterServices(session);
  const services = await allNodeServices(session);
  const rows = new Map<string, NodeRow>();
  const row = (node: string) => {
    let r = rows.get(node);
    // Without etcd's answer no endorsement is known: not "none".
    const endorsed = etcd.reachable ? "none" : "unknown (etcd did not answer)";
    if (!r) rows.set(node, r = { node, endorsed, up: false, services: [] });
    return r;
  };
  for (const [key, signed] of Object.entries(endorsements)) {
    const node = key.slice(endorsementsPrefix(c.name).length);
    try {
      const expect = { cluster: c.name, node, now: Date.now() };
      const e = await verifyEndorsement(signed, root, expect);
      if (e.withdrawn) {
        row(node).endorsed = `withdrawn (cluster leave), seq ${e.seq}`;
        continue;
      }
      row(node).endorsed = `yes until ${new Date(e.expMs).toISOString()}`;
      const offered = pending[`${pendingKeysPrefix(c.name)}${node}`];
      if (offered !== undefined) {
        // Only a set signed by the node's endorsed key is its own; a forged one says nothing.
        const p = await verifyPendingKeys(offered, e, expect).catch(() => undefined);
        const fresh = p?.keys.filter((k) => !e.keys.some((x) => x.kid === k.kid)) ?? [];
        if (fresh.length > 0) row(node).pending = fresh.map((k) => k.kid);
      }
    } catch (err) {
      row(node).endorsed = `refused: ${(err as Error).message}`;
    }
  }
  for (const s of services) {
    const r = row(s.node);
    r.up = true;
    r.services.push(s);
  }
  return {
    cluster: c.name,
    node: layout.nodeId,
    etcd,
    registry_staleness_ms: stalenessMs === null ? null : Math.round(stalenessMs),
    nodes: [...rows.values()].sort((a, b) => compareNames(a.node, b.node)),
  };
}

/** `cluster status` as text. */
export function renderClusterStatus(s: ClusterStatus): string {
  const lines = [
    `cluster ${s.cluster}, seen from node ${s.node}`,
    `etcd: ${s.etcd.reachable ? `reachable (${s.etcd.ms} ms)` : `unreachable: ${s.etcd.error}`}`,
    `registry view: ${
      s.registry_staleness_ms === null
        ? "never read from etcd"
        : `read from etcd ${(s.registry_staleness_ms / 1000).toFixed(1)} s ago`
    }`,
  ];
  for (const n of s.nodes) {
    lines.push(`${n.node}: ${n.up ? "up" : "down (no registry lease)"}; endorsed: ${n.endorsed}`);
    if (n.pending) {
      lines.push(
        `  pending endorsement: ${n.pending.join(", ")} (strata-ctl cluster endorse ${n.node})`,
      );
    }
    for (const v of n.services) lines.push(`  ${v.service} ${v.endpoint} ${v.health}`);
  }
  return lines.join("\n");
}

/** `svc list --all-nodes` as text: one line per service of every node. */
export function renderAllNodes(services: NodeService[]): string {
  return services.map((s) => `${s.node}\t${s.service}\t${s.endpoint}\t${s.health}`).join("\n");
}
