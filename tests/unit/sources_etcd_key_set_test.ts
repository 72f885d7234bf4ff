/**
 * Tests of src/sources/etcd_key_set.ts and src/token/endorsement.ts against
 * a real etcd on loopback (tests/etcd.ts): only an endorsement signed by the
 * cluster root makes a key trusted, for its own issuer only; forged, foreign,
 * expired and withdrawn ones are refused as unendorsed_key with the reason.
 * A node's pending keys (after a rotation) are refused with that reason and
 * count only for its revocation lists; cut off from etcd, an unknown key is
 * answered UNAVAILABLE without waiting for etcd's timeouts. While the watch
 * is up, the periodic look leaves etcd alone but for a re-read now and then.
 */

import assert from "node:assert/strict";
import { endorsementOf } from "../cluster_support.ts";
import { EtcdHttp } from "../../src/sources/etcd_http.ts";
import { ManualClock } from "../../src/runtime/clock.ts";
import {
  generateSigningKey,
  importVerifyKey,
  publicPaserk,
  type SigningKey,
} from "../../src/token/keys.ts";
import { signPendingKeys } from "../../src/token/endorsement.ts";
import { StrataError } from "../../src/wire/errors.ts";
import { TokenError } from "../../src/token/paseto.ts";
import { TokenVerifier } from "../../src/token/verifier.ts";
import { ClaimsError } from "../../src/token/claims.ts";
import {
  endorsementsPrefix,
  EtcdKeySetSource,
  pendingKeysPrefix,
} from "../../src/sources/etcd_key_set.ts";
import { FileKeySetSource, KeySetLookup } from "../../src/sources/key_set.ts";
import { startEtcd } from "../etcd.ts";
import { waitFor } from "../helpers.ts";
import { makeClaims, mint, withTempDir } from "./support.ts";

const CLUSTER = "c1";

function endorse(root: SigningKey, node: string, keys: SigningKey[], expMs: number): string {
  return endorsementOf(root, CLUSTER, node, keys, { expMs });
}

Deno.test("etcd key set: only the root's endorsements make keys trusted, each for its issuer", async () => {
  const etcd = await startEtcd(1);
  const writer = new EtcdHttp({ endpoints: etcd.endpoints });
  const clock = new ManualClock(Date.now());
  try {
    await withTempDir(async (dir) => {
      const root = await generateSigningKey();
      const [a, b, forger, mallory] = await Promise.all(
        [1, 2, 3, 4].map(() => generateSigningKey()),
      );
      const prefix = endorsementsPrefix(CLUSTER);
      const hour = clock.now() + 3600_000;
      await writer.put(`${prefix}A`, endorse(root, "A", [a], hour));
      // Signed by a key that is not the root: written by anyone who can write to etcd.
      await writer.put(`${prefix}mallory`, endorse(forger, "mallory", [mallory], hour));
      // The root's endorsement of B, stored under another node's name.
      await writer.put(`${prefix}evil`, endorse(root, "B", [b], hour));
      const source = new EtcdKeySetSource({
        cluster: CLUSTER,
        client: new EtcdHttp({ endpoints: etcd.endpoints }),
        root: await importVerifyKey(root.publicKey),
        local: new FileKeySetSource(`${dir}/identity.pub`),
        clock,
      });
      await source.start();
      await source.watching;
      try {
        const lookup = new KeySetLookup(source);
        const verifier = new TokenVerifier({
          issuer: "identity@B",
          issuers: source.issuers,
          audience: CLUSTER,
          keys: lookup,
        });
        const claims = (iss: string) => makeClaims({ iss, aud: CLUSTER });
        // A's token, signed by A's endorsed key: accepted.
        const capA = await verifier.verify(await mint(a, claims("identity@A")));
        assert.equal(capA.claims.iss, "identity@A");
        assert.deepEqual([...source.issuers], ["identity@A"]);
        // A's key cannot vouch for another issuer's tokens.
        await assert.rejects(
          async () => await verifier.verify(await mint(a, claims("identity@C"))),
          (e: unknown) => e instanceof ClaimsError && e.reason === "wrong_issuer",
        );
        // Forged and misfiled endorsements: refused with the reason.
        for (
          const [key, iss, why] of [
            [mallory, "identity@mallory", /not signed by the cluster root/],
            [b, "identity@B", /signed for B/],
          ] as const
        ) {
          await assert.rejects(
            async () => await verifier.verify(await mint(key, claims(iss))),
            (e: unknown) =>
              e instanceof TokenError && e.reason === "unendorsed_key" && why.test(e.message),
          );
        }
        // Withdrawn: the watch drops A's key and says why.
        const tokenA2 = await mint(a, claims("identity@A"));
        await writer.delete(`${prefix}A`);
        const deadline = Date.now() + 5000;
        while (source.snapshot().has(a.kid) && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 10));
        }
        await assert.rejects(
          async () => await verifier.verify(tokenA2),
          (e: unknown) =>
            e instanceof TokenError && e.reason === "unendorsed_key" &&
            /withdrawn/.test(e.message),
        );
        // Re-endorsed with a short expiry: trusted, then refused once it expires.
        await writer.put(`${prefix}A`, endorse(root, "A", [a], clock.now() + 60_000));
        await source.refresh();
        assert.ok(source.snapshot().has(a.kid));
        clock.advance(61_000);
        assert.ok(!source.snapshot().has(a.kid), "an expired endorsement stops holding");
        await assert.rejects(
          async () => await verifier.verify(await mint(a, claims("identity@A"))),
          (e: unknown) =>
            e instanceof TokenError && e.reason === "unendorsed_key" && /expired/.test(e.message),
        );
      } finally {
        source.close();
      }
    });
  } finally {
    writer.close();
    await etcd.stop();
  }
});

