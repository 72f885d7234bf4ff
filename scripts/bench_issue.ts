/**
 * Issues per second through identity.issue on one connection, sequential and
 * 32 in flight, against a test node started from a repository checkout (this
 * one by default; give another checkout's root to compare before and after).
 *
 *   deno run --allow-run --allow-read --allow-write=/tmp --allow-net --allow-env scripts/bench_issue.ts [REPO_ROOT] [N]
 * @module
 */

const root = Deno.args[0] ?? new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const n = Number(Deno.args[1] ?? 3000);
const { startNode } = await import(`${root}/tests/helpers.ts`);
const node = await startNode();
try {
  const op = node.operatorToken();
  const client = await node.client("identity");
  const params = {
    service: "fs",
    actions: ["list", "open", "read"],
    path_prefix: node.exportRoot,
    ttl_seconds: 600,
  };
  for (let i = 0; i < 200; i++) await client.call("identity.issue", params, { token: op });
  for (const [label, inFlight] of [["sequential", 1], ["32 in flight", 32]] as const) {
    const t0 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: inFlight }, async () => {
      while (next++ < n) await client.call("identity.issue", params, { token: op });
    }));
    const s = (performance.now() - t0) / 1000;
    console.log(`${label}: ${n} issues in ${s.toFixed(2)} s = ${(n / s).toFixed(0)} issues/s`);
  }
} finally {
  await node.stop();
}
