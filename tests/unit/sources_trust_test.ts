/**
 * Unit tests for src/sources/trust.ts: a service's local view of identity's
 * published keys and revocations.
 */

import assert from "node:assert/strict";
import type { Layout } from "../../src/runtime/config.ts";
import { runtimeFiles } from "../../src/runtime/config.ts";
import { newCapId } from "../../src/token/claims.ts";
import {
  generateSigningKey,
  importVerifyKey,
  publicPaserk,
  type SigningKey,
  type VerifyKey,
} from "../../src/token/keys.ts";
import { RevocationSet, signRevocationList } from "../../src/token/revocation_set.ts";
import { Trust } from "../../src/sources/trust.ts";
import type { KeySetSource } from "../../src/sources/key_set.ts";
import { makeClaims, mint, withTempDir } from "./support.ts";

const SOON = Math.floor(Date.now() / 1000) + 3600;

function layoutIn(dir: string): Layout {
  return { runtimeDir: dir, stateDir: `${dir}/state`, nodeId: "unit", fsRoots: [] };
}

function publishKeys(layout: Layout, keys: SigningKey[]): void {
  const rt = runtimeFiles(layout);
  const doc = {
    v: 1,
    issuer: "identity@unit",
    active: keys[0].kid,
    keys: keys.map((k) => ({
      kid: k.kid,
      public: publicPaserk(k.publicKey),
      created: "2030-01-01T00:00:00Z",
    })),
  };
  Deno.writeTextFileSync(rt.identityPubTmp, JSON.stringify(doc));
  Deno.renameSync(rt.identityPubTmp, rt.identityPub);
}

Deno.test("Trust: the issuer comes from the node id", async () => {
  await withTempDir((dir) => {
    assert.equal(new Trust(layoutIn(dir)).issuer, "identity@unit");
  });
});

Deno.test("Trust.refresh: merges the revocation file and reports newly revoked ids once", async () => {
  await withTempDir(async (dir) => {
    // given published keys and a signed revocation file naming one capability
    const layout = layoutIn(dir);
    const key = await generateSigningKey();
    publishKeys(layout, [key]);
    const a = newCapId();
    Deno.writeTextFileSync(
      runtimeFiles(layout).revocations,
      (await signRevocationList(key, "identity@unit", [{ cap_id: a, exp: SOON }])) + "\n",
    );
    const trust = new Trust(layout);
    const seen: string[][] = [];
    trust.onRevoked((ids) => seen.push(ids));
    // when refreshed twice
    await trust.refresh();
    await trust.refresh();
    // then the id is revoked and reported exactly once
    assert.ok(trust.revoked.has(a));
    assert.deepEqual(seen, [[a]]);
  });
});

Deno.test("Trust.onRevoked: entries are merged either way, and reported only while the listener wants them", async () => {
  await withTempDir(async (dir) => {
    // given published keys and a list file, and a listener that wants ids only when told to
    const layout = layoutIn(dir);
    const key = await generateSigningKey();
    publishKeys(layout, [key]);
    const path = runtimeFiles(layout).revocations;
    const append = async (id: string) =>
      Deno.writeTextFileSync(
        path,
        (await signRevocationList(key, "identity@unit", [{ cap_id: id, exp: SOON }])) + "\n",
        { append: true },
      );
    const trust = new Trust(layout);
    const seen: string[] = [];
    let wants = false;
    trust.onRevoked((ids) => seen.push(...ids), () => wants);
    const [a, b] = [newCapId(), newCapId()];
    // when a line is read while it wants none, and another once it wants them
    await append(a);
    await trust.refresh();
    wants = true;
    await append(b);
    await trust.catchUp();
    // then both are revoked, and only the second was reported
    assert.ok(trust.revoked.has(a) && trust.revoked.has(b));
    assert.deepEqual(seen, [b]);
    // and a listener whose wants() throws loses nothing: two lines read at once are merged
    // and reported, and the line after them too
    const [c, d, e] = [newCapId(), newCapId(), newCapId()];
    trust.onRevoked((ids) => seen.push(...ids), () => {
      throw new Error("wants failed");
    });
    await append(c);
    await append(d);
    await trust.catchUp();
    await append(e);
    await trust.catchUp();
    assert.ok([c, d, e].every((id) => trust.revoked.has(id)));
    assert.deepEqual(seen, [b, c, d, e]);
    trust.close();
  });
});

Deno.test("Trust.refresh: a revocation file not verifiable yet is skipped without throwing", async () => {
  await withTempDir(async (dir) => {
    // given a revocation file signed by a key that is not published
    const layout = layoutIn(dir);
    const stranger = await generateSigningKey();
    Deno.writeTextFileSync(
      runtimeFiles(layout).revocations,
      await signRevocationList(stranger, "identity@unit", [{ cap_id: newCapId(), exp: SOON }]),
    );
    const trust = new Trust(layout);
    // when refreshed, then nothing is revoked and nothing throws
    await trust.refresh();
    assert.equal(trust.revoked.size, 0);
  });
});

