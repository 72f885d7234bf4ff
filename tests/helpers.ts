/**
 * Test harness: temp layouts, a real supervisor started with its real
 * permission flags, raw socket exchanges, bounded waits, and clean-up of
 * every process a test starts.
 * @module
 */

import { Client } from "../src/server/client.ts";
import { writeAll } from "../src/wire/frame.ts";
import type { Response } from "../src/wire/envelope.ts";
import { programCommand, REPO_ROOT } from "../src/runtime/command.ts";
import {
  CHILD_SERVICES,
  type Layout,
  type ServiceName,
  socketPath,
  stateFiles,
} from "../src/runtime/config.ts";
import { binOverrideVar } from "../src/runtime/permissions.ts";

/** Whether the tests run as root (some attacks need a second user, made by chown). */
export const AS_ROOT: boolean = new TextDecoder().decode(
  new Deno.Command("id", { args: ["-u"] }).outputSync().stdout,
).trim() === "0";

/** Waits until `cond` is true, polling; throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await cond()) return;
    } catch {
      // not yet
    }
    // Polls a condition on real processes (sockets, files, services): no event to await.
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A temp folder with a runtime dir, a state dir and an export root. */
export interface TempLayout {
  root: string;
  layout: Layout;
  /** The export root fs serves. */
  exportRoot: string;
  cleanup(): Promise<void>;
}

/** Makes a fresh temp layout under /tmp (short paths: sockets are capped at 108 bytes). */
export async function tempLayout(): Promise<TempLayout> {
  const root = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-t-" });
  const exportRoot = `${root}/export`;
  await Deno.mkdir(exportRoot);
  const layout: Layout = {
    runtimeDir: `${root}/rt`,
    stateDir: `${root}/state`,
    nodeId: "test",
    fsRoots: [exportRoot],
  };
  return {
    root,
    layout,
    exportRoot,
    cleanup: () => Deno.remove(root, { recursive: true }).catch(() => {}),
  };
}

/**
 * The development layout of `deno task start` without /run/strata: /tmp
 * exported, the runtime dir the fallback /tmp/strata-$USER (directly in
 * /tmp), the state dir ~/.local/state/strata (HOME in /var/tmp) or, with
 * `stateUnderTmp`, a STRATA_STATE_DIR under /tmp. See scripts/launch.ts.
 */
export async function devTmpLayout(stateUnderTmp: boolean): Promise<TempLayout> {
  const base = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-t-" });
  // A state dir outside /tmp stands for ~/.local/state/strata (HOME in /var/tmp).
  const home = stateUnderTmp ? base : await Deno.makeTempDir({ dir: "/var/tmp", prefix: "st-h-" });
  const layout: Layout = {
    // The launcher's last fallback, /tmp/strata-$USER: directly inside /tmp.
    runtimeDir: `/tmp/strata-${base.slice(-8)}`,
    stateDir: stateUnderTmp ? `${base}/state` : `${home}/.local/state/strata`,
    nodeId: "test",
    fsRoots: ["/tmp"],
  };
  return {
    root: base,
    layout,
    exportRoot: "/tmp",
    cleanup: async () => {
      for (const d of new Set([base, home, layout.runtimeDir])) {
        await Deno.remove(d, { recursive: true }).catch(() => {});
      }
    },
  };
}

/** A running supervisor and its services. */
export interface Node {
  layout: Layout;
  exportRoot: string;
  process: Deno.ChildProcess;
  /** What the supervisor and its children printed (stdout and stderr). */
  output(): string;
  /** The operator token identity wrote. */
  operatorToken(): string;
  /** A persistent client to a service (closed by stop()). */
  client(service: ServiceName): Promise<Client>;
  /** One call on a shared client; returns the envelope. */
  request(
    service: ServiceName,
    method: string,
    params?: Record<string, unknown>,
    token?: string,
  ): Promise<Response>;
  /** pids of the supervised children, from svc.list. */
  childPids(): Promise<number[]>;
  /** Stops the supervisor (SIGTERM, then SIGKILL) and checks nothing is left. */
  stop(): Promise<void>;
}

