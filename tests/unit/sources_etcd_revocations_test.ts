/**
 * Tests of src/sources/etcd_revocations.ts against a real etcd on loopback
 * (tests/etcd.ts): a revocation list in etcd counts only when it is signed by
 * a key the root endorses for the node it is filed under; forged, misfiled
 * and mislabelled lists are ignored. Published batches carry a lease and
 * reach a watching source. While the watch is up, etcd is read a sixth of
 * the partition bound apart, and a cut-off node still refuses within it.
 */

import assert from "node:assert/strict";
import { endorsementOf } from "../cluster_support.ts";
import { EtcdHttp, type EtcdWatch } from "../../src/sources/etcd_http.ts";
import { generateSigningKey, importVerifyKey, type SigningKey } from "../../src/token/keys.ts";
import { type RevokedEntry, signRevocationList } from "../../src/token/revocation_set.ts";
import { endorsementsPrefix, EtcdKeySetSource } from "../../src/sources/etcd_key_set.ts";
import {
  EtcdRevocationSource,
  probeIntervalMs,
  publishRevocations,
  revocationsPrefix,
} from "../../src/sources/etcd_revocations.ts";
import { FileRevocationSource } from "../../src/sources/revocations.ts";
import { FileKeySetSource, KeySetLookup } from "../../src/sources/key_set.ts";
import { newCapId } from "../../src/token/claims.ts";
import { startEtcd } from "../etcd.ts";
import { withTempDir } from "./support.ts";
import { waitFor } from "../helpers.ts";

const CLUSTER = "c1";

Deno.test("etcd revocations: only lists signed by a key endorsed for their node count", async () => {
  const etcd = await startEtcd(1);
  const writer = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await withTempDir(async (dir) => {
      const [root, a, b, stranger] = await Promise.all(
        [1, 2, 3, 4].map(() => generateSigningKey()),
      );
      const hour = Date.now() + 3600_000;
      for (const [node, key] of [["a", a], ["b", b]] as const) {
        await writer.put(
          `${endorsementsPrefix(CLUSTER)}${node}`,
          endorsementOf(root, CLUSTER, node, [key], { expMs: hour }),
        );
      }
      const entry = (): RevokedEntry => ({
        cap_id: newCapId(),
        exp: Math.floor(Date.now() / 1000) + 600,
      });
      const [good, misfiled, mislabelled, forged, later] = [1, 2, 3, 4, 5].map(entry);
      const prefix = revocationsPrefix(CLUSTER);
      await writer.put(`${prefix}a/1`, await signRevocationList(a, "identity@a", [good]));
      // A's list filed under B; A's key claiming to speak for B; a key nobody endorsed.
      await writer.put(`${prefix}b/1`, await signRevocationList(a, "identity@a", [misfiled]));
      await writer.put(`${prefix}b/2`, await signRevocationList(a, "identity@b", [mislabelled]));
      await writer.put(`${prefix}a/2`, await signRevocationList(stranger, "identity@a", [forged]));

      const keys = new EtcdKeySetSource({
        cluster: CLUSTER,
        client: new EtcdHttp({ endpoints: etcd.endpoints }),
        root: await importVerifyKey(root.publicKey),
        local: new FileKeySetSource(`${dir}/identity.pub`),
      });
      await keys.start();
      const lookup = new KeySetLookup(keys);
      const source = new EtcdRevocationSource({
        cluster: CLUSTER,
        client: keys.client,
        keys: lookup,
        localIssuer: "identity@c",
        partitionBoundMs: 30_000,
        local: new FileRevocationSource(`${dir}/revocations`, {
          keys: lookup,
          issuer: "identity@c",
        }),
      });
      const got = new Set<string>();
      source.subscribe((entries) => [...entries].forEach((e) => got.add(e.cap_id)));
      try {
        await source.poll();
        assert.deepEqual([...got], [good.cap_id]);

        // A batch published the way identity does: leased, and delivered by the watch.
        const key = await publishRevocations(
          writer,
          await signRevocationList(b, "identity@b", [
            later,
          ]),
          { cluster: CLUSTER, node: "b", entries: [later] },
        );
        await waitFor("the watch to deliver", () => got.has(later.cap_id), 5000);
        const kv = (await writer.range(key, { exact: true })).kvs[0];
        assert.notEqual(kv.lease, "0");
        for (const id of [misfiled, mislabelled, forged]) assert.ok(!got.has(id.cap_id));
      } finally {
        source.close();
        keys.close();
      }
    });
  } finally {
    writer.close();
    await etcd.stop();
  }
});

