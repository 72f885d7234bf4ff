/**
 * Tests of src/sources/etcd_registry_store.ts against a real etcd on
 * loopback (tests/etcd.ts): a node's rows are written under its lease and
 * seen by another node's store; entries filed under another node or service
 * than they name, or not entries at all, are ignored; close() revokes the
 * lease, so the rows leave every node at once.
 */

import assert from "node:assert/strict";
import { EtcdHttp } from "../../src/sources/etcd_http.ts";
import { EtcdRegistryStore, registryPrefix } from "../../src/sources/etcd_registry_store.ts";
import type { RegistryRecord } from "../../src/sources/registry_store.ts";
import { startEtcd } from "../etcd.ts";
import { waitFor } from "../helpers.ts";

const CLUSTER = "r1";

function record(service: string, endpoint: string): RegistryRecord {
  return {
    service,
    endpoint,
    api_v: 1,
    registered_at: new Date().toISOString(),
    owner: "supervisor",
    lineage: [],
    expMs: Infinity,
  };
}

Deno.test("etcd registry store: rows under a lease, seen by other nodes, gone when closed", async () => {
  const etcd = await startEtcd(1);
  const writer = new EtcdHttp({ endpoints: etcd.endpoints });
  const store = (node: string) =>
    new EtcdRegistryStore({
      client: new EtcdHttp({ endpoints: etcd.endpoints }),
      cluster: CLUSTER,
      node,
      endpointsOf: (r) => node === "b" ? [r.endpoint, "tcp://127.0.0.1:7402"] : [r.endpoint],
      ttlS: 5,
    });
  const a = store("a");
  const b = store("b");
  try {
    await a.start();
    await b.start();
    b.put(record("fs", "unix:///rb/fs.sock"));
    await b.flushed();
    assert.equal(b.lastError, undefined);
    // Written to etcd under b's name, with a lease.
    const raw = await writer.get(`${registryPrefix(CLUSTER)}b/fs`);
    assert.deepEqual(JSON.parse(raw!).endpoints, ["unix:///rb/fs.sock", "tcp://127.0.0.1:7402"]);
    // Forged rows: filed under another node than they name, another service, not JSON.
    const fake = { ...JSON.parse(raw!), node: "b" };
    await writer.put(`${registryPrefix(CLUSTER)}c/fs`, JSON.stringify(fake));
    await writer.put(`${registryPrefix(CLUSTER)}b/identity`, JSON.stringify(fake));
    await writer.put(`${registryPrefix(CLUSTER)}b/x`, "not json");
    await waitFor("a sees b's fs", () => a.cluster().some((e) => e.node === "b"), 5000);
    // Only b's real row is seen (the forged ones are ignored, by the watch and the re-read).
    await new Promise((r) => setTimeout(r, 2300));
    assert.deepEqual(a.cluster().map((e) => `${e.node}/${e.service}`), ["b/fs"]);
    // A's own table is only its own rows.
    assert.equal(a.size, 0);
    // b stops: its lease is revoked and its rows leave a's view without waiting for the TTL.
    const t0 = performance.now();
    await b.close();
    await waitFor("b's row gone", () => !a.cluster().some((e) => e.node === "b"), 3000);
    assert.ok(performance.now() - t0 < 3000);
    assert.equal(await writer.get(`${registryPrefix(CLUSTER)}b/fs`), null);
  } finally {
    await a.close();
    await b.close().catch(() => {});
    writer.close();
    await etcd.stop();
  }
});

Deno.test("etcd registry store: a watch that could not be set up at start is set up again", async () => {
  const etcd = await startEtcd(1);
  const client = new EtcdHttp({ endpoints: etcd.endpoints });
  const writer = new EtcdHttp({ endpoints: etcd.endpoints });
  // The first try fails (its member was down at start); the later ones go through.
  let tries = 0;
  const watch = client.watch.bind(client);
  client.watch = (...args) => ++tries === 1 ? Promise.reject(new Error("down")) : watch(...args);
  const a = new EtcdRegistryStore({
    client,
    cluster: CLUSTER,
    node: "a",
    endpointsOf: (r) => [r.endpoint],
    ttlS: 5,
  });
  try {
    await a.start();
    await waitFor("a second try at the watch", () => tries >= 2, 5000);
    // Set up: another node's row comes by the watch, well before the next 2 s re-read.
    await new Promise((r) => setTimeout(r, 300));
    const row = {
      ...record("fs", "unix:///rc/fs.sock"),
      node: "c",
      endpoints: ["unix:///rc/fs.sock"],
    };
    await writer.put(`${registryPrefix(CLUSTER)}c/fs`, JSON.stringify(row));
    const t0 = performance.now();
    await waitFor("c's row", () => a.cluster().some((e) => e.node === "c"), 3000);
    assert.equal(tries, 2, "one watch, not a new one at every re-read");
    assert.ok(performance.now() - t0 < 800, `${(performance.now() - t0).toFixed(0)} ms`);
  } finally {
    await a.close();
    writer.close();
    await etcd.stop();
  }
});
