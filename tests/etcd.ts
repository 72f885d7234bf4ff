/**
 * Test etcd clusters: 1 or 3 members of Debian's etcd (/usr/bin/etcd) on
 * loopback ports, in a temp dir, started and stopped by pid. Nothing here
 * uses a system-wide etcd.
 * @module
 */

import { alive, freePort, waitFor } from "./helpers.ts";

/** Where Debian's etcd-server puts the server (`apt-get install etcd-server`). */
export const ETCD_BIN = "/usr/bin/etcd";

/**
 * TLS for a test etcd's client URLs (https://): etcd's certificate and key,
 * and the CA whose client certificates it requires (`--client-cert-auth`).
 */
export interface EtcdTls {
  cert: string;
  key: string;
  /** The CA clients' certificates must chain to; also what the health check trusts. */
  ca: string;
  /** A client certificate and key the health check presents. */
  clientCert: string;
  clientKey: string;
}

/** A running test etcd. */
export interface TestEtcd {
  /** The client URLs, http://127.0.0.1:PORT (https:// with TLS), one per member. */
  endpoints: string[];
  /** The members' processes, in order (for kill -9 of one). */
  members: Deno.ChildProcess[];
  /** Starts member `i` again on its data dir, after it was killed; waits until it is healthy. */
  restart(i: number): Promise<void>;
  /**
   * Stops member `i` with SIGSTOP (its connections stay open, nothing comes
   * back) and resolves once every one of its threads is stopped: kill(2)
   * returns before that, and a thread still running meanwhile can answer
   * a request sent right after it.
   */
  pause(i: number): Promise<void>;
  /** Lets member `i` run again after {@link TestEtcd.pause} (SIGCONT). */
  resume(i: number): void;
  /** The index of the member that leads now, as the members report it. */
  leader(): Promise<number>;
  /** Stops every member (SIGTERM, SIGKILL after 1 s) and removes the data dirs. */
  stop(): Promise<void>;
}

/** Whether Debian's etcd is installed (the cluster tests need it). */
export function haveEtcd(): boolean {
  try {
    return Deno.statSync(ETCD_BIN).isFile;
  } catch {
    return false;
  }
}

/**
 * Starts an etcd of `size` members (1 or 3) on loopback and waits until it
 * answers; once more on fresh ports if it never does (a port freePort()
 * found free can be taken by another process before etcd binds it).
 */
export async function startEtcd(
  size: 1 | 3 = 1,
  options: { tls?: EtcdTls } = {},
): Promise<TestEtcd> {
  try {
    return await startEtcdOnce(size, options);
  } catch {
    return await startEtcdOnce(size, options);
  }
}

async function startEtcdOnce(size: 1 | 3, options: { tls?: EtcdTls }): Promise<TestEtcd> {
  const tls = options.tls;
  const scheme = tls ? "https" : "http";
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-etcd-" });
  const ports = Array.from({ length: size }, () => ({ client: freePort(), peer: freePort() }));
  const names = ports.map((_, i) => `m${i}`);
  const initial = ports.map((p, i) => `${names[i]}=http://127.0.0.1:${p.peer}`).join(",");
  const spawn = (p: { client: number; peer: number }, i: number) =>
    new Deno.Command(ETCD_BIN, {
      args: [
        `--name=${names[i]}`,
        `--data-dir=${dir}/${names[i]}`,
        `--listen-client-urls=${scheme}://127.0.0.1:${p.client}`,
        `--advertise-client-urls=${scheme}://127.0.0.1:${p.client}`,
        ...(tls
          ? [
            `--cert-file=${tls.cert}`,
            `--key-file=${tls.key}`,
            `--trusted-ca-file=${tls.ca}`,
            "--client-cert-auth",
          ]
          : []),
        `--listen-peer-urls=http://127.0.0.1:${p.peer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${p.peer}`,
        `--initial-cluster=${initial}`,
        "--initial-cluster-state=new",
        `--initial-cluster-token=${dir.slice(-8)}`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
  const members: Deno.ChildProcess[] = [];
  try {
    ports.forEach((p, i) => members.push(spawn(p, i)));
  } catch (err) {
    // No etcd to run (not installed): nothing of this try is left behind.
    for (const m of members) {
      m.kill("SIGKILL");
      await m.status;
    }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
  const endpoints = ports.map((p) => `${scheme}://127.0.0.1:${p.client}`);
  const client = tls
    ? Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(tls.ca)],
      cert: await Deno.readTextFile(tls.clientCert),
      key: await Deno.readTextFile(tls.clientKey),
    })
    : undefined;
  const stop = async () => {
    for (const m of members) {
      try {
        m.kill("SIGTERM");
      } catch { /* gone */ }
    }
    for (const m of members) {
      const exited = await Promise.race([
        m.status.then(() => true),
        // A leader whose peer is gone tries to hand over for seconds: its data dir goes anyway.
        new Promise<boolean>((r) => setTimeout(() => r(false), 1000)),
      ]);
      if (!exited) {
        m.kill("SIGKILL");
        await m.status;
      }
    }
    await waitFor("etcd members to exit", () => members.every((m) => !alive(m.pid)), 5000);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    client?.close();
  };
  // Every member reports healthy once the cluster has a leader.
  const healthy = (urls: string[]) =>
    waitFor("etcd to be healthy", async () => {
      for (const e of urls) {
        const r = await fetch(`${e}/health`, client ? { client } : {}).catch(() => undefined);
        const body = await r?.json().catch(() => undefined);
        if (body?.health !== "true") return false;
      }
      return true;
    }, 15_000);
  const restart = async (i: number) => {
    if (alive(members[i].pid)) throw new Error(`etcd member ${i} is still running`);
    // The data dir holds the member's identity: --initial-cluster-state is ignored.
    members[i] = spawn(ports[i], i);
    await healthy([endpoints[i]]);
  };
  const pause = async (i: number) => {
    const pid = members[i].pid;
    members[i].kill("SIGSTOP");
    await waitFor(`etcd member ${i} to stop`, () => allThreadsStopped(pid), 5000);
  };
  const resume = (i: number) => members[i].kill("SIGCONT");
  // etcd's JSON gateway: each member's status names itself and the leader it follows.
  const leads = async (i: number) => {
    const r = await fetch(`${endpoints[i]}/v3/maintenance/status`, {
      method: "POST",
      body: "{}",
      // A paused member answers nothing: not the leader.
      signal: AbortSignal.timeout(2000),
      ...(client ? { client } : {}),
    }).catch(() => undefined);
    const status = await r?.json().catch(() => undefined);
    return status?.header?.member_id !== undefined && status.header.member_id === status.leader;
  };
  // Between two elections no member leads: asked again, for up to 5 s.
  const leader = async () => {
    let found = -1;
    await waitFor("an etcd member to lead", async () => {
      for (let i = 0; i < endpoints.length && found < 0; i++) {
        if (alive(members[i].pid) && await leads(i)) found = i;
      }
      return found >= 0;
    }, 5000);
    return found;
  };
  try {
    await healthy(endpoints);
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoints, members, restart, pause, resume, leader, stop };
}

/**
 * Whether every thread of `pid` is stopped by a signal: `ps -L` prints one
 * state per thread, T when stopped (the test process may not read /proc/PID
 * itself: Deno asks --allow-all for that).
 */
function allThreadsStopped(pid: number): boolean {
  const out = new Deno.Command("ps", { args: ["-L", "-o", "stat=", "-p", String(pid)] })
    .outputSync();
  const states = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.trim() !== "");
  return out.success && states.length > 0 && states.every((s) => s.trim().startsWith("T"));
}