Deno.test("etcd revocations: with the watch up, etcd is read a sixth of the bound apart; cut off, foreign tokens are refused within the bound", async () => {
  assert.equal(probeIntervalMs(30_000), 5000);
  assert.equal(probeIntervalMs(3000), 500);
  const etcd = await startEtcd(1);
  let paused = false;
  try {
    await withTempDir(async (dir) => {
      const root = await generateSigningKey();
      // given a source with a 3 s bound whose small reads of etcd are counted
      const keys = new EtcdKeySetSource({
        cluster: CLUSTER,
        client: new EtcdHttp({ endpoints: etcd.endpoints }),
        root: await importVerifyKey(root.publicKey),
        local: new FileKeySetSource(`${dir}/identity.pub`),
      });
      await keys.start();
      const reads = countReads(keys.client);
      const source = sourceOver(keys, dir, 3000);
      try {
        await waitFor("the watch to be up", async () => {
          const n = reads.n;
          await source.poll();
          return reads.n > n;
        }, 5000);
        // when the service looks every 100 ms for 2 s
        const from = reads.n;
        const t0 = performance.now();
        while (performance.now() - t0 < 2000) {
          await source.poll();
          await new Promise((r) => setTimeout(r, 100));
        }
        // then etcd was read about every 500 ms, not at each look
        const n = reads.n - from;
        assert.ok(n >= 2 && n <= 5, `${n} small reads in 2 s`);
        assert.equal(source.cutOff(), undefined);
        // and once etcd stops answering, the node is cut off within the bound
        await etcd.pause(0);
        paused = true;
        const stopped = performance.now();
        await waitFor("the cut-off", () => {
          void source.poll().catch(() => {});
          return source.cutOff() !== undefined;
        }, 4000);
        const after = performance.now() - stopped;
        assert.ok(after <= 3000 + 150, `cut off ${after.toFixed(0)} ms after etcd stopped`);
        assert.ok(after >= 2500 - 150, `not before five sixths of the bound: ${after.toFixed(0)}`);
      } finally {
        source.close();
        keys.close();
      }
    });
  } finally {
    if (paused) etcd.resume(0);
    await etcd.stop();
  }
});

Deno.test("etcd revocations: a revocation the watch never delivers is applied by the small read, within a sixth of the bound", async () => {
  const etcd = await startEtcd(1);
  const writer = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await withTempDir(async (dir) => {
      const { b, keys } = await endorsedB(etcd.endpoints, writer, dir);
      // given a revocation watch that is up and says nothing (as one on a member that stopped
      // answering, while the others answer): it watches a prefix nothing is put under
      const watch = keys.client.watch.bind(keys.client);
      keys.client.watch = (p: string) => watch(`${p}nothing-here/`);
      const reads = countReads(keys.client);
      const source = sourceOver(keys, dir, 3000);
      const got = new Set<string>();
      source.subscribe((entries) => [...entries].forEach((e) => got.add(e.cap_id)));
      try {
        await source.poll();
        // (up: a look that reads nothing from etcd)
        await watchUp(source, reads);
        // when B's identity publishes a revocation
        const later = await publishFromB(writer, b);
        const published = performance.now();
        // then the service's looks apply it within the small read's interval (500 ms at a 3 s bound)
        await waitFor("the revocation", async () => {
          await source.poll();
          return got.has(later.cap_id);
        }, 2500);
        const ms = performance.now() - published;
        assert.ok(ms < 1500, `applied ${ms.toFixed(0)} ms after it was published`);
      } finally {
        source.close();
        keys.close();
      }
    });
  } finally {
    writer.close();
    await etcd.stop();
  }
});

