/**
 * Cluster figures for `deno task bench` (docs/cluster.md): a three-member
 * etcd and three Strata nodes on this machine, endorsed by a fresh root, B's
 * fs also on tcp://127.0.0.1 with the certificate `cluster join b --host`
 * issued. Revocation propagation: revocations made on each node in turn, one
 * at a time; for each, the time from the revoke's ok until both other nodes'
 * fs refuse the token. Cross-node read: a client on A reads 720 KiB at a time
 * from B's fs over TLS, on 4 connections, with a token A issued. Needs
 * Debian's etcd (`apt-get install etcd-server`).
 *
 *   deno run --allow-run --allow-read --allow-write=/tmp --allow-net --allow-env scripts/bench_cluster.ts [--revocations=150] [--seconds=3]
 * @module
 */

import { parseArgs } from "node:util";
import { Client } from "../src/server/client.ts";
import {
  freePort,
  issue,
  type Node,
  startNode,
  type TempLayout,
  tempLayout,
  waitFor,
} from "../tests/helpers.ts";
import { startEtcd } from "../tests/etcd.ts";
import { ctl, listOn } from "../tests/cluster_support.ts";

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

/** Cross-node reads: a client on A reading B's fs over TLS. */
export interface CrossRead {
  /** Bytes per fs.read. */
  size: number;
  connections: number;
  mb_per_sec: number;
  ops_per_sec: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
}

/** What the cluster section of `deno task bench` measures. */
export interface ClusterFigures {
  propagation: Propagation;
  crossRead: CrossRead;
}

/** Size of each cross-node fs.read (the single-node figure's size). */
const READ_SIZE = 720 * 1024;

/** Connections of the cross-node read. */
const READ_CONNECTIONS = 4;

/** Size of the file on B the cross-node read goes through. */
const FILE_SIZE = 64 * 1024 * 1024;

/**
 * Starts etcd (three members) and three nodes (B's fs also on tcp://), makes
 * `options.revocations` revocations (on a, b, c in turn) and measures when the
 * two other nodes refuse each; then reads B's fs from A over TLS for
 * `options.seconds`.
 */
export async function clusterFigures(
  options: { revocations: number; seconds: number },
): Promise<ClusterFigures> {
  const etcd = await startEtcd(3);
  const op = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-op-" });
  const nodes: Node[] = [];
  const temps: TempLayout[] = [];
  try {
    const cluster = {
      name: "bench",
      etcd: etcd.endpoints,
      root: `${op}/root.pub`,
      ca: `${op}/ca.pem`,
    };
    for (const id of ["a", "b", "c"]) {
      const t = await tempLayout();
      t.layout = { ...t.layout, nodeId: id, cluster };
      temps.push(t);
    }
    await ctl(temps[0].layout, op, ["cluster", "init", "--dir", op]);
    for (const temp of temps) nodes.push(await startNode({ temp }));
    for (const n of nodes) {
      // Every node gets a certificate: B's fs serves with its own, A's client presents A's.
      await ctl(n.layout, op, [
        "cluster",
        "join",
        n.layout.nodeId,
        "--dir",
        op,
        "--host",
        "127.0.0.1",
      ]);
    }
    // B again, now with fs on tcp:// and the certificate the cluster CA signed.
    const fsTcp = `tcp://127.0.0.1:${freePort()}`;
    await nodes[1].stop();
    temps[1].layout = {
      ...temps[1].layout,
      listen: { fs: fsTcp },
      tls: { cert: `${op}/nodes/b.pem`, key: `${op}/nodes/b.key` },
    };
    nodes[1] = await startNode({ temp: temps[1] });
    const propagation = await propagationOver(nodes, options.revocations);
    const crossRead = await readAcross(nodes[0], nodes[1], {
      endpoint: fsTcp,
      caFile: cluster.ca,
      certFile: `${op}/nodes/a.pem`,
      keyFile: `${op}/nodes/a.key`,
      seconds: options.seconds,
    });
    return { propagation, crossRead };
  } finally {
    for (const n of nodes) await n.stop().catch((e) => console.error(e));
    for (const t of temps) await t.cleanup();
    await etcd.stop();
    await Deno.remove(op, { recursive: true }).catch(() => {});
  }
}