/** Options for {@link startNode}. */
export interface StartOptions {
  /** Reuse a layout (e.g. to restart on the same state dir). */
  temp?: TempLayout;
  /** STRATA_<NAME>_BIN overrides. */
  overrides?: Partial<Record<"registry" | "identity" | "fs", string>>;
  /** Wait until every service is Healthy (default true). */
  waitHealthy?: boolean;
  /** Start a copy of the project at this folder, by its own src/runtime/command.ts. */
  root?: string;
  /**
   * Run the services from the bundles under this folder (dist/<program>/main.js,
   * scripts/bundle.ts), as the installed form runs them.
   */
  bundles?: string;
}

/**
 * Whether a process is alive (a zombie counts as dead: it has exited and
 * only waits to be reaped). Deno refuses /proc/<pid> without --allow-all, so
 * this asks ps; it never guesses "dead" from an error.
 */
export function alive(pid: number): boolean {
  const out = new Deno.Command("ps", { args: ["-o", "stat=", "-p", String(pid)] }).outputSync();
  const stat = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    if (stat === "" && out.code === 1) return false; // no such process
    throw new Error(`ps failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return !stat.startsWith("Z");
}

/** Memory of a process in MB: resident, proportional (shared pages split), private. */
export interface MemoryMb {
  /** Resident set, including the Deno runtime's pages shared with other processes. */
  rss: number;
  /** Proportional set size: shared pages divided among the processes sharing them. */
  pss: number;
  /** Memory only this process uses (anonymous resident pages). */
  private: number;
}

/** Reads a process's memory from /proc (through cat: Deno refuses /proc/<pid> without -A). */
export function memoryMb(pid: number): MemoryMb {
  const read = (file: string) => {
    const out = new Deno.Command("cat", { args: [`/proc/${pid}/${file}`] }).outputSync();
    if (!out.success) throw new Error(`no process ${pid}`);
    return new TextDecoder().decode(out.stdout);
  };
  const kb = (text: string, key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
  const status = read("status");
  const rollup = read("smaps_rollup");
  const mb = (k: number) => +(k / 1024).toFixed(1);
  return {
    rss: mb(kb(status, "VmRSS")),
    pss: mb(kb(rollup, "Pss")),
    private: mb(kb(status, "RssAnon")),
  };
}

/** Starts a supervisor in a temp layout exactly as `deno task start` would. */
export async function startNode(options: StartOptions = {}): Promise<Node & { temp: TempLayout }> {
  const temp = options.temp ?? await tempLayout();
  const overrides = options.overrides ?? {};
  const env: Record<string, string> = {};
  for (const s of CHILD_SERVICES) {
    const o = overrides[s];
    if (o) env[binOverrideVar(s)] = o;
  }
  const commandOf: typeof programCommand = options.root
    ? (await import(`file://${options.root}/src/runtime/command.ts`)).programCommand
    : programCommand;
  const command = commandOf("supervisor", temp.layout, {
    kind: "dev",
    deno: Deno.execPath(),
    ...(options.bundles
      ? { root: options.bundles, bundled: true }
      : { root: options.root ?? REPO_ROOT }),
  }, { run: [Deno.execPath(), ...Object.values(overrides).filter((x): x is string => !!x)] });
  const process = new Deno.Command(command.cmd, {
    args: command.args,
    env: { ...command.env, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) chunks.push(decoder.decode(c, { stream: true }));
  };
  const drained = Promise.all([drain(process.stdout), drain(process.stderr)]);
  const clients = new Map<ServiceName, Client>();
  const seenPids = new Set<number>();
  const client = async (service: ServiceName) => {
    let c = clients.get(service);
    if (!c || c.closed) {
      c = await Client.connect(socketPath(temp.layout, service));
      clients.set(service, c);
    }
    return c;
  };
  const node = {
    temp,
    layout: temp.layout,
    exportRoot: temp.exportRoot,
    process,
    output: () => chunks.join(""),
    operatorToken: () => Deno.readTextFileSync(stateFiles(temp.layout).operatorToken).trim(),
    client,
    request: async (
      service: ServiceName,
      method: string,
      params?: Record<string, unknown>,
      token?: string,
    ) => (await client(service)).request(method, params, { token }),
    childPids: async () => {
      const r = await node.request("supervisor", "supervisor.svc.list");
      if (!r.ok) return [];
      const pids = (r.result as { services: { pid: number | null }[] }).services
        .map((s) => s.pid).filter((p): p is number => p !== null);
      pids.forEach((p) => seenPids.add(p));
      return pids;
    },
    stop: async () => {
      for (const c of clients.values()) await c.close();
      clients.clear();
      await node.childPids().catch(() => []);
      try {
        process.kill("SIGTERM");
      } catch { /* gone */ }
      const exited = await Promise.race([
        process.status.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 15_000)),
      ]);
      if (!exited) {
        process.kill("SIGKILL");
        await process.status;
      }
      await drained;
      // Nothing the test started may outlive it.
      await waitFor("children to exit", () => [...seenPids].every((p) => !alive(p)), 5000)
        .catch((err) => {
          for (const p of seenPids) if (alive(p)) Deno.kill(p, "SIGKILL");
          throw err;
        });
      if (!options.temp) await temp.cleanup();
    },
  };
  if (options.waitHealthy ?? true) {
    try {
      await waitFor("every service Healthy", async () => {
        const r = await node.request("supervisor", "supervisor.svc.list");
        if (!r.ok) return false;
        const list = (r.result as { services: { state: string }[] }).services;
        return list.every((s) => s.state === "Healthy");
      }, 20_000);
      await node.childPids();
    } catch (err) {
      await node.stop().catch(() => {});
      throw new Error(`${(err as Error).message}\n--- node output ---\n${node.output()}`);
    }
  }
  return node;
}

