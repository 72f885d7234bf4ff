/**
 * Services found and called across nodes (docs/cluster.md), with real
 * processes: one etcd and two nodes, A and B, on loopback. B's fs also
 * listens on tcp://127.0.0.1:PORT with the certificate `cluster join b
 * --host 127.0.0.1` issued. On A, the registry lists B's services with their
 * node and resolves fs on B to its tcp:// endpoint; strata-ctl --node b and
 * the library read a file of B's byte-identical with a token minted on A.
 * A TLS server whose certificate is not from the cluster CA is refused.
 * kill -9 of B's supervisor and children: B's entries leave A's
 * registry.list within the lease TTL (time printed).
 */

import assert from "node:assert/strict";
import { programCommand } from "../../src/runtime/command.ts";
import type { Layout } from "../../src/runtime/config.ts";
import { Client } from "../../src/server/client.ts";
import { Strata } from "../../src/strata.ts";
import { REGISTRY_LEASE_TTL_S } from "../../src/sources/etcd_registry_store.ts";
import {
  freePort,
  issue,
  makeTestTls,
  type Node,
  REPO_ROOT,
  startNode,
  tempLayout,
  waitFor,
} from "../helpers.ts";
import { startEtcd } from "../etcd.ts";

const CLUSTER = "reg";