Deno.test("etcd key set: three members, the leader killed -9: an endorsement written meanwhile is read", async () => {
  const etcd = await startEtcd(3);
  const writer = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await withTempDir(async (dir) => {
      const root = await generateSigningKey();
      const [a, b] = await Promise.all([generateSigningKey(), generateSigningKey()]);
      const prefix = endorsementsPrefix(CLUSTER);
      await writer.put(`${prefix}A`, endorse(root, "A", [a], Date.now() + 3600_000));
      const source = new EtcdKeySetSource({
        cluster: CLUSTER,
        client: new EtcdHttp({ endpoints: etcd.endpoints }),
        root: await importVerifyKey(root.publicKey),
        local: new FileKeySetSource(`${dir}/identity.pub`),
      });
      try {
        await source.start();
        await source.watching;
        assert.ok(source.snapshot().has(a.kid));
        // The leader, asked just before the kill, is the hard case: until the others elect
        // one, etcd takes no write. The put below talks to the members that stay up.
        const leader = await etcd.leader();
        const survivors = etcd.endpoints.filter((_, i) => i !== leader);
        etcd.members[leader].kill("SIGKILL");
        await etcd.members[leader].status;
        // A put proposed to the dead leader waits out etcd's 7 s request timeout, or fails
        // during the election, and the client's circuit breaker then refuses that member
        // for a while: the test sends it again on a fresh client, each try bounded to 1 s.
        const putBy = Date.now() + 15_000;
        for (;;) {
          const once = new EtcdHttp({ endpoints: survivors });
          try {
            await once.put(`${prefix}B`, endorse(root, "B", [b], Date.now() + 3600_000), {
              deadline: new Date(Date.now() + 1000),
            });
            break;
          } catch (err) {
            if (Date.now() > putBy) throw err;
            await new Promise((r) => setTimeout(r, 100));
          } finally {
            once.close();
          }
        }
        const t0 = performance.now();
        const deadline = Date.now() + 10_000;
        while (!source.snapshot().has(b.kid) && Date.now() < deadline) {
          await source.refresh().catch(() => {});
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.ok(source.snapshot().has(b.kid), "B's endorsement read with the leader down");
        console.log(
          `  seen ${(performance.now() - t0).toFixed(0)} ms after the put, the leader down`,
        );
        assert.ok(source.snapshot().has(a.kid));
      } finally {
        source.close();
      }
    });
  } finally {
    writer.close();
    await etcd.stop();
  }
});

Deno.test("etcd key set: a node's pending keys, signed by its endorsed key, are refused with the reason and count for its revocation lists only", async () => {
  const etcd = await startEtcd(1);
  const writer = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await withTempDir(async (dir) => {
      const root = await generateSigningKey();
      const [old, fresh, intruder] = await Promise.all([1, 2, 3].map(() => generateSigningKey()));
      const hour = Date.now() + 3600_000;
      await writer.put(`${endorsementsPrefix(CLUSTER)}A`, endorse(root, "A", [old], hour));
      const pending = (by: SigningKey, keys: SigningKey[]) =>
        signPendingKeys(by, {
          cluster: CLUSTER,
          node: "A",
          keys: keys.map((k) => ({ kid: k.kid, public: publicPaserk(k.publicKey) })),
        });
      // Forged first: signed by a key the root does not endorse for A.
      await writer.put(`${pendingKeysPrefix(CLUSTER)}A`, pending(intruder, [intruder]));
      const source = new EtcdKeySetSource({
        cluster: CLUSTER,
        client: new EtcdHttp({ endpoints: etcd.endpoints }),
        root: await importVerifyKey(root.publicKey),
        local: new FileKeySetSource(`${dir}/identity.pub`),
      });
      await source.start();
      try {
        const lookup = new KeySetLookup(source);
        assert.equal(await lookup.get(intruder.kid), undefined, "a forged pending set: unknown");
        assert.equal(source.pendingKey(intruder.kid), undefined);
        // The genuine one, signed by A's endorsed key, naming the new key and the old.
        await writer.put(`${pendingKeysPrefix(CLUSTER)}A`, pending(old, [fresh, old]));
        await assert.rejects(
          async () => await lookup.get(fresh.kid),
          (e: unknown) =>
            e instanceof TokenError && e.reason === "unendorsed_key" &&
            /awaits the operator's endorsement: run strata-ctl cluster endorse A/.test(e.message),
        );
        assert.equal(source.pendingKey(fresh.kid)?.issuer, "identity@A");
        assert.equal(source.snapshot().has(fresh.kid), false, "never trusted for tokens");
        assert.ok(source.snapshot().has(old.kid), "the old key stays endorsed");
        // The operator endorses it: trusted, and no longer pending.
        await writer.put(`${endorsementsPrefix(CLUSTER)}A`, endorse(root, "A", [fresh, old], hour));
        assert.equal((await lookup.get(fresh.kid))?.issuer, "identity@A");
        assert.equal(source.pendingKey(fresh.kid), undefined);
      } finally {
        source.close();
      }
    });
  } finally {
    writer.close();
    await etcd.stop();
  }
});

