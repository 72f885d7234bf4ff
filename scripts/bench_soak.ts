/**
 * A long load: starts a node in a temp dir as `deno task start` would and
 * drives it for --minutes with every kind of request at once, each loop on
 * connections of its own, one request at a time: two issuing, one issuing a
 * token and listing with it (a first use each time), one listing, one
 * opening, reading 4 KiB and closing, one doing the same with 720 KiB, one
 * issuing and revoking 30-second tokens, and one connecting to fs afresh
 * for every request with a token that is not one (refusals, the audit's
 * refusal limit, connection churn). Every --every seconds it prints each
 * process's PSS and RSS, the state dir's size, the requests done and the
 * slowest so far; at the end, the same after a few quiet seconds. It exits 1
 * when a request failed other than as intended or a service's pid changed
 * (it crashed).
 *
 * What it shows is whether memory and disk stay bounded under a load that
 * goes on (audit rotation, the issued record, the revocation list's
 * compaction, caches, pools), not a rate: the loops share the machine's
 * cores with the node.
 *
 *   deno run --allow-run --allow-read --allow-write=/tmp --allow-net --allow-env scripts/bench_soak.ts [--minutes=10] [--every=60]
 * @module
 */

import { parseArgs } from "node:util";
import { Client } from "../src/server/client.ts";
import { memoryMb, startNode } from "../tests/helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { minutes: { type: "string", default: "10" }, every: { type: "string", default: "60" } },
});
const MINUTES = Number(values.minutes);
const EVERY_S = Number(values.every);
if (!(MINUTES > 0) || !(EVERY_S > 0)) {
  console.error("usage: bench_soak.ts [--minutes=10] [--every=60]");
  Deno.exit(2);
}
/** Tokens used by the loops are issued again this often (they live a minute). */
const RENEW_MS = 20_000;

const node = await startNode();

