/**
 * The revocation probe of scripts/cluster_demo.sh: polls fs.list with one token on each node's
 * fs socket (about every 2 ms) and prints, per node, when its fs first refused the token as
 * revoked (epoch ms), so the demo can say how long a revocation made on one node took to hold
 * on the others. Prints `ready` once every node has honoured the token; gives up after 20 s.
 *
 * Usage: deno run --allow-read=DIR --allow-write=DIR --allow-net=unix:SOCKET,... \
 *        scripts/cluster_demo_probe.ts TOKEN NAME=SOCKET:PATH...
 * @module
 */

import { Client } from "../src/server/client.ts";

/** How long the probe waits for every node to refuse the token (ms). */
const GIVE_UP_MS = 20_000;

/** One node's fs socket and the folder listed there. */
interface Target {
  name: string;
  socket: string;
  path: string;
  client?: Client;
  refusedAt?: number;
  error?: string;
}

/** Epoch milliseconds, with the monotonic clock's resolution. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Lists the node's folder with the token: "ok", "revoked", or another refusal's name. */
async function probe(t: Target, token: string): Promise<string> {
  t.client ??= await Client.connect(`unix://${t.socket}`);
  const r = await t.client.request("fs.list", { path: t.path }, { token });
  if (r.ok) return "ok";
  return r.error.details?.reason === "revoked" ? "revoked" : `${r.error.name}: ${r.error.message}`;
}

if (import.meta.main) {
  const [token, ...specs] = Deno.args;
  if (!token || specs.length === 0) {
    console.error("usage: cluster_demo_probe.ts TOKEN NAME=SOCKET:PATH...");
    Deno.exit(2);
  }
  const targets: Target[] = specs.map((s) => {
    const [name, rest] = [s.slice(0, s.indexOf("=")), s.slice(s.indexOf("=") + 1)];
    const [socket, path] = [rest.slice(0, rest.indexOf(":")), rest.slice(rest.indexOf(":") + 1)];
    return { name, socket, path };
  });
  for (const t of targets) {
    const first = await probe(t, token);
    if (first !== "ok") {
      console.error(`probe: node ${t.name} does not honour the token to begin with: ${first}`);
      Deno.exit(1);
    }
  }
  console.log("ready");
  const until = Date.now() + GIVE_UP_MS;
  while (targets.some((t) => t.refusedAt === undefined) && Date.now() < until) {
    for (const t of targets) {
      if (t.refusedAt !== undefined) continue;
      const got = await probe(t, token);
      if (got === "revoked") t.refusedAt = nowMs();
      else if (got !== "ok") t.error = got;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  for (const t of targets) {
    await t.client?.close();
    console.log(
      t.refusedAt !== undefined
        ? `refused ${t.name} ${t.refusedAt.toFixed(1)}`
        : `honoured ${t.name} ${t.error ?? "still honoured after 20 s"}`,
    );
  }
  Deno.exit(targets.every((t) => t.refusedAt !== undefined) ? 0 : 1);
}