/**
 * Sends raw bytes to a socket (or over the connection `connect` opens: TLS,
 * plain TCP) and returns whatever comes back before it closes or goes quiet.
 */
export async function rawExchange(
  path: string,
  bytes: Uint8Array,
  options: { quietMs?: number; closeWrite?: boolean; connect?: () => Promise<Deno.Conn> } = {},
): Promise<{ data: Uint8Array; closed: boolean }> {
  const conn = options.connect
    ? await options.connect()
    : await Deno.connect({ transport: "unix", path });
  try {
    // One write may take only part of a large buffer: write it all.
    await writeAll(conn, bytes).catch(() => {});
    if (options.closeWrite) await conn.closeWrite().catch(() => {});
    const parts: Uint8Array[] = [];
    const buf = new Uint8Array(64 * 1024);
    let closed = false;
    while (true) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        conn.read(buf).catch(() => null),
        new Promise<"quiet">((r) => (timer = setTimeout(() => r("quiet"), options.quietMs ?? 500))),
      ]);
      clearTimeout(timer);
      if (n === "quiet") break;
      if (n === null) {
        closed = true;
        break;
      }
      parts.push(buf.slice(0, n));
    }
    const total = parts.reduce((a, p) => a + p.length, 0);
    const data = new Uint8Array(total);
    let off = 0;
    for (const p of parts) {
      data.set(p, off);
      off += p.length;
    }
    return { data, closed };
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/** Decodes every complete frame in `data` as JSON. */
export function decodeFrames(data: Uint8Array): unknown[] {
  const out: unknown[] = [];
  let off = 0;
  while (off + 4 <= data.length) {
    const len = new DataView(data.buffer, data.byteOffset + off).getUint32(0);
    if (off + 4 + len > data.length) break;
    out.push(JSON.parse(new TextDecoder().decode(data.subarray(off + 4, off + 4 + len))));
    off += 4 + len;
  }
  return out;
}

/** Builds a frame from raw body bytes (or text), with an optional fake length. */
export function rawFrame(body: string | Uint8Array, announced?: number): Uint8Array {
  const b = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const out = new Uint8Array(4 + b.length);
  new DataView(out.buffer).setUint32(0, announced ?? b.length);
  out.set(b, 4);
  return out;
}