/**
 * Reads B's fs from A for `options.seconds`: READ_CONNECTIONS TLS connections
 * to B's tcp:// endpoint, each one fs.read of READ_SIZE after another, with a
 * token A issued.
 */
async function readAcross(
  a: Node,
  b: Node,
  options: { endpoint: string; caFile: string; certFile: string; keyFile: string; seconds: number },
): Promise<CrossRead> {
  const path = `${b.exportRoot}/64m.bin`;
  const f = await Deno.open(path, { write: true, create: true });
  const chunk = new Uint8Array(1024 * 1024);
  for (let i = 0; i < FILE_SIZE / chunk.length; i++) {
    for (let j = 0; j < chunk.length; j += 65536) {
      crypto.getRandomValues(chunk.subarray(j, j + 65536));
    }
    await f.write(chunk);
  }
  f.close();
  const { token } = await issue(a, { service: "fs", actions: ["open", "read"] });
  const clients = await Promise.all(
    Array.from(
      { length: READ_CONNECTIONS },
      () =>
        Client.connect(options.endpoint, {
          caFile: options.caFile,
          certFile: options.certFile,
          keyFile: options.keyFile,
          timeoutMs: 30_000,
        }),
    ),
  );
  try {
    const readers = await Promise.all(clients.map(async (c, i) => {
      const { handle } = await c.call<{ handle: string }>("fs.open", { path }, { token });
      // Each connection starts elsewhere in the file and wraps around.
      let offset = i * (FILE_SIZE / READ_CONNECTIONS);
      return async () => {
        const r = await c.request("fs.read", { handle, offset, size: READ_SIZE }, { token });
        offset = (offset + READ_SIZE) % (FILE_SIZE - READ_SIZE);
        return r.ok ? (r.result as { bytes_read: number }).bytes_read : -1;
      };
    }));
    // Warm up: JIT, token cache, file cache, TLS.
    await Promise.all(readers.map(async (read) => {
      for (let k = 0; k < 10; k++) await read();
    }));
    const latencies: number[] = [];
    let bytes = 0;
    let errors = 0;
    const start = performance.now();
    const end = start + options.seconds * 1000;
    await Promise.all(readers.map(async (read) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const n = await read();
        latencies.push(performance.now() - t0);
        if (n < 0) errors++;
        else bytes += n;
      }
    }));
    const elapsed = (performance.now() - start) / 1000;
    latencies.sort((x, y) => x - y);
    return {
      size: READ_SIZE,
      connections: READ_CONNECTIONS,
      mb_per_sec: +(bytes / elapsed / 1e6).toFixed(1),
      ops_per_sec: Math.round(latencies.length / elapsed),
      p50_ms: +percentile(latencies, 50).toFixed(3),
      p99_ms: +percentile(latencies, 99).toFixed(3),
      errors,
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/**
 * Makes `count` revocations on the nodes in turn and measures, for each, when
 * the other nodes' fs refuse the token after the revoke's ok.
 */
async function propagationOver(nodes: Node[], count: number): Promise<Propagation> {
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
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      revocations: { type: "string", default: "150" },
      seconds: { type: "string", default: "3" },
    },
  });
  const { propagation: p, crossRead: r } = await clusterFigures({
    revocations: Number(values.revocations),
    seconds: Number(values.seconds),
  });
  console.log(
    `revocation propagation across three nodes (${p.revocations}): p50 ${
      p.p50_ms.toFixed(1)
    } ms, ` +
      `p99 ${p.p99_ms.toFixed(1)} ms, max ${p.max_ms.toFixed(1)} ms`,
  );
  console.log(
    `cross-node fs.read ${r.size / 1024} KiB over TLS, A reading B, ${r.connections} conn: ` +
      `${r.mb_per_sec} MB/s (${r.ops_per_sec} reads/s, p50 ${r.p50_ms} ms, p99 ${r.p99_ms} ms, ` +
      `${r.errors} errors)`,
  );
}