/** Runs strata-ctl as the launcher would, in `cwd`; returns its exit code, stdout and stderr. */
async function ctl(
  layout: Layout,
  args: string[],
  options: { cwd: string; clusterDir?: string; downloads?: string[] },
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const { cmd, args: argv } = programCommand("ctl", layout, {
    kind: "dev",
    deno: Deno.execPath(),
    root: REPO_ROOT,
  }, { clusterDir: options.clusterDir, downloads: options.downloads, extra: args });
  const out = await new Deno.Command(cmd, { args: argv, cwd: options.cwd }).output();
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

/** strata-ctl with --json that must succeed; its parsed output. */
async function ctlJson(layout: Layout, dir: string, args: string[]): Promise<unknown> {
  const r = await ctl(layout, ["--json", ...args], { cwd: dir, clusterDir: dir });
  assert.equal(r.code, 0, `strata-ctl ${args.join(" ")}: ${r.stderr}`);
  return JSON.parse(new TextDecoder().decode(r.stdout));
}

interface Listed {
  service: string;
  endpoint: string;
  endpoints: string[];
  node: string;
}

async function listOn(node: Node): Promise<Listed[]> {
  const r = await node.request("registry", "registry.list");
  assert.ok(r.ok, JSON.stringify(r));
  return (r.result as { services: Listed[] }).services;
}

Deno.test("cluster registry: B's fs found and read from A over TLS; B's entries leave with its lease", async () => {
  const etcd = await startEtcd(1);
  const op = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-op-" });
  const nodes: Node[] = [];
  const temps: Awaited<ReturnType<typeof tempLayout>>[] = [];
  let rogue: Deno.TlsListener | undefined;
  try {
    const port = freePort();
    const fsTcp = `tcp://127.0.0.1:${port}`;
    const cluster = {
      name: CLUSTER,
      etcd: etcd.endpoints,
      root: `${op}/root.pub`,
      ca: `${op}/ca.pem`,
    };
    for (const id of ["a", "b"]) {
      const t = await tempLayout();
      t.layout = { ...t.layout, nodeId: id, cluster };
      temps.push(t);
    }
    // A's strata-ctl may dial B's fs: its exact net grant.
    temps[0].layout.cluster = { ...cluster, peers: [`127.0.0.1:${port}`] };
    await ctlJson(temps[0].layout, op, ["cluster", "init", "--dir", op]);
    for (const temp of temps) nodes.push(await startNode({ temp }));
    // A's certificate too: its strata-ctl and library present it to B (mutual TLS).
    await ctlJson(nodes[0].layout, op, [
      "cluster",
      "join",
      "a",
      "--dir",
      op,
      "--host",
      "127.0.0.1",
    ]);
    nodes[0].layout.tls = { cert: `${op}/nodes/a.pem`, key: `${op}/nodes/a.key` };
    await ctlJson(nodes[1].layout, op, [
      "cluster",
      "join",
      "b",
      "--dir",
      op,
      "--host",
      "127.0.0.1",
    ]);
    // B again, now with fs on tcp:// and the certificate the cluster CA signed.
    await nodes[1].stop();
    temps[1].layout = {
      ...temps[1].layout,
      listen: { fs: fsTcp },
      tls: { cert: `${op}/nodes/b.pem`, key: `${op}/nodes/b.key` },
    };
    nodes[1] = await startNode({ temp: temps[1] });
    const [a, b] = nodes;

    // A's registry shows B's services with their node; fs with its tcp:// endpoint too.
    await waitFor("B's fs in A's registry.list", async () => {
      const list = await listOn(a);
      return list.some((e) => e.node === "b" && e.service === "fs");
    }, 10_000);
    const list = await listOn(a);
    const fsOnB = list.find((e) => e.node === "b" && e.service === "fs")!;
    assert.deepEqual(fsOnB.endpoints, [`unix://${b.layout.runtimeDir}/fs.sock`, fsTcp]);
    assert.equal(fsOnB.endpoint, fsTcp, "another node's entry is answered with its tcp:// one");
    assert.ok(list.some((e) => e.node === "a" && e.service === "fs"), "and A's own entries");
    const resolved = await a.request("registry", "registry.resolve", { service: "fs", node: "b" });
    assert.ok(resolved.ok, JSON.stringify(resolved));
    assert.equal((resolved.result as Listed).endpoint, fsTcp);
    assert.equal((resolved.result as Listed).node, "b");
    const own = await a.request("registry", "registry.resolve", { service: "fs" });
    assert.equal(own.ok && (own.result as Listed).node, "a", "without node: this node's");
    const none = await a.request("registry", "registry.resolve", { service: "fs", node: "zz" });
    assert.equal(!none.ok && none.error.name, "NOT_FOUND");

    // A file on B, read from A with a token minted on A.
    const bytes = new Uint8Array(3 * 1024 * 1024 + 17);
    for (let i = 0; i < bytes.length; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, i + 65536));
    }
    const path = `${b.exportRoot}/on-b.bin`;
    await Deno.writeFile(path, bytes);
    const tokA = (await issue(a, {
      service: "fs",
      actions: ["open", "read", "list"],
      path_prefix: b.exportRoot,
    })).token;
    // The library: Strata.connect on A, node b.
    const strata = await Strata.connect({
      runtimeDir: a.layout.runtimeDir,
      stateDir: a.layout.stateDir,
      token: tokA,
      node: "b",
      caFile: cluster.ca,
      certFile: `${op}/nodes/a.pem`,
      keyFile: `${op}/nodes/a.key`,
    });
    try {
      const t0 = performance.now();
      const got = await strata.fs.readFile(path);
      console.log(
        `  library on A read ${got.length} bytes of B's fs over TLS in ` +
          `${(performance.now() - t0).toFixed(0)} ms`,
      );
      assert.deepEqual(got, bytes);
    } finally {
      await strata.close();
    }
    // Without A's certificate, B's tcp:// endpoint refuses the library (mutual TLS).
    const bare = await Strata.connect({
      runtimeDir: a.layout.runtimeDir,
      stateDir: a.layout.stateDir,
      token: tokA,
      node: "b",
      caFile: cluster.ca,
    });
    try {
      const err = await bare.fs.readFile(path).then(() => undefined, (e: Error) => e);
      assert.ok(err, "B served a client without a certificate");
      assert.match(err.message, /CertificateRequired|refused this client's certificate/);
    } finally {
      await bare.close();
    }
    // strata-ctl on A: --node b fs get.
    const dl = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-dl-" });
    try {
      const t0 = performance.now();
      const r = await ctl(a.layout, ["--node", "b", "-token", tokA, "fs", "get", path, "got.bin"], {
        cwd: dl,
        downloads: [dl],
      });
      assert.equal(r.code, 0, r.stderr);
      console.log(`  strata-ctl --node b fs get on A: ${(performance.now() - t0).toFixed(0)} ms`);
      assert.deepEqual(await Deno.readFile(`${dl}/got.bin`), bytes);
    } finally {
      await Deno.remove(dl, { recursive: true });
    }

    // The cluster views on A: B's fs probed over TLS (a peer), B's other services not.
    const all = await ctlJson(a.layout, op, ["svc", "list", "--all-nodes"]) as {
      services: { node: string; service: string; health: string }[];
    };
    const health = (node: string, service: string) =>
      all.services.find((x) => x.node === node && x.service === service)?.health;
    assert.equal(health("b", "fs"), "ok");
    assert.equal(health("b", "identity"), "not probed");
    assert.equal(health("a", "fs"), "ok");
    const status = await ctlJson(a.layout, op, ["cluster", "status"]) as {
      etcd: { reachable: boolean; ms: number };
      registry_staleness_ms: number;
      nodes: { node: string; up: boolean; endorsed: string }[];
    };
    assert.equal(status.etcd.reachable, true);
    assert.ok(status.registry_staleness_ms < 5000, `stale: ${status.registry_staleness_ms}`);
    assert.deepEqual(status.nodes.map((n) => [n.node, n.up]), [["a", true], ["b", true]]);
    assert.match(status.nodes[1].endorsed, /^yes until /);
    console.log(
      `  cluster status on A: etcd read ${status.etcd.ms} ms, registry view ` +
        `${status.registry_staleness_ms} ms old`,
    );

    // A TLS server whose certificate another CA signed: the client refuses it.
    const tlsDir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-rogue-" });
    try {
      const stranger = await makeTestTls(tlsDir);
      const roguePort = freePort();
      rogue = Deno.listenTls({
        hostname: "127.0.0.1",
        port: roguePort,
        cert: await Deno.readTextFile(stranger.cert),
        key: await Deno.readTextFile(stranger.key),
      });
      const accepting = (async () => {
        for await (const conn of rogue!) {
          conn.handshake().catch(() => {}).finally(() => conn.close());
        }
      })().catch(() => {});
      const err = await Client.connect(`tcp://127.0.0.1:${roguePort}`, { caFile: cluster.ca })
        .then((c) => c.close().then(() => undefined), (e) => e);
      assert.ok(err, "a certificate not from the cluster CA must be refused");
      assert.equal(err.errorName ?? err.name, "UNAVAILABLE", String(err));
      // And B's real endpoint, checked against the stranger CA: refused as well.
      const err2 = await Client.connect(fsTcp, { caFile: stranger.ca }).then(
        (c) => c.close().then(() => undefined),
        (e) => e,
      );
      assert.ok(err2, "B's certificate is not from the stranger CA");
      rogue.close();
      rogue = undefined;
      await accepting;
    } finally {
      await Deno.remove(tlsDir, { recursive: true });
    }

    // kill -9 of B's supervisor and children: its entries leave A's view within the TTL.
    const pids = await b.childPids();
    const killedAt = performance.now();
    b.process.kill("SIGKILL");
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await waitFor("B's entries gone from A's registry.list", async () => {
      const l = await listOn(a);
      return !l.some((e) => e.node === "b");
    }, (REGISTRY_LEASE_TTL_S + 5) * 1000);
    const goneMs = performance.now() - killedAt;
    console.log(
      `  B's registry entries gone from A's registry.list ${(goneMs / 1000).toFixed(2)} s ` +
        `after kill -9 (lease TTL ${REGISTRY_LEASE_TTL_S} s)`,
    );
    assert.ok(goneMs <= (REGISTRY_LEASE_TTL_S + 1) * 1000, `took ${goneMs} ms`);
    const resolveGone = await a.request("registry", "registry.resolve", {
      service: "fs",
      node: "b",
    });
    assert.equal(!resolveGone.ok && resolveGone.error.name, "NOT_FOUND");
    // cluster status on A: B still endorsed, but down.
    const after = await ctlJson(a.layout, op, ["cluster", "status"]) as typeof status;
    assert.deepEqual(after.nodes.map((n) => [n.node, n.up]), [["a", true], ["b", false]]);
    await b.stop().catch(() => {});
    nodes.pop();
  } finally {
    rogue?.close();
    for (const n of nodes) await n.stop().catch(() => {});
    for (const t of temps) await t.cleanup();
    await etcd.stop();
    await Deno.remove(op, { recursive: true });
  }
});