/**
 * Node b's key endorsed in etcd by a fresh root, and a started key set of
 * node c over it (its own client; closed by the caller).
 */
async function endorsedB(endpoints: string[], writer: EtcdHttp, dir: string) {
  const [root, b] = await Promise.all([generateSigningKey(), generateSigningKey()]);
  await writer.put(
    `${endorsementsPrefix(CLUSTER)}b`,
    endorsementOf(root, CLUSTER, "b", [b], { expMs: Date.now() + 3600_000 }),
  );
  const keys = new EtcdKeySetSource({
    cluster: CLUSTER,
    client: new EtcdHttp({ endpoints }),
    root: await importVerifyKey(root.publicKey),
    local: new FileKeySetSource(`${dir}/identity.pub`),
  });
  await keys.start();
  return { b, keys };
}

/** A revocation by node b's identity, signed with `b` and written to etcd: its entry. */
async function publishFromB(writer: EtcdHttp, b: SigningKey): Promise<RevokedEntry> {
  const later: RevokedEntry = { cap_id: newCapId(), exp: Math.floor(Date.now() / 1000) + 600 };
  await publishRevocations(writer, await signRevocationList(b, "identity@b", [later]), {
    cluster: CLUSTER,
    node: "b",
    entries: [later],
  });
  return later;
}

/** Polls `source` until a look reads nothing from etcd: its watch is up. */
function watchUp(source: EtcdRevocationSource, reads: { n: number }): Promise<void> {
  return waitFor("the watch to be up", async () => {
    const n = reads.n;
    await source.poll();
    return reads.n === n;
  }, 5000);
}

/** Counts the client's range reads (whole reads and the partition rule's small ones). */
function countReads(client: EtcdHttp): { n: number } {
  const count = { n: 0 };
  const range = client.range.bind(client);
  client.range = (...args) => {
    count.n++;
    return range(...args);
  };
  return count;
}

/** A revocation source of node c over `keys`, with a partition bound of `boundMs`. */
function sourceOver(keys: EtcdKeySetSource, dir: string, boundMs: number): EtcdRevocationSource {
  const lookup = new KeySetLookup(keys);
  return new EtcdRevocationSource({
    cluster: CLUSTER,
    client: keys.client,
    keys: lookup,
    localIssuer: "identity@c",
    partitionBoundMs: boundMs,
    local: new FileRevocationSource(`${dir}/revocations`, { keys: lookup, issuer: "identity@c" }),
  });
}

Deno.test("etcd revocations: a watch etcd cancels is replaced, and the next revocation comes by the new one", async () => {
  const etcd = await startEtcd(1);
  const writer = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await withTempDir(async (dir) => {
      const { b, keys } = await endorsedB(etcd.endpoints, writer, dir);
      // The revocation watches the source sets up.
      const watches: EtcdWatch[] = [];
      const watch = keys.client.watch.bind(keys.client);
      keys.client.watch = async (p: string) => {
        const w = await watch(p);
        if (p === revocationsPrefix(CLUSTER)) watches.push(w);
        return w;
      };
      const reads = countReads(keys.client);
      // A 60 s bound: the small read comes 5 s apart, so within this test only a watch delivers.
      const source = sourceOver(keys, dir, 60_000);
      const got = new Set<string>();
      source.subscribe((entries) => [...entries].forEach((e) => got.add(e.cap_id)));
      try {
        await source.poll();
        await watchUp(source, reads);
        // etcd cancels the watch (as when it resumed from a compacted revision).
        const first = watches[0];
        await first.cancel();
        first.emit("error", new Error("etcd: watch of the prefix: revision compacted"));
        // The next looks read whole and set up another watch.
        await waitFor("a second watch", async () => {
          await source.poll();
          return watches.length === 2;
        }, 5000);
        await watchUp(source, reads);
        const later = await publishFromB(writer, b);
        // No look meanwhile: only the new watch can bring it.
        await waitFor("the revocation by the new watch", () => got.has(later.cap_id), 2000);
      } finally {
        source.close();
        keys.close();
      }
    });
  } finally {
    writer.close();
    await etcd.stop();
  }
});
