/**
 * Revocations per second: starts a node in a temp dir, issues tokens, then
 * revokes them by cap_id (operator token) over `--connections` persistent
 * connections, `--depth` requests in flight on each, for `--seconds`, and
 * prints revocations per second and latency percentiles.
 *
 *   deno run --allow-run --allow-read --allow-write=/tmp --allow-net --allow-env scripts/bench_revoke.ts [--connections=8] [--depth=1] [--seconds=3]
 * @module
 */

import { parseArgs } from "node:util";
import { Client } from "../src/server/client.ts";
import { socketPath } from "../src/runtime/config.ts";
import { startNode } from "../tests/helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    connections: { type: "string", default: "8" },
    depth: { type: "string", default: "1" },
    seconds: { type: "string", default: "3" },
    tokens: { type: "string", default: "20000" },
  },
});
const CONNECTIONS = Number(values.connections);
const DEPTH = Number(values.depth);
const SECONDS = Number(values.seconds);

const node = await startNode();
try {
  const op = node.operatorToken();
  const path = socketPath(node.layout, "identity");
  const clients = await Promise.all(
    Array.from({ length: CONNECTIONS }, () => Client.connect(path, { timeoutMs: 30_000 })),
  );
  const ids: string[] = [];
  await Promise.all(clients.map(async (c) => {
    while (ids.length < Number(values.tokens)) {
      const r = await c.request("identity.issue", { service: "fs", rights: ["fs.list"] }, {
        token: op,
      });
      if (!r.ok) throw new Error(JSON.stringify(r.error));
      ids.push((r.result as { cap_id: string }).cap_id);
    }
  }));
  const latencies: number[] = [];
  let errors = 0;
  // Warm up (JIT), then measure.
  for (const phase of [0.3, SECONDS]) {
    latencies.length = 0;
    const start = performance.now();
    const end = start + phase * 1000;
    await Promise.all(
      clients.flatMap((c) => Array.from({ length: DEPTH }, () => c)).map(async (c) => {
        while (performance.now() < end) {
          const capId = ids.pop();
          if (capId === undefined) throw new Error("ran out of tokens; raise --tokens");
          const t0 = performance.now();
          const r = await c.request("identity.revoke", { cap_id: capId }, { token: op });
          latencies.push(performance.now() - t0);
          if (!r.ok || (r.result as { already?: boolean }).already) errors++;
        }
      }),
    );
    const elapsed = (performance.now() - start) / 1000;
    if (phase !== SECONDS) continue;
    latencies.sort((a, b) => a - b);
    const pct = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    console.log(JSON.stringify({
      connections: CONNECTIONS,
      depth: DEPTH,
      revokes_per_sec: Math.round(latencies.length / elapsed),
      p50_ms: +pct(0.5).toFixed(2),
      p99_ms: +pct(0.99).toFixed(2),
      errors,
    }));
  }
  await Promise.all(clients.map((c) => c.close()));
} finally {
  await node.stop();
}