/** Issues a token through identity with the operator token. */
export async function issue(
  node: Node,
  params: Record<string, unknown>,
  token?: string,
): Promise<{ token: string; cap_id: string; expires: number }> {
  const r = await node.request("identity", "identity.issue", params, token ?? node.operatorToken());
  if (!r.ok) throw new Error(`issue failed: ${JSON.stringify(r.error)}`);
  return r.result as { token: string; cap_id: string; expires: number };
}

/** The repository root, for tests that run scripts. */
export { REPO_ROOT };

/** `deno run` arguments for tests/fixtures/`name` that grant it the Unix socket `path` alone, then `args`. */
export function socketFixtureArgs(name: string, path: string, ...args: string[]): string[] {
  return [
    "run",
    `--allow-net=unix:${path}`,
    `--allow-read=${path}`,
    `--allow-write=${path}`,
    `${REPO_ROOT}/tests/fixtures/${name}`,
    path,
    ...args,
  ];
}

/**
 * PEM files made for a test: a CA, a server certificate for 127.0.0.1 and a
 * client certificate it signed, and a stranger CA with a client certificate of its own.
 */
export interface TestTls {
  /** The CA certificate clients trust. */
  ca: string;
  /** The server's certificate (signed by `ca`, for IP 127.0.0.1) and key. */
  cert: string;
  key: string;
  /** A CA that signed nothing here: a client trusting only it must refuse the server. */
  otherCa: string;
  /** A client certificate (clientAuth) signed by `ca`, and its key: mutual TLS's right one. */
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by the other CA, and its key: mutual TLS must refuse it. */
  strangerCert: string;
  strangerKey: string;
}

/**
 * Two sets of TLS files under `dir`: `ours`, which a client is told to
 * trust, and `theirs`, an impostor's from another CA (for the tests that a
 * client trusts the CA it is given alone).
 */
export async function oursAndTheirsTls(dir: string): Promise<{ ours: TestTls; theirs: TestTls }> {
  await Deno.mkdir(`${dir}/ours`);
  await Deno.mkdir(`${dir}/theirs`);
  return { ours: await makeTestTls(`${dir}/ours`), theirs: await makeTestTls(`${dir}/theirs`) };
}

/**
 * Makes TLS files in `dir` with Debian's openssl (EC P-256, valid one day);
 * the server certificate also names `dnsName` when given, and is valid for
 * client authentication too with `serverAlsoClient` (etcd's JSON gateway
 * presents it to etcd itself under `--client-cert-auth`).
 */
export async function makeTestTls(
  dir: string,
  options: { dnsName?: string; serverAlsoClient?: boolean } = {},
): Promise<TestTls> {
  const openssl = async (args: string[]) => {
    const out = await new Deno.Command("/usr/bin/openssl", { args, cwd: dir, stderr: "piped" })
      .output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  for (const name of ["ca", "other-ca"]) {
    await openssl([
      "req",
      "-x509",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "1",
      "-subj",
      `/CN=strata test ${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
  }
  await openssl([
    "req",
    ...ec,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=127.0.0.1",
  ]);
  await Deno.writeTextFile(
    `${dir}/server.ext`,
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
      `extendedKeyUsage=serverAuth${options.serverAlsoClient ? ",clientAuth" : ""}\n` +
      "subjectAltName=IP:127.0.0.1" +
      (options.dnsName ? `,DNS:${options.dnsName}\n` : "\n"),
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "1",
    "-extfile",
    "server.ext",
  ]);
  await Deno.writeTextFile(
    `${dir}/client.ext`,
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
  );
  for (const [name, ca] of [["client", "ca"], ["stranger", "other-ca"]]) {
    await openssl([
      "req",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    ]);
    await openssl([
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.pem`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "1",
      "-extfile",
      "client.ext",
    ]);
  }
  return {
    ca: `${dir}/ca.pem`,
    cert: `${dir}/server.pem`,
    key: `${dir}/server.key`,
    otherCa: `${dir}/other-ca.pem`,
    clientCert: `${dir}/client.pem`,
    clientKey: `${dir}/client.key`,
    strangerCert: `${dir}/stranger.pem`,
    strangerKey: `${dir}/stranger.key`,
  };
}

/** A free TCP port on 127.0.0.1 (bound, read and released; a test binds it right after). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
