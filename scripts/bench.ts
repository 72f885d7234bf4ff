/**
 * `deno task bench`: starts a node in a temp dir, drives its real sockets
 * with persistent protocol-level client connections (one request at a time
 * on each), prints a table and writes the figures to bench/results.json.
 *
 *   deno task bench [--seconds=3] [--rounds=1] [--out=bench/results.json]
 *   deno task bench --baseline REF [--rounds=3]
 *   deno task bench --only=issue,list   (only the figures whose names contain one of these)
 *   deno task bench --baseline REF --floor   (the floor of the rates and the memory too: scripts/bench_floor.ts)
 *   deno task bench --baseline REF --floor-records   (a floor that also keeps the protocol's records)
 *   deno task bench --modules   (this checkout's services run from their modules, not bundled)
 *
 * This checkout's services run as the installed form runs them: each from
 * its bundle (scripts/bundle.ts), built into a temp dir first; strata-ctl
 * from its modules. --modules runs them from their modules instead, as
 * `deno task start` and the tests do.
 *
 * With --baseline, a second copy of the project at git ref REF is extracted
 * into a temp dir and both nodes run side by side; every figure is measured
 * interleaved (ours, baseline, then baseline, ours, …) for --rounds rounds,
 * and the table gives each side's median and their ratio. The machine's
 * speed drifts during a day, so only ratios from one such run are claims.
 * Each node is started the way its own code starts the supervisor
 * (src/runtime/command.ts of that copy), with its own permission flags.
 *
 * With --floor, the rates are also measured, in the same rotation, on a
 * floor: scripts/bench_floor.ts run as identity and as fs, which answers the
 * same requests doing only what no implementation can skip, and as
 * supervisor and registry, sockets that answer and follow the revocation
 * list (for the memory after the load, which the floor's programs hold as
 * any implementation must). The floor's ratio to the baseline is, within the
 * floor's own tuning, the most a Deno service could reach on the machine.
 * With --floor-records the floor also keeps the records Strata's protocol
 * requires of these operations (an audit line for each issue, revocation,
 * open and read, and the issued record identity.list answers from), in
 * place of the plain floor: the most an implementation of the protocol
 * could reach.
 *
 * Each rate is timed over --seconds of requests (identity.revoke's over at
 * most 80,000 revocations in all, of tokens issued before its timing), each
 * subject's after a `sync`, and counts only answered requests.
 * @module
 */

import { parseArgs } from "node:util";
import { Client } from "../src/server/client.ts";
import type { Response } from "../src/wire/envelope.ts";
import { alive, type MemoryMb, memoryMb, waitFor } from "../tests/helpers.ts";
import { haveEtcd } from "../tests/etcd.ts";
import { layoutArgs } from "../src/runtime/config.ts";
import { clusterFigures } from "./bench_cluster.ts";
import { floorCommand, writeFloorOperatorClaims } from "./bench_floor_command.ts";
import { IDLE_TICK_MS } from "../src/node/idle_gc.ts";
import { bundleServices } from "./bundle.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    rounds: { type: "string" },
    baseline: { type: "string" },
    out: { type: "string", default: "bench/results.json" },
    only: { type: "string" },
    floor: { type: "boolean", default: false },
    "floor-records": { type: "boolean", default: false },
    modules: { type: "boolean", default: false },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds ?? (values.baseline ? 3 : 1));
const DENO = Deno.execPath();
const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const decoder = new TextDecoder();
const ONLY = values.only?.split(",").filter((x) => x !== "");

/** Whether --only lets the figure of this name be measured (every figure without --only). */
function wanted(name: string): boolean {
  return !ONLY || ONLY.some((x) => name.includes(x));
}

/** One rate measured under load. */
interface Load {
  ops_per_sec: number;
  p50_ms: number;
  p99_ms: number;
  mb_per_sec?: number;
  errors: number;
}

/** A copy of Strata that can be started: this checkout, or a baseline ref. */
interface Subject {
  name: string;
  root: string;
  /** The floor's programs instead of a node (see scripts/bench_floor.ts). */
  floor?: boolean;
  /** The floor keeps the protocol's records too (--floor-records). */
  records?: boolean;
  /** Variables every program of the subject runs with (a baseline's own DENO_DIR). */
  env?: Record<string, string>;
  /**
   * A folder holding the services' bundles (dist/<program>/main.js): the
   * supervisor runs from its bundle and starts its children from theirs.
   */
  bundles?: string;
}

