/**
 * `deno task bench`: starts a supervisor in a temp dir, drives the real
 * sockets with persistent client connections, prints a table and writes the
 * same figures to bench/results.json.
 *
 *   deno task bench [--seconds=3] [--out=bench/results.json]
 * @module
 */

import { parseArgs } from "node:util";
import { Client } from "../src/ipc/client.ts";
import type { Response } from "../src/ipc/envelope.ts";
import { socketPath } from "../src/runtime/config.ts";
import { signV4Public } from "../src/token/paseto.ts";
import { generateSigningKey, importVerifyKey } from "../src/token/keys.ts";
import { TokenVerifier } from "../src/token/verifier.ts";
import { AUDIENCE, newCapId, rfc3339 } from "../src/token/claims.ts";
import {
  issue,
  type MemoryMb,
  memoryMb,
  startNode,
  tempLayout,
  waitFor,
} from "../tests/helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    out: { type: "string", default: "bench/results.json" },
  },
});
const SECONDS = Number(values.seconds);

interface Load {
  name: string;
  connections: number;
  ops_per_sec: number;
  p50_ms: number;
  p99_ms: number;
  mb_per_sec?: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * Runs `connections` loops, each on its own connection, each sending one
 * request after another for SECONDS seconds.
 */
async function load(
  name: string,
  path: string,
  connections: number,
  setup: (c: Client) => Promise<(c: Client) => Promise<Response>>,
  bytesOf?: (r: Response) => number,
): Promise<Load> {
  const clients = await Promise.all(
    Array.from({ length: connections }, () => Client.connect(path, { timeoutMs: 30_000 })),
  );
  const ops = await Promise.all(clients.map((c) => setup(c)));
  const latencies: number[] = [];
  let errors = 0;
  let bytes = 0;
  // Warm up: JIT, token cache, file cache.
  await Promise.all(clients.map(async (c, i) => {
    for (let k = 0; k < 50; k++) await ops[i](c);
  }));
  const start = performance.now();
  const end = start + SECONDS * 1000;
  await Promise.all(clients.map(async (c, i) => {
    while (performance.now() < end) {
      const t0 = performance.now();
      const r = await ops[i](c);
      latencies.push(performance.now() - t0);
      if (!r.ok) errors++;
      else if (bytesOf) bytes += bytesOf(r);
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  await Promise.all(clients.map((c) => c.close()));
  latencies.sort((a, b) => a - b);
  const out: Load = {
    name,
    connections,
    ops_per_sec: Math.round(latencies.length / elapsed),
    p50_ms: +percentile(latencies, 50).toFixed(3),
    p99_ms: +percentile(latencies, 99).toFixed(3),
    errors,
  };
  if (bytesOf) out.mb_per_sec = +(bytes / elapsed / 1e6).toFixed(1);
  return out;
}

/** Token verification cost, in-process, on the same code path services use. */
async function verification(): Promise<{ first_use_us: number; repeated_us: number }> {
  const key = await generateSigningKey();
  const vk = await importVerifyKey(key.publicKey);
  const now = Date.now();
  const claims = () => ({
    jti: newCapId(),
    iss: "identity@bench",
    aud: AUDIENCE,
    sub: "bench",
    iat: rfc3339(now),
    nbf: rfc3339(now),
    exp: rfc3339(now + 3600_000),
    service: "fs",
    actions: ["read"],
    rights: ["fs.read"],
    constraints: { path_prefix: "/tmp" },
  });
  const n = 2000;
  const tokens = await Promise.all(Array.from({ length: n }, () => signV4Public(key, claims())));
  const verifier = new TokenVerifier({
    issuer: "identity@bench",
    keys: { get: () => vk },
    cacheSize: n,
  });
  // Warm up the code paths on other tokens.
  const warm = await Promise.all(Array.from({ length: 200 }, () => signV4Public(key, claims())));
  for (const t of warm) await verifier.verify(t);
  let t0 = performance.now();
  for (const t of tokens) await verifier.verify(t);
  const first = ((performance.now() - t0) * 1000) / n;
  const reps = 200_000;
  t0 = performance.now();
  for (let i = 0; i < reps; i++) await verifier.verify(tokens[i % 100]);
  const repeated = ((performance.now() - t0) * 1000) / reps;
  return { first_use_us: +first.toFixed(1), repeated_us: +repeated.toFixed(2) };
}

// --- start-up: median of 3 cold starts on fresh state dirs ---
const starts: number[] = [];
for (let i = 0; i < 3; i++) {
  const t0 = performance.now();
  const n = await startNode();
  starts.push(performance.now() - t0);
  await n.stop();
}
starts.sort((a, b) => a - b);

const temp = await tempLayout();
const node = await startNode({ temp });
const results: Record<string, unknown> = {};
try {
  const op = node.operatorToken();
  const dir = `${temp.exportRoot}/list20`;
  await Deno.mkdir(dir);
  for (let i = 0; i < 20; i++) {
    await Deno.writeTextFile(`${dir}/file-${i}.txt`, "x".repeat(i * 100));
  }
  await Deno.writeFile(`${temp.exportRoot}/4k.bin`, crypto.getRandomValues(new Uint8Array(4096)));
  const big = new Uint8Array(64 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 65536) {
    big.set(crypto.getRandomValues(new Uint8Array(65536)), i);
  }
  await Deno.writeFile(`${temp.exportRoot}/64m.bin`, big);
  const fsTok = (await issue(node, { service: "fs", actions: ["list", "open", "read"] })).token;
  const idPath = socketPath(node.layout, "identity");
  const fsPath = socketPath(node.layout, "fs");
  const issueOp = () =>
    Promise.resolve((c: Client) =>
      c.request("identity.issue", { service: "fs", actions: ["read"], path_prefix: "/tmp" }, {
        token: op,
      })
    );
  const listOp = () =>
    Promise.resolve((c: Client) => c.request("fs.list", { path: dir }, { token: fsTok }));
  const readOp = (file: string, size: number) => async (c: Client) => {
    const { handle } = await c.call<{ handle: string }>("fs.open", { path: file }, {
      token: fsTok,
    });
    let offset = 0;
    return (c2: Client) => {
      const r = c2.request("fs.read", { handle, offset, size }, { token: fsTok });
      offset = (offset + size) % (64 * 1024 * 1024 - size);
      return r;
    };
  };
  const bytesRead = (r: Response) => (r.ok ? (r.result as { bytes_read: number }).bytes_read : 0);
  const loads: Load[] = [];
  for (const c of [1, 8]) loads.push(await load("identity.issue", idPath, c, issueOp));
  for (const c of [1, 8]) loads.push(await load("fs.list (20 entries)", fsPath, c, listOp));
  for (const c of [1, 8]) {
    loads.push(await load("fs.read 4 KiB", fsPath, c, readOp(`${temp.exportRoot}/4k.bin`, 4096)));
  }
  const chunk = 767 * 1024;
  for (const c of [1, 4]) {
    loads.push(
      await load(
        "fs.read 767 KiB",
        fsPath,
        c,
        readOp(`${temp.exportRoot}/64m.bin`, chunk),
        bytesRead,
      ),
    );
  }
  results.loads = loads;
  results.verification = await verification();

  // Memory of each service after the load.
  const list = (await node.request("supervisor", "supervisor.svc.list")) as {
    result: { services: { name: string; pid: number }[] };
  };
  const memory: Record<string, MemoryMb> = { supervisor: memoryMb(node.process.pid) };
  for (const s of list.result.services) memory[s.name] = memoryMb(s.pid);
  results.memory_mb = memory;

  // Recovery: SIGKILL of fs until it is Healthy again (median of 3).
  const recoveries: number[] = [];
  for (let i = 0; i < 3; i++) {
    const before = (await node.request("supervisor", "supervisor.svc.list")) as {
      result: { services: { name: string; pid: number }[] };
    };
    const fsPid = before.result.services.find((s) => s.name === "fs")!.pid;
    const t0 = performance.now();
    Deno.kill(fsPid, "SIGKILL");
    await waitFor("fs Healthy again", async () => {
      const r = (await node.request("supervisor", "supervisor.svc.list")) as {
        result: { services: { name: string; pid: number; state: string }[] };
      };
      const f = r.result.services.find((s) => s.name === "fs")!;
      return f.state === "Healthy" && f.pid !== fsPid;
    }, 10_000);
    recoveries.push(performance.now() - t0);
    await node.childPids();
    // Let the backoff reset window pass is not needed: three crashes stay under quarantine.
  }
  recoveries.sort((a, b) => a - b);
  results.start_to_healthy_ms = Math.round(starts[1]);
  results.kill9_fs_to_healthy_ms = Math.round(recoveries[1]);
} finally {
  await node.stop();
  await temp.cleanup();
}

results.machine = {
  deno: Deno.version.deno,
  cores: navigator.hardwareConcurrency,
  seconds_per_load: SECONDS,
  date: new Date().toISOString(),
};

// --- report ---
const loads = results.loads as Load[];
const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
console.log(row(["measure", "connections", "ops/s", "p50 ms", "p99 ms", "MB/s", "errors"]));
console.log(row(["---", "---:", "---:", "---:", "---:", "---:", "---:"]));
for (const l of loads) {
  console.log(row([
    l.name,
    String(l.connections),
    l.ops_per_sec.toLocaleString("en-US"),
    l.p50_ms.toFixed(3),
    l.p99_ms.toFixed(3),
    l.mb_per_sec !== undefined ? l.mb_per_sec.toFixed(1) : "",
    String(l.errors),
  ]));
}
const v = results.verification as { first_use_us: number; repeated_us: number };
console.log();
console.log(`token verification: first use ${v.first_use_us} µs, repeated use ${v.repeated_us} µs`);
console.log(`supervisor start → all Healthy: ${results.start_to_healthy_ms} ms (median of 3)`);
console.log(`SIGKILL fs → Healthy again: ${results.kill9_fs_to_healthy_ms} ms (median of 3)`);
console.log("\nmemory after the load (MB): resident / proportional / private");
for (const [name, m] of Object.entries(results.memory_mb as Record<string, MemoryMb>)) {
  console.log(`  ${name.padEnd(10)} ${m.rss} / ${m.pss} / ${m.private}`);
}
await Deno.mkdir("bench", { recursive: true });
await Deno.writeTextFile(values.out, JSON.stringify(results, null, 2) + "\n");
console.log(`\nwritten to ${values.out}`);
