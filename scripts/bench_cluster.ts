/**
 * Cluster figures for `deno task bench` (docs/cluster.md): a three-member
 * etcd and three Strata nodes on this machine, endorsed by a fresh root.
 * Revocation propagation: revocations made on each node in turn, one at a
 * time; for each, the time from the revoke's ok until both other nodes'
 * fs refuse the token. Needs Debian's etcd (`apt-get install etcd-server`).
 *
 *   deno run --allow-run --allow-read --allow-write=/tmp --allow-net --allow-env scripts/bench_cluster.ts [--revocations=150]
 * @module
 */

import { parseArgs } from "node:util";
import { issue, type Node, startNode, tempLayout, waitFor } from "../tests/helpers.ts";
import { startEtcd } from "../tests/etcd.ts";
import { ctl, etcdProto, listOn } from "../tests/cluster_support.ts";

/** Revocation propagation across three nodes, in ms after the revoke's ok. */
export interface Propagation {
  revocations: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Polls `node` with `token` until it is refused as revoked; fails after 5 s. */
async function untilRevoked(node: Node, token: string): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    const r = await listOn(node, token);
    if (!r.ok) {
      if (r.error.details?.reason === "revoked") return;
      throw new Error(`refused for another reason: ${JSON.stringify(r.error)}`);
    }
    if (performance.now() - t0 > 5000) throw new Error("still honoured 5 s after the revoke");
  }
}

/**
 * Starts etcd (three members) and three nodes, makes `count` revocations
 * (on a, b, c in turn) and measures when the two other nodes refuse each.
 */
export async function revocationPropagation(count: number): Promise<Propagation> {
  const etcd = await startEtcd(3);
  const op = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-op-" });
  const nodes: Node[] = [];
  const temps: Awaited<ReturnType<typeof tempLayout>>[] = [];
  try {
    const cluster = {
      name: "bench",
      etcd: etcd.endpoints,
      root: `${op}/root.pub`,
      proto: etcdProto(),
    };
    for (const id of ["a", "b", "c"]) {
      const t = await tempLayout();
      t.layout = { ...t.layout, nodeId: id, cluster };
      temps.push(t);
    }
    await ctl(temps[0].layout, op, ["cluster", "init", "--dir", op]);
    for (const temp of temps) nodes.push(await startNode({ temp }));
    for (const n of nodes) {
      await ctl(n.layout, op, ["cluster", "join", n.layout.nodeId, "--dir", op]);
    }
    const toks = [];
    for (let i = 0; i < count; i++) {
      toks.push(await issue(nodes[i % 3], { service: "fs", actions: ["list"] }));
    }
    // Every node honours every other node's tokens before the clock starts.
    for (const [i, t] of toks.entries()) {
      for (const n of nodes) {
        if (n !== nodes[i % 3]) {
          await waitFor(
            "the tokens to be honoured",
            async () => (await listOn(n, t.token)).ok,
            5000,
          );
        }
      }
    }
    const ms: number[] = [];
    for (const [i, t] of toks.entries()) {
      const by = nodes[i % 3];
      const r = await by.request(
        "identity",
        "identity.revoke",
        { cap_id: t.cap_id },
        by.operatorToken(),
      );
      if (!r.ok) throw new Error(`revoke failed: ${JSON.stringify(r.error)}`);
      const tOk = performance.now();
      await Promise.all(nodes.filter((n) => n !== by).map((n) => untilRevoked(n, t.token)));
      ms.push(performance.now() - tOk);
    }
    ms.sort((x, y) => x - y);
    return {
      revocations: count,
      p50_ms: percentile(ms, 50),
      p99_ms: percentile(ms, 99),
      max_ms: ms[ms.length - 1],
    };
  } finally {
    for (const n of nodes) await n.stop().catch((e) => console.error(e));
    for (const t of temps) await t.cleanup();
    await etcd.stop();
    await Deno.remove(op, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { revocations: { type: "string", default: "150" } },
  });
  const p = await revocationPropagation(Number(values.revocations));
  console.log(
    `revocation propagation across three nodes (${p.revocations}): p50 ${
      p.p50_ms.toFixed(1)
    } ms, ` +
      `p99 ${p.p99_ms.toFixed(1)} ms, max ${p.max_ms.toFixed(1)} ms`,
  );
}