Deno.test("etcd key set: with etcd out of reach, an unknown key is answered UNAVAILABLE promptly", async () => {
  const etcd = await startEtcd(1);
  let stopped = false;
  try {
    await withTempDir(async (dir) => {
      const root = await generateSigningKey();
      const unknown = await generateSigningKey();
      const source = new EtcdKeySetSource({
        cluster: CLUSTER,
        client: new EtcdHttp({ endpoints: etcd.endpoints }),
        root: await importVerifyKey(root.publicKey),
        local: new FileKeySetSource(`${dir}/identity.pub`),
      });
      await source.start();
      try {
        const lookup = new KeySetLookup(source);
        assert.equal(await lookup.get(unknown.kid), undefined, "etcd answers: unknown");
        // A stopped member answers nothing: reads hang until their deadline.
        stopped = true;
        await etcd.pause(0);
        const times: number[] = [];
        for (let i = 0; i < 2; i++) {
          const t0 = performance.now();
          await assert.rejects(
            async () => await lookup.get(unknown.kid),
            (e: unknown) =>
              e instanceof StrataError && e.errorName === "UNAVAILABLE" &&
              e.details?.reason === "etcd_unreachable" && /cannot look up now/.test(e.message),
          );
          times.push(performance.now() - t0);
        }
        console.log(`  unknown key, etcd stopped: ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
        assert.ok(times[0] < 2500 && times[1] < 1000, `answered promptly: ${times}`);
      } finally {
        if (stopped) etcd.resume(0);
        stopped = false;
        source.close();
      }
    });
  } finally {
    if (stopped) etcd.resume(0);
    await etcd.stop();
  }
});

Deno.test("etcd key set: while the watch is up, the periodic look reads etcd only now and then; a broken watch makes every look read", async () => {
  const etcd = await startEtcd(1);
  const writer = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await withTempDir(async (dir) => {
      const root = await generateSigningKey();
      const [a, b] = await Promise.all([generateSigningKey(), generateSigningKey()]);
      const prefix = endorsementsPrefix(CLUSTER);
      const hour = Date.now() + 3600_000;
      await writer.put(`${prefix}A`, endorse(root, "A", [a], hour));
      // given a source whose reads of etcd are counted (each whole read: two prefixes)
      const client = new EtcdHttp({ endpoints: etcd.endpoints });
      let reads = 0;
      let failNext = false;
      const range = client.range.bind(client);
      client.range = (...args) => {
        reads++;
        if (failNext) throw new Error("a read that failed");
        return range(...args);
      };
      const source = new EtcdKeySetSource({
        cluster: CLUSTER,
        client,
        root: await importVerifyKey(root.publicKey),
        local: new FileKeySetSource(`${dir}/identity.pub`),
        watchedRereadMs: 3000,
      });
      await source.start();
      await source.watching;
      try {
        // when the service looks every 100 ms: once whole after the watch is up, then not
        await source.poll();
        const afterUp = reads;
        for (let i = 0; i < 8; i++) {
          await new Promise((r) => setTimeout(r, 100));
          await source.poll();
        }
        assert.equal(reads, afterUp, "no read of etcd while the watch is up");
        assert.ok(source.snapshot().has(a.kid));
        // and after a read that failed (one a watch event started), the looks read until one
        // succeeds
        failNext = true;
        await source.refresh();
        failNext = false;
        assert.ok(source.lastError);
        const failed = reads;
        await source.poll();
        assert.ok(reads > failed, "a look reads again after a failed read");
        const again = reads;
        await source.poll();
        assert.equal(reads, again, "and not once one has succeeded");
        // then a new endorsement arrives by the watch
        await writer.put(`${prefix}B`, endorse(root, "B", [b], hour));
        await waitFor("B's key by the watch", () => source.snapshot().has(b.kid), 3000);
        // and once the last whole read is older than the bound, a look reads again
        await new Promise((r) => setTimeout(r, 3100));
        const before = reads;
        await source.poll();
        assert.equal(reads, before + 2, "one whole read after the bound");
        // when etcd stops answering, the broken watch no longer counts: the looks read
        // again long before the bound since the last read is over
        etcd.members[0].kill("SIGKILL");
        await etcd.members[0].status;
        await waitFor("a look that reads etcd once the watch broke", async () => {
          const n = reads;
          await source.poll();
          return reads > n;
        }, 1500);
        const n = reads;
        await source.poll();
        assert.ok(reads > n, "and the next one too");
      } finally {
        source.close();
      }
    });
  } finally {
    writer.close();
    await etcd.stop();
  }
});