/** A running node of one subject. */
interface RunningNode {
  subject: Subject;
  dir: string;
  layout: { runtimeDir: string; stateDir: string; nodeId: string; fsRoots: string[] };
  exportRoot: string;
  process: Deno.ChildProcess;
  pids: Set<number>;
  /** The floor's four programs (a node has its supervisor's children in pids). */
  children?: Deno.ChildProcess[];
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function sock(n: Pick<RunningNode, "layout">, service: string): string {
  return `${n.layout.runtimeDir}/${service}.sock`;
}

/** Extracts the project at `ref` into a temp dir (git archive: tracked files only). */
async function checkoutRef(ref: string): Promise<Subject> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-base-" });
  const archive = new Deno.Command("git", {
    args: ["-C", ROOT, "archive", "--format=tar", ref],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tar = new Deno.Command("tar", { args: ["-x", "-C", dir], stdin: "piped" }).spawn();
  await archive.stdout.pipeTo(tar.stdin);
  const [a, t] = await Promise.all([archive.output(), tar.status]);
  if (!a.success || !t.success) {
    // A ref that names nothing (or a checkout that is no repository) leaves no temp dir behind.
    await Deno.remove(dir, { recursive: true });
    throw new Error(`git archive ${ref} failed: ${decoder.decode(a.stderr).trim()}`);
  }
  const rev = new Deno.Command("git", { args: ["-C", ROOT, "rev-parse", "--short", ref] })
    .outputSync();
  // The baseline's transpiled modules and V8's code cache of them go into a DENO_DIR of its own,
  // removed with it: in the user's, every run left a copy under a temp path never used again
  // (158 MB of transpiled code and a 30 MB code cache database on the machine this was written
  // on, whose size decides how much of it SQLite maps and how much it reads into malloc's heap).
  // Its npm packages are the user's cached ones.
  const denoDir = `${dir}/.bench-deno`;
  try {
    const info = JSON.parse(decoder.decode(
      new Deno.Command(DENO, { args: ["info", "--json"], stderr: "null" }).outputSync().stdout,
    )) as { npmCache: string };
    await Deno.mkdir(denoDir);
    // ln, as Deno.symlink needs unscoped read and write grants and the bench writes only below
    // /tmp and bench/.
    const ln = await new Deno.Command("ln", { args: ["-s", info.npmCache, `${denoDir}/npm`] })
      .output();
    if (!ln.success) throw new Error(`ln -s: ${decoder.decode(ln.stderr).trim()}`);
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  return {
    name: `baseline ${decoder.decode(rev.stdout).trim()}`,
    root: dir,
    env: { DENO_DIR: denoDir },
  };
}

/** The command a subject's own code gives for one of its programs. */
async function commandOf(
  s: Subject,
  program: "supervisor" | "ctl",
  layout: RunningNode["layout"],
): Promise<{ cmd: string; args: string[]; env?: Record<string, string> }> {
  const mod = await import(`file://${s.root}/src/runtime/command.ts`);
  const mode = program === "supervisor" && s.bundles
    ? { kind: "dev", deno: DENO, root: s.bundles, bundled: true }
    : { kind: "dev", deno: DENO, root: s.root };
  const c = mod.programCommand(program, layout, mode, {
    run: program === "supervisor" ? [DENO] : undefined,
  });
  return s.env ? { ...c, env: { ...c.env, ...s.env } } : c;
}

/** A fresh temp dir, its layout and its (empty) export root. */
async function freshLayout(): Promise<Pick<RunningNode, "dir" | "layout" | "exportRoot">> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-b-" });
  const exportRoot = `${dir}/export`;
  await Deno.mkdir(exportRoot);
  const layout = {
    runtimeDir: `${dir}/rt`,
    stateDir: `${dir}/state`,
    nodeId: "bench",
    fsRoots: [exportRoot],
  };
  return { dir, layout, exportRoot };
}

/** Starts a subject's supervisor on a fresh temp layout and waits until all is Healthy. */
async function startSubject(s: Subject): Promise<{ node: RunningNode; ms: number }> {
  const { dir, layout, exportRoot } = await freshLayout();
  const c = await commandOf(s, "supervisor", layout);
  const t0 = performance.now();
  const process = new Deno.Command(c.cmd, {
    args: c.args,
    env: c.env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const node: RunningNode = { subject: s, dir, layout, exportRoot, process, pids: new Set() };
  await untilHealthy(`${s.name}`, node);
  const ms = performance.now() - t0;
  for (const x of await services(node)) if (x.pid) node.pids.add(x.pid);
  return { node, ms };
}

/** Waits (20 s at most) until every service of the node `n` is Healthy. */
function untilHealthy(what: string, n: Pick<RunningNode, "layout">): Promise<void> {
  return waitFor(`${what}: every service Healthy`, async () => {
    const list = await services(n);
    return list.length > 0 && list.every((x) => x.state === "Healthy");
  }, 20_000);
}

async function call(
  path: string,
  method: string,
  params?: Record<string, unknown>,
  token?: string,
) {
  const c = await Client.connect(path, { timeoutMs: 5000, connectTimeoutMs: 500 });
  try {
    return await c.request(method, params, { token });
  } finally {
    await c.close();
  }
}

async function services(
  n: Pick<RunningNode, "layout">,
): Promise<{ name: string; pid: number; state: string; since?: string }[]> {
  const r = await call(sock(n, "supervisor"), "supervisor.svc.list");
  return r.ok
    ? (r.result as { services: { name: string; pid: number; state: string; since?: string }[] })
      .services
    : [];
}

/** The floor's programs, in the order they start. */
const FLOOR_PROGRAMS = ["identity", "fs", "supervisor", "registry"] as const;

/**
 * Starts the floor's programs in place of the four, each with that
 * program's permission flags, V8 flags and environment from this checkout.
 */
async function startFloor(s: Subject): Promise<RunningNode> {
  const { dir, layout, exportRoot } = await freshLayout();
  const children: Deno.ChildProcess[] = [];
  try {
    for (const d of [layout.runtimeDir, layout.stateDir]) await Deno.mkdir(d, { mode: 0o700 });
    // The floor's identity signs the operator token of these claims at start.
    await writeFloorOperatorClaims(layout.stateDir);
    // identity first: the others read the key it writes and follow the list it appends to.
    for (const program of FLOOR_PROGRAMS) {
      const c = floorCommand(program, layout, DENO, { records: s.records });
      children.push(
        new Deno.Command(c.cmd, { args: c.args, env: c.env, stdin: "null", stdout: "null" })
          .spawn(),
      );
      await waitFor(`the floor's ${program}`, async () => {
        try {
          return (await call(sock({ layout }, program), `${program}.health`)).ok;
        } catch {
          return false;
        }
      }, 10_000);
    }
  } catch (err) {
    await stopFloor(children, dir);
    throw err;
  }
  const pids = new Set(children.map((c) => c.pid));
  return { subject: s, dir, layout, exportRoot, process: children[0], pids, children };
}

/** Stops the floor's programs and removes its temp dir. */
async function stopFloor(children: Deno.ChildProcess[], dir: string): Promise<void> {
  for (const c of children) {
    try {
      c.kill("SIGTERM");
    } catch { /* gone */ }
    await c.status;
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

async function stopSubject(n: RunningNode): Promise<void> {
  if (n.children) return await stopFloor(n.children, n.dir);
  for (const x of await services(n).catch(() => [])) if (x.pid) n.pids.add(x.pid);
  try {
    n.process.kill("SIGTERM");
  } catch { /* gone */ }
  const done = await Promise.race([
    n.process.status.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 15_000)),
  ]);
  if (!done) {
    n.process.kill("SIGKILL");
    await n.process.status;
  }
  await waitFor("children gone", () => [...n.pids].every((p) => !alive(p)), 5000).catch(() => {
    for (const p of n.pids) if (alive(p)) Deno.kill(p, "SIGKILL");
  });
  await Deno.remove(n.dir, { recursive: true }).catch(() => {});
}

function operatorToken(n: RunningNode): string {
  return Deno.readTextFileSync(`${n.layout.stateDir}/operator.token`).trim();
}

/**
 * Runs `connections` loops, each on its own connection, each sending one
 * request after another for SECONDS seconds.
 */
async function load(
  path: string,
  connections: number,
  setup: (c: Client) => Promise<() => Promise<Response>>,
  bytesOf?: (r: Response) => number,
  count?: number,
): Promise<Load> {
  const clients = await Promise.all(
    Array.from({ length: connections }, () => Client.connect(path, { timeoutMs: 30_000 })),
  );
  const ops = await Promise.all(clients.map((c) => setup(c)));
  const latencies: number[] = [];
  let errors = 0;
  let bytes = 0;
  // Warm up: JIT, token cache, file cache.
  await Promise.all(ops.map(async (op) => {
    for (let k = 0; k < 20; k++) await op();
  }));
  const start = performance.now();
  const end = start + SECONDS * 1000;
  await Promise.all(ops.map(async (op) => {
    // SECONDS of requests, at most `count` on each connection.
    for (let k = 0; performance.now() < end && (count === undefined || k < count); k++) {
      const t0 = performance.now();
      const r = await op();
      latencies.push(performance.now() - t0);
      if (!r.ok) errors++;
      else if (bytesOf) bytes += bytesOf(r);
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  await Promise.all(clients.map((c) => c.close()));
  latencies.sort((a, b) => a - b);
  const out: Load = {
    // A refused request is no operation done: only answered ones count.
    ops_per_sec: Math.round((latencies.length - errors) / elapsed),
    p50_ms: +percentile(latencies, 50).toFixed(3),
    p99_ms: +percentile(latencies, 99).toFixed(3),
    errors,
  };
  if (bytesOf) out.mb_per_sec = +(bytes / elapsed / 1e6).toFixed(1);
  return out;
}

/** Files every node serves: a folder of 20 entries, a 4 KiB file and a 64 MiB one. */
async function fillExport(n: RunningNode): Promise<void> {
  const dir = `${n.exportRoot}/list20`;
  await Deno.mkdir(dir);
  for (let i = 0; i < 20; i++) {
    await Deno.writeTextFile(`${dir}/file-${i}.txt`, "x".repeat(i * 100));
  }
  await Deno.writeFile(`${n.exportRoot}/4k.bin`, crypto.getRandomValues(new Uint8Array(4096)));
  const f = await Deno.open(`${n.exportRoot}/64m.bin`, { write: true, create: true });
  const chunk = new Uint8Array(1024 * 1024);
  for (let i = 0; i < 64; i++) {
    for (let j = 0; j < chunk.length; j += 65536) {
      crypto.getRandomValues(chunk.subarray(j, j + 65536));
    }
    await f.write(chunk);
  }
  f.close();
}

async function issueToken(n: RunningNode, params: Record<string, unknown>): Promise<string> {
  const r = await call(sock(n, "identity"), "identity.issue", params, operatorToken(n));
  if (!r.ok) throw new Error(`${n.subject.name}: issue failed: ${JSON.stringify(r.error)}`);
  return (r.result as { token: string }).token;
}

const READ_SIZES = { small: 4096, large: 720 * 1024 };

/** One figure: how to measure it on a node, and whether more is better. */
interface Figure {
  name: string;
  unit: string;
  higherIsBetter: boolean;
  measure(n: RunningNode): Promise<{ value: number; detail?: Load }>;
}

function rate(
  name: string,
  service: string,
  connections: number,
  setup: (n: RunningNode) => (c: Client) => Promise<() => Promise<Response>>,
  bytesOf?: (r: Response) => number,
  count?: number,
): Figure {
  return {
    name: `${name}, ${connections} conn`,
    unit: bytesOf ? "MB/s" : "ops/s",
    higherIsBetter: true,
    async measure(n) {
      const l = await load(sock(n, service), connections, setup(n), bytesOf, count);
      return { value: bytesOf ? l.mb_per_sec! : l.ops_per_sec, detail: l };
    },
  };
}

const fsTokens = new Map<RunningNode, string>();
async function fsToken(n: RunningNode): Promise<string> {
  let t = fsTokens.get(n);
  if (!t) {
    t = await issueToken(n, { service: "fs", actions: ["list", "open", "read"] });
    fsTokens.set(n, t);
  }
  return t;
}

function issueOp(n: RunningNode) {
  const op = operatorToken(n);
  return (c: Client) =>
    Promise.resolve(() =>
      c.request("identity.issue", { service: "fs", actions: ["read"], path_prefix: "/tmp" }, {
        token: op,
      })
    );
}

/** Issue a token on identity, then use it once on fs (its first use: a full verification). */
function issueThenUse(n: RunningNode) {
  const op = operatorToken(n);
  return async (c: Client) => {
    const fsc = await Client.connect(sock(n, "fs"), { timeoutMs: 30_000 });
    const path = `${n.exportRoot}/list20`;
    return async () => {
      const r = await c.request("identity.issue", {
        service: "fs",
        actions: ["list"],
        path_prefix: n.exportRoot,
        ttl_seconds: 600,
      }, { token: op });
      if (!r.ok) return r;
      return await fsc.request("fs.list", { path }, {
        token: (r.result as { token: string }).token,
      });
    };
  };
}

function listOp(n: RunningNode) {
  return async (c: Client) => {
    const tok = await fsToken(n);
    const path = `${n.exportRoot}/list20`;
    return () => c.request("fs.list", { path }, { token: tok });
  };
}

function readOp(file: string, size: number) {
  return (n: RunningNode) => async (c: Client) => {
    const tok = await fsToken(n);
    const { handle } = await c.call<{ handle: string }>("fs.open", {
      path: `${n.exportRoot}/${file}`,
    }, { token: tok });
    let offset = 0;
    return () => {
      const r = c.request("fs.read", { handle, offset, size }, { token: tok });
      offset = (offset + size) % (64 * 1024 * 1024 - size);
      return r;
    };
  };
}

/**
 * Revocations each connection makes at most in a round of the revoke figure
 * (80,000 in all over the rounds): with none, the subjects that revoke
 * fastest made over 100,000 live revocations, the most identity keeps (each
 * refusal was counted as a revocation), and held more of them than the
 * others in the memory measured after the load.
 */
const REVOKES_PER_CONN = Math.floor(80_000 / (8 * ROUNDS));

/**
 * Revokes tokens issued beforehand (each op: one identity.revoke of a fresh
 * cap_id). They are issued before the clock starts, so the figure is of
 * revocations alone, not of as many issues as well.
 */
function revokeOp(n: RunningNode) {
  const op = operatorToken(n);
  return async (c: Client) => {
    // Every token the connection revokes (the warm-up's too), issued before the timing starts:
    // a token issued when the ids ran out was timed as part of a revocation.
    const ids: string[] = [];
    while (ids.length < REVOKES_PER_CONN + 20) {
      const r = await c.request("identity.issue", {
        service: "fs",
        actions: ["read"],
        ttl_seconds: 600,
      }, { token: op });
      if (!r.ok) throw new Error(`identity.issue for the revoke figure: ${JSON.stringify(r)}`);
      ids.push((r.result as { cap_id: string }).cap_id);
    }
    return () => c.request("identity.revoke", { cap_id: ids.pop()! }, { token: op });
  };
}

const bytesRead = (r: Response) => (r.ok ? (r.result as { bytes_read: number }).bytes_read : 0);

const RATES: Figure[] = [
  rate("identity.issue", "identity", 8, issueOp),
  rate("issue, then first use on fs.list", "identity", 4, issueThenUse),
  rate("fs.list of 20 entries", "fs", 8, listOp),
  rate("fs.list of 20 entries", "fs", 1, listOp),
  rate("fs.read 4 KiB", "fs", 8, readOp("4k.bin", READ_SIZES.small)),
  rate("fs.read 720 KiB", "fs", 4, readOp("64m.bin", READ_SIZES.large), bytesRead),
  rate("identity.revoke", "identity", 8, revokeOp, undefined, REVOKES_PER_CONN),
];

/** Wall time of `strata-ctl status`, run as its own program with its own flags (median of 10). */
function ctlStatus(kind: "direct" | "task"): Figure {
  return {
    name: kind === "direct"
      ? "strata-ctl status, wall time (deno run with its flags)"
      : "strata-ctl status, wall time (deno task -q ctl)",
    unit: "ms",
    higherIsBetter: false,
    async measure(n) {
      const env = {
        STRATA_RUNTIME_DIR: n.layout.runtimeDir,
        STRATA_STATE_DIR: n.layout.stateDir,
        NO_COLOR: "1",
      };
      const c = kind === "direct"
        ? { ...(await commandOf(n.subject, "ctl", n.layout)), cwd: undefined }
        : {
          cmd: DENO,
          args: ["task", "-q", "--config", `${n.subject.root}/deno.json`, "ctl"],
          env: { ...n.subject.env },
        };
      const times: number[] = [];
      for (let i = 0; i < 11; i++) {
        const t0 = performance.now();
        const out = await new Deno.Command(c.cmd, {
          args: [...c.args, "status"],
          env: { ...c.env, ...env },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const ms = performance.now() - t0;
        if (!out.success) {
          throw new Error(
            `${n.subject.name}: strata-ctl status failed: ${decoder.decode(out.stderr)}`,
          );
        }
        if (i > 0) times.push(ms); // the first run warms the disk cache
      }
      return { value: median(times) };
    },
  };
}

const KILL_FS: Figure = {
  name: "kill -9 fs → Healthy again",
  unit: "ms",
  higherIsBetter: false,
  async measure(n) {
    let fs = (await services(n)).find((s) => s.name === "fs")!;
    // A service that dies within 250 ms of becoming Healthy has crashed at start-up, and the
    // supervisor restarts it after its backoff's delay (supervisor/backoff.ts). When the
    // rotation puts one subject's kills back to back, that delay, not a restart, was timed.
    const healthyFor = Date.now() - Date.parse(fs.since ?? "");
    if (!(healthyFor >= 1000)) {
      await new Promise((r) => setTimeout(r, 1000 - (healthyFor > 0 ? healthyFor : 0)));
      fs = (await services(n)).find((s) => s.name === "fs")!;
    }
    const t0 = performance.now();
    Deno.kill(fs.pid, "SIGKILL");
    await waitFor("fs Healthy again", async () => {
      const f = (await services(n)).find((s) => s.name === "fs");
      return f !== undefined && f.state === "Healthy" && f.pid !== fs.pid;
    }, 10_000);
    const ms = performance.now() - t0;
    for (const x of await services(n)) if (x.pid) n.pids.add(x.pid);
    return { value: ms };
  },
};

/** Memory of each process of a node, or of the floor's (MB). */
async function memoryOf(n: RunningNode) {
  if (n.children) {
    return Object.fromEntries(FLOOR_PROGRAMS.map((p, i) => [p, memoryMb(n.children![i].pid)]));
  }
  const out: Record<string, MemoryMb> = {
    supervisor: memoryMb(n.process.pid),
  };
  for (const s of await services(n)) out[s.name] = memoryMb(s.pid);
  return out;
}

/** The total PSS of a node's processes (MB). */
function pssOf(processes: Record<string, MemoryMb>): number {
  return Object.values(processes).reduce((a, x) => a + x.pss, 0);
}

// --- the run ---
/** This checkout's services bundled into a temp dir, as `deno task install` bundles them. */
async function bundled(): Promise<string> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-bundle-" });
  try {
    await bundleServices(DENO, ROOT, dir);
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  return dir;
}
const baseline = values.baseline ? await checkoutRef(values.baseline) : undefined;
let bundles: string | undefined;
try {
  if (!values.modules) bundles = await bundled();
} catch (err) {
  if (baseline) await Deno.remove(baseline.root, { recursive: true });
  throw err;
}
const subjects: Subject[] = [{ name: "ours", root: ROOT, ...(bundles ? { bundles } : {}) }];
if (baseline) subjects.push(baseline);
if (values["floor-records"]) {
  subjects.push({ name: "floor with records", root: ROOT, floor: true, records: true });
} else if (values.floor) subjects.push({ name: "floor", root: ROOT, floor: true });

interface Row {
  figure: string;
  unit: string;
  higherIsBetter: boolean;
  samples: Record<string, number[]>;
  details: Record<string, Load[]>;
}
const rows: Row[] = [];
function rowFor(f: { name: string; unit: string; higherIsBetter: boolean }): Row {
  let r = rows.find((x) => x.figure === f.name);
  if (!r) {
    r = {
      figure: f.name,
      unit: f.unit,
      higherIsBetter: f.higherIsBetter,
      samples: {},
      details: {},
    };
    rows.push(r);
  }
  return r;
}
function record(
  f: { name: string; unit: string; higherIsBetter: boolean },
  s: Subject,
  v: number,
  d?: Load,
) {
  const r = rowFor(f);
  (r.samples[s.name] ??= []).push(+v.toFixed(3));
  if (d) (r.details[s.name] ??= []).push(d);
}

/** Subjects in the order of round `i`: alternated so neither side always goes first. */
function orderOf(i: number): Subject[] {
  return i % 2 === 0 ? subjects : [...subjects].reverse();
}

const START = { name: "start → all Healthy", unit: "ms", higherIsBetter: false };
/** A memory figure: MB, lower is better. */
const memoryFigure = (name: string) => ({ name, unit: "MB", higherIsBetter: false });
/** The memory of a subject's node with no other node running (see the pass at the end of the run). */
const PSS_ALONE_STARTED = memoryFigure("PSS of all four processes just started, the node alone");
const PSS_ALONE = memoryFigure(
  "PSS of all four processes after one pass of every rate, the node alone",
);
const memoryAlone: Record<string, unknown>[] = [];
const PSS_STARTED = memoryFigure("PSS of all four processes just started");
const nodes = new Map<Subject, RunningNode>();
const memory: Record<string, unknown>[] = [];
const memoryStarted: Record<string, unknown>[] = [];

/**
 * Every subject's memory, each process's, once all have been quiet for the
 * same time, also added to `into` for the printout and results.json. Without
 * the pause the subject whose load ran last was measured before its services'
 * idle collection (after the first quiet tick) had run, and the others after
 * it (with --only=conn,PSS, 7890c0f's identity held 70.6 MB PSS so, ours 28).
 * Two ticks and a half: a whole quiet tick, whenever the load ended.
 */
async function quietMemory(
  into: Record<string, unknown>[],
): Promise<[Subject, Awaited<ReturnType<typeof memoryOf>>][]> {
  await new Promise((r) => setTimeout(r, 2.5 * IDLE_TICK_MS));
  const out: [Subject, Awaited<ReturnType<typeof memoryOf>>][] = [];
  for (const s of subjects) {
    const m = await memoryOf(nodes.get(s)!);
    into.push({ subject: s.name, ...m });
    out.push([s, m]);
  }
  return out;
}
try {
  // Start-up, interleaved: each round starts a fresh node of each subject; the last stays up.
  for (let i = 0; i < ROUNDS; i++) {
    for (const s of orderOf(i)) {
      if (s.floor) continue;
      const { node, ms } = await startSubject(s);
      record(START, s, ms);
      if (i < ROUNDS - 1) await stopSubject(node);
      else nodes.set(s, node);
      console.error(`${s.name}: started in ${ms.toFixed(0)} ms`);
    }
  }
  for (const s of subjects) if (s.floor) nodes.set(s, await startFloor(s));
  for (const n of nodes.values()) await fillExport(n);
  // Memory just started, before any request: what the programs' code and set-up hold, apart from
  // what the load leaves (the floor's programs load next to nothing; see performance.md).
  if (wanted(PSS_STARTED.name)) {
    for (const [s, m] of await quietMemory(memoryStarted)) {
      record(PSS_STARTED, s, pssOf(m));
    }
  }
  const figures = [...RATES, ctlStatus("direct"), ctlStatus("task")].filter((f) => wanted(f.name));
  for (const f of figures) {
    for (let i = 0; i < ROUNDS; i++) {
      for (const s of orderOf(i)) {
        if (s.floor && !RATES.includes(f)) continue;
        // Each subject starts on a disk with nothing left to write back from the one before:
        // b0bb4d4's revocations left so much that the next subject's fsyncs waited on it (with
        // 20,000 revocations a round each, ours made 14,150 a second first in a round, 7,984
        // right after b0bb4d4).
        await new Deno.Command("sync").output();
        const { value, detail } = await f.measure(nodes.get(s)!);
        record(f, s, value, detail);
        console.error(`${s.name}: ${f.name}: ${value} ${f.unit}`);
      }
    }
  }
  // Memory after the load, before the kills restart fs.
  const memoryWanted = wanted("PSS of all four processes after the load") ||
    wanted("RSS of all four processes after the load");
  for (const [s, m] of memoryWanted ? await quietMemory(memory) : []) {
    const total = pssOf(m);
    const PSS = memoryFigure("PSS of all four processes after the load");
    // The floor's too: its programs hold what any must (see scripts/bench_floor.ts).
    record(PSS, s, total);
    if (s.floor) continue;
    const RSS = memoryFigure("RSS of all four processes after the load");
    record(RSS, s, Object.values(m).reduce((a, x) => a + x.rss, 0));
  }
  for (let i = 0; i < (wanted(KILL_FS.name) ? ROUNDS : 0); i++) {
    for (const s of orderOf(i)) {
      if (s.floor) continue;
      const { value } = await KILL_FS.measure(nodes.get(s)!);
      record(KILL_FS, s, value);
    }
  }
  // Memory of each subject's node alone: every other node stopped, so that the Deno executable's
  // pages are shared only with the bench's own process (a page n processes map counts 1/n in each
  // one's PSS: beside the other subjects' nodes, ours held 86.2-89.3 MB after the load and alone
  // 111, 2026-12-05). One node at a time, just started and after one pass of every rate, a fresh
  // node of each subject in every round, interleaved as the rates are: a single pass varied by
  // 11 MB (the floor alone 87.4, 91.0 and 98.5 MB after the pass in three runs, 2026-12-05).
  if (wanted(PSS_ALONE_STARTED.name) || wanted(PSS_ALONE.name)) {
    for (const n of nodes.values()) await stopSubject(n);
    nodes.clear();
    for (let i = 0; i < ROUNDS; i++) {
      for (const s of orderOf(i)) {
        const node = s.floor ? await startFloor(s) : (await startSubject(s)).node;
        nodes.set(s, node);
        const round = i + 1;
        try {
          await fillExport(node);
          await new Promise((r) => setTimeout(r, 2.5 * IDLE_TICK_MS));
          const started = await memoryOf(node);
          memoryAlone.push({ subject: s.name, when: "just started", round, ...started });
          record(PSS_ALONE_STARTED, s, pssOf(started));
          if (wanted(PSS_ALONE.name)) {
            for (const f of RATES) await f.measure(node);
            await new Promise((r) => setTimeout(r, 2.5 * IDLE_TICK_MS));
            const after = await memoryOf(node);
            memoryAlone.push({ subject: s.name, when: "after the load", round, ...after });
            record(PSS_ALONE, s, pssOf(after));
            console.error(`${s.name}: alone, PSS of the four after one pass of every rate`);
          }
        } finally {
          nodes.delete(s);
          await stopSubject(node);
        }
      }
    }
  }
} finally {
  for (const n of nodes.values()) await stopSubject(n);
  for (const s of subjects) {
    if (s.root !== ROOT) await Deno.remove(s.root, { recursive: true }).catch(() => {});
    if (s.bundles) await Deno.remove(s.bundles, { recursive: true }).catch(() => {});
  }
}

// Cluster mode (this checkout only): three etcd members and three nodes, when etcd is installed.
const PROPAGATION = {
  name: "revocation propagation p99 across three nodes",
  unit: "ms",
  higherIsBetter: false,
};
// A client on node A reads B's fs over its tcp:// endpoint (TLS, the cluster CA's certificate).
const CROSS_READ = {
  name: "cross-node fs.read 720 KiB over TLS (A reads B), 4 conn",
  unit: "MB/s",
  higherIsBetter: true,
};
if (!wanted(PROPAGATION.name) && !wanted(CROSS_READ.name)) {
  // Left out by --only.
} else if (haveEtcd()) {
  const { propagation: p, crossRead: r } = await clusterFigures({
    revocations: 200,
    seconds: SECONDS,
  });
  record(PROPAGATION, subjects[0], p.p99_ms);
  console.error(
    `${subjects[0].name}: ${PROPAGATION.name}: p50 ${p.p50_ms.toFixed(1)} / p99 ` +
      `${p.p99_ms.toFixed(1)} / max ${p.max_ms.toFixed(1)} ms over ${p.revocations}`,
  );
  record(CROSS_READ, subjects[0], r.mb_per_sec, { ...r });
  console.error(`${subjects[0].name}: ${CROSS_READ.name}: ${r.mb_per_sec} MB/s`);
} else {
  console.log(
    `skipped: ${PROPAGATION.name} and ${CROSS_READ.name} ` +
      "(etcd is not installed: apt-get install etcd-server)",
  );
}

// The installed form (this checkout only), run as user nobody as the systemd unit runs it as its own
// user: one who cannot write the installed DENO_DIR.
const INSTALLED_START = {
  name: "start → all Healthy, installed, as user nobody",
  unit: "ms",
  higherIsBetter: false,
};
const INSTALLED_CTL = {
  name: "strata-ctl status, installed, as user nobody (median of 10)",
  unit: "ms",
  higherIsBetter: false,
};
if (!wanted(INSTALLED_START.name) && !wanted(INSTALLED_CTL.name)) {
  // Left out by --only.
} else if (Deno.uid() !== 0) {
  console.log(
    `skipped: ${INSTALLED_START.name} and ${INSTALLED_CTL.name} (run as root to drop to nobody)`,
  );
} else {
  const r = await installedFigures();
  record(INSTALLED_START, subjects[0], r.startMs);
  record(INSTALLED_CTL, subjects[0], r.ctlMs);
  console.error(
    `${subjects[0].name}: installed, as nobody: started in ${
      r.startMs.toFixed(0)
    } ms, strata-ctl status ${r.ctlMs.toFixed(1)} ms`,
  );
}

/**
 * Installs this checkout (`deno task install`) into a temp prefix for a temp
 * layout owned by nobody, starts its supervisor as nobody (setpriv, so the
 * supervisor is the process started), and times its start and strata-ctl status.
 */
async function installedFigures(): Promise<{ startMs: number; ctlMs: number }> {
  const NOBODY = ["--reuid=65534", "--regid=65534", "--clear-groups"];
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-bi-" });
  await Deno.chmod(dir, 0o755);
  const layout = {
    runtimeDir: `${dir}/rt`,
    stateDir: `${dir}/state`,
    nodeId: "bench",
    fsRoots: [`${dir}/export`],
  };
  const prefix = `${dir}/opt`;
  let supervisor: Deno.ChildProcess | undefined;
  const pids = new Set<number>();
  try {
    const inst = await new Deno.Command(DENO, {
      args: ["task", "--quiet", "install", `--prefix=${prefix}`, ...layoutArgs(layout)],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!inst.success) throw new Error(`install failed: ${decoder.decode(inst.stderr)}`);
    for (const d of [layout.runtimeDir, layout.stateDir, ...layout.fsRoots]) {
      await Deno.mkdir(d, { mode: 0o700 });
      await Deno.chown(d, 65534, 65534);
    }
    const t0 = performance.now();
    supervisor = new Deno.Command("setpriv", {
      args: [...NOBODY, `${prefix}/bin/strata-supervisor`],
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await untilHealthy("the installed node", { layout });
    const startMs = performance.now() - t0;
    for (const x of await services({ layout })) if (x.pid) pids.add(x.pid);
    const times: number[] = [];
    for (let i = 0; i < 11; i++) {
      const t = performance.now();
      const out = await new Deno.Command("setpriv", {
        args: [...NOBODY, `${prefix}/bin/strata-ctl`, "status"],
        cwd: dir,
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!out.success) throw new Error(`strata-ctl status failed: ${decoder.decode(out.stderr)}`);
      if (i > 0) times.push(performance.now() - t);
    }
    return { startMs, ctlMs: median(times) };
  } finally {
    if (supervisor) {
      supervisor.kill("SIGTERM");
      await supervisor.status;
      pids.add(supervisor.pid);
      await waitFor("the installed node's processes to exit", () => ![...pids].some(alive), 5000);
    }
    await new Deno.Command("chmod", { args: ["-R", "u+w", dir] }).output();
    await Deno.remove(dir, { recursive: true });
  }
}

// --- report ---
const fmt = (v: number) => (v >= 100 ? Math.round(v).toLocaleString("en-US") : v.toFixed(1));
const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
const ours = subjects[0];
const base = subjects.find((s) => s !== ours && !s.floor);
const floor = subjects.find((s) => s.floor);
const header = ["figure", "unit", ours.name];
if (base) header.push(base.name, "ours vs baseline");
if (floor) header.push(floor.name, base ? `${floor.name} vs baseline` : `ours vs ${floor.name}`);
console.log(
  `\n${ROUNDS} round(s), ${SECONDS} s per load; medians; ours' services run ` +
    (ours.bundles ? "bundled, as installed" : "from their modules (--modules)"),
);
console.log(line(header));
console.log(line(header.map((_, i) => (i < 2 ? "---" : "---:"))));
const summary: Record<string, unknown>[] = [];
for (const r of rows) {
  const a = median(r.samples[ours.name]);
  const cells = [r.figure, r.unit, fmt(a)];
  const entry: Record<string, unknown> = { figure: r.figure, unit: r.unit, ours: a };
  if (base && !r.samples[base.name]) {
    cells.push("–", "–"); // Measured on this checkout only (the cluster figures).
  } else if (base) {
    const b = median(r.samples[base.name]);
    // Always "how many times better": above 1 means ours is better.
    const ratio = r.higherIsBetter ? a / b : b / a;
    cells.push(fmt(b), `${ratio.toFixed(2)}×`);
    Object.assign(entry, { baseline: b, better_by: +ratio.toFixed(3) });
  }
  if (floor && r.samples[floor.name]) {
    // The most a Deno service could reach: the floor against the baseline (or ours
    // against the floor), "how many times better" as above.
    const f = median(r.samples[floor.name]);
    const [x, y] = base ? [f, median(r.samples[base.name])] : [a, f];
    const ratio = r.higherIsBetter ? x / y : y / x;
    cells.push(fmt(f), `${ratio.toFixed(2)}×`);
    Object.assign(entry, {
      floor: f,
      [base ? "floor_better_by" : "ours_of_floor"]: +ratio.toFixed(3),
    });
  } else if (floor) cells.push("–", "–");
  console.log(line(cells));
  summary.push(entry);
}
console.log("\np50 / p99 latency (ms), median over rounds:");
for (const r of rows) {
  for (const s of subjects) {
    const d = r.details[s.name];
    if (!d) continue;
    const p50 = median(d.map((x) => x.p50_ms));
    const p99 = median(d.map((x) => x.p99_ms));
    const errs = d.reduce((a, x) => a + x.errors, 0);
    console.log(
      `  ${r.figure} [${s.name}]: ${p50.toFixed(3)} / ${p99.toFixed(3)}${
        errs ? ` (${errs} errors)` : ""
      }`,
    );
  }
}
const memoryLists = [
  ["memory just started", memoryStarted],
  ["memory after the load", memory],
  ["memory of each node alone", memoryAlone],
] as const;
/**
 * Of a memory list, each subject's entry at each moment, of the round whose
 * total PSS is the median (the lower middle of an even count); every round
 * stays in results.json.
 */
function medianRounds(list: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  // An entry's processes: its fields but subject, when and round.
  const total = ({ subject: _s, when: _w, round: _r, ...processes }: Record<string, unknown>) =>
    pssOf(processes as Record<string, MemoryMb>);
  const groups = Map.groupBy(list, (e) => `${e.subject}\n${e.when ?? ""}`);
  return [...groups.values()].map((g) =>
    g.toSorted((a, b) => total(a) - total(b))[(g.length - 1) >> 1]
  );
}
for (const [title, list] of memoryLists) {
  if (list.length === 0) continue;
  console.log(`\n${title} (MB): resident / proportional / private`);
  for (const { subject, when, round, ...processes } of medianRounds(list)) {
    const rounds = list.filter((e) => e.subject === subject && e.when === when).length;
    const middle = rounds % 2 === 1 ? "the median" : "the lower of the middle two";
    const of = round === undefined ? "" : `, round ${round} of ${rounds}, ${middle}`;
    console.log(`  ${subject}${when ? `, ${when}` : ""}${of}`);
    for (const [name, v] of Object.entries(processes)) {
      const x = v as MemoryMb;
      console.log(`    ${name.padEnd(10)} ${x.rss} / ${x.pss} / ${x.private}`);
    }
  }
}
const results = {
  machine: {
    deno: Deno.version.deno,
    cores: navigator.hardwareConcurrency,
    seconds_per_load: SECONDS,
    rounds: ROUNDS,
    baseline: values.baseline ?? null,
    ours_services: ours.bundles ? "bundled" : "modules",
    date: new Date().toISOString(),
  },
  summary,
  rows,
  memory_mb: memory,
  memory_started_mb: memoryStarted,
  memory_alone_mb: memoryAlone,
};
await Deno.mkdir("bench", { recursive: true });
await Deno.writeTextFile(values.out, JSON.stringify(results, null, 2) + "\n");
console.log(`\nwritten to ${values.out}`);