Deno.test("Trust.catchUp: applies the list lines identity appended, signed by its key, and no other", async () => {
  await withTempDir(async (dir) => {
    // given published keys and a list file
    const layout = layoutIn(dir);
    const key = await generateSigningKey();
    const stranger = await generateSigningKey();
    publishKeys(layout, [key]);
    const trust = new Trust(layout);
    const seen: string[] = [];
    trust.onRevoked((ids) => seen.push(...ids));
    const path = runtimeFiles(layout).revocations;
    const append = (line: string) => Deno.writeTextFileSync(path, line + "\n", { append: true });
    const [a, b, c] = [newCapId(), newCapId(), newCapId()];
    await trust.refresh(); // the keys read, as a service does at start
    try {
      // when identity appends a line, then the next catch-up applies it before it returns
      append(await signRevocationList(key, "identity@unit", [{ cap_id: a, exp: SOON }]));
      assert.equal(trust.catchUp(), undefined);
      assert.deepEqual(seen, [a]);
      assert.ok(trust.revoked.has(a));
      // and a replay adds nothing
      append(await signRevocationList(key, "identity@unit", [{ cap_id: a, exp: SOON }]));
      trust.catchUp();
      assert.deepEqual(seen, [a]);
      // while a line signed by another key, or for another issuer, is not applied
      append(await signRevocationList(stranger, "identity@unit", [{ cap_id: b, exp: SOON }]));
      append(await signRevocationList(key, "identity@other", [{ cap_id: b, exp: SOON }]));
      await trust.catchUp();
      assert.ok(!trust.revoked.has(b));
      // and a good line after them still is
      append(await signRevocationList(key, "identity@unit", [{ cap_id: c, exp: SOON }]));
      await trust.catchUp();
      assert.deepEqual(seen, [a, c]);
    } finally {
      trust.close();
    }
  });
});

Deno.test("Trust: a changed key set clears the verifier's cache", async () => {
  await withTempDir(async (dir) => {
    // given a token verified (and cached) under key A
    const layout = layoutIn(dir);
    const [a, b] = [await generateSigningKey(), await generateSigningKey()];
    publishKeys(layout, [a]);
    const trust = new Trust(layout);
    await trust.verifier.verify(await mint(a, makeClaims()));
    assert.equal(trust.verifier.cached, 1);
    // when identity publishes a new key set without A
    publishKeys(layout, [b]);
    await trust.refresh();
    // then the cache is emptied, so A's tokens are verified afresh (and now fail)
    assert.equal(trust.verifier.cached, 0);
    assert.deepEqual(trust.keys.kids, [b.kid]);
  });
});

Deno.test("Trust: identity may pass its own key ring and revocation set", async () => {
  await withTempDir(async (dir) => {
    const key = await generateSigningKey();
    const vk = await importVerifyKey(key.publicKey);
    const revoked = new RevocationSet();
    const trust = new Trust(layoutIn(dir), {
      keys: { get: (kid) => kid === vk.kid ? vk : undefined },
      revoked,
    });
    // then tokens verify with the ring (nothing published) and the set is the one passed
    const cap = await trust.verifier.verify(await mint(key, makeClaims()));
    assert.equal(cap.claims.sub, "tester");
    assert.equal(trust.revoked, revoked);
    assert.equal(trust.authContext.revoked, revoked);
  });
});

Deno.test("Trust: fed by sources it is given, the in-memory view follows their feeds", async () => {
  await withTempDir(async (dir) => {
    // given a key set source and a revocation source that are not files
    const key = await generateSigningKey();
    const verifyKey = await importVerifyKey(key.publicKey);
    let keys = new Map<string, VerifyKey>();
    const keyFeed: ((k: ReadonlyMap<string, VerifyKey>) => void)[] = [];
    const keySource: KeySetSource = {
      snapshot: () => keys,
      refresh: () => Promise.resolve(),
      subscribe: (fn) => {
        keyFeed.push(fn);
        return () => {};
      },
    };
    let deliver: (entries: { cap_id: string; exp: number }[]) => void = () => {};
    let next = "";
    const revocationSource = {
      snapshot: () => Promise.resolve([]),
      poll: () => Promise.resolve(),
      catchUp: () => deliver([{ cap_id: next, exp: SOON }]),
      subscribe: (fn: typeof deliver) => {
        deliver = fn;
        return () => {};
      },
    };
    const trust = new Trust(layoutIn(dir), undefined, { keySource, revocationSource });
    const seen: string[] = [];
    trust.onRevoked((ids) => seen.push(...ids));
    // when the key source's set changes, then lookups see it and the verifier's cache is cleared
    assert.equal(await trust.keys.get(key.kid), undefined);
    keys = new Map([[key.kid, verifyKey]]);
    for (const fn of keyFeed) fn(keys);
    assert.equal(trust.keys.get(key.kid), verifyKey);
    await trust.verifier.verify(await mint(key, makeClaims()));
    assert.equal(trust.verifier.cached, 1);
    for (const fn of keyFeed) fn(keys);
    assert.equal(trust.verifier.cached, 0);
    // and what the revocation source delivers on a catch-up is in the set when it returns
    const a = newCapId();
    next = a;
    trust.catchUp();
    assert.ok(trust.revoked.has(a));
    assert.deepEqual(seen, [a]);
    trust.catchUp();
    assert.deepEqual(seen, [a]);
  });
});