/** The load and its report; true when something went wrong. */
async function run(): Promise<boolean> {
  const rt = node.layout.runtimeDir;
  const op = node.operatorToken();
  const ex = node.exportRoot;
  for (let i = 0; i < 20; i++) await Deno.writeTextFile(`${ex}/f${i}.txt`, "x".repeat(4096));
  await Deno.writeFile(`${ex}/big.bin`, new Uint8Array(720 * 1024));

  const started = Date.now();
  let end = started + MINUTES * 60_000;
  const done: Record<string, number> = {};
  const slowest: Record<string, number> = {};
  const failures: Record<string, number> = {};
  /** Counts a request that failed, by loop and message. */
  const fail = (name: string, err: unknown) => {
    const why = `${name}: ${err instanceof Error ? err.message : err}`;
    failures[why] = (failures[why] ?? 0) + 1;
  };
  const fsParams = {
    service: "fs",
    actions: ["list", "open", "read"],
    path_prefix: ex,
    ttl_seconds: 60,
  };
  const sock = (s: string) => `${rt}/${s}.sock`;

  /** A loop with its own identity and fs connections and its own fs token, renewed as it goes. */
  async function loop(
    name: string,
    body: (c: { identity: Client; fs: Client; token: string }) => Promise<void>,
    afresh = false,
  ): Promise<void> {
    let c;
    try {
      c = {
        identity: await Client.connect(sock("identity")),
        fs: await Client.connect(sock("fs")),
        token: "",
      };
    } catch (err) {
      fail(name, err);
      return;
    }
    let renewed = 0;
    while (Date.now() < end) {
      const t0 = performance.now();
      try {
        if (Date.now() - renewed > RENEW_MS) {
          c.token =
            (await c.identity.call<{ token: string }>("identity.issue", fsParams, { token: op }))
              .token;
          renewed = Date.now();
        }
        if (afresh) {
          await c.fs.close();
          c.fs = await Client.connect(sock("fs"));
        }
        await body(c);
        done[name] = (done[name] ?? 0) + 1;
      } catch (err) {
        fail(name, err);
        await new Promise((r) => setTimeout(r, 10));
      }
      slowest[name] = Math.max(slowest[name] ?? 0, Math.round(performance.now() - t0));
    }
    await c.identity.close();
    await c.fs.close();
  }

  async function read(fs: Client, token: string, path: string, size: number): Promise<void> {
    const { handle } = await fs.call<{ handle: string }>("fs.open", { path }, { token });
    await fs.call("fs.read", { handle, offset: 0, size }, { token });
    await fs.call("fs.close", { handle }, { token });
  }

  const pidsAtStart = new Map<string, number>();
  async function pids(): Promise<[string, number][]> {
    const r = await node.request("supervisor", "supervisor.svc.list", {}, op);
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    const list = (r.result as { services: { name: string; pid: number | null }[] }).services;
    return [
      ["supervisor", node.process.pid],
      ...list.map((s) => [s.name, s.pid ?? 0] as [string, number]),
    ];
  }
  for (const [name, pid] of await pids()) pidsAtStart.set(name, pid);

  function kbOf(path: string): number {
    const out = new Deno.Command("du", { args: ["-sk", path] }).outputSync();
    return Number(new TextDecoder().decode(out.stdout).split("\t")[0]);
  }

  async function sample(label: string): Promise<void> {
    const mem = (await pids()).map(([name, pid]) => {
      if (pid === 0) return `${name} (not running)`;
      const m = memoryMb(pid);
      return `${name} ${m.pss}/${m.rss}`;
    });
    const s = Math.round((Date.now() - started) / 1000);
    console.log(
      `${label} ${s}s  PSS/RSS MB: ${mem.join(", ")}  state dir ${
        Math.round(kbOf(node.layout.stateDir) / 1024)
      } MB`,
    );
    console.log(`  requests: ${JSON.stringify(done)}  slowest ms: ${JSON.stringify(slowest)}`);
  }

  // Ctrl-C or SIGTERM ends the load early; the node is stopped either way (below).
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      end = Date.now();
    });
  }
  const ticker = setInterval(() => void sample("under load").catch(() => {}), EVERY_S * 1000);
  await Promise.all([
    loop("issue", async (c) => {
      await c.identity.call("identity.issue", fsParams, { token: op });
    }),
    loop("issue", async (c) => {
      await c.identity.call("identity.issue", fsParams, { token: op });
    }),
    loop("first use", async (c) => {
      const t = await c.identity.call<{ token: string }>("identity.issue", fsParams, { token: op });
      await c.fs.call("fs.list", { path: ex }, { token: t.token });
    }),
    loop("list", async (c) => {
      await c.fs.call("fs.list", { path: ex }, { token: c.token });
    }),
    loop("read 4 KiB", (c) => read(c.fs, c.token, `${ex}/f1.txt`, 4096)),
    loop("read 720 KiB", (c) => read(c.fs, c.token, `${ex}/big.bin`, 720 * 1024)),
    loop("revoke", async (c) => {
      const t = await c.identity.call<{ cap_id: string }>("identity.issue", {
        ...fsParams,
        ttl_seconds: 30,
      }, {
        token: op,
      });
      await c.identity.call("identity.revoke", { cap_id: t.cap_id }, { token: op });
    }),
    loop("refused, new connection", async (c) => {
      const r = await c.fs.request("fs.list", { path: ex }, { token: "v4.public.not-a-token" });
      if (r.ok || r.error.name !== "UNAUTHENTICATED") throw new Error(JSON.stringify(r));
    }, true),
  ]);
  clearInterval(ticker);
  await sample("end of the load").catch((err) => console.log(`no sample: ${err}`));
  await new Promise((r) => setTimeout(r, 5000));
  await sample("after 5 s quiet").catch((err) => console.log(`no sample: ${err}`));
  let bad = Object.keys(failures).length > 0;
  if (bad) console.log(`failed requests: ${JSON.stringify(failures)}`);
  for (const [name, pid] of await pids()) {
    if (pidsAtStart.get(name) !== pid) {
      console.log(`${name} was restarted: pid ${pidsAtStart.get(name)}, now ${pid}`);
      bad = true;
    }
  }
  return bad;
}

let bad = true;
try {
  bad = await run();
} finally {
  await node.stop();
}
Deno.exit(bad ? 1 : 0);
