/**
 * Unit tests for src/identity/keyring.ts: the signing key ring in a temp
 * state dir, its expiry bounds and rotation.
 */

import assert from "node:assert/strict";
import { KeyRing, type KeyRingFiles } from "../../src/identity/keyring.ts";
import { rfc3339 } from "../../src/token/claims.ts";
import { signV4Public, verifyV4Public } from "../../src/token/paseto.ts";
import { withTempDir } from "./support.ts";

const HOUR = 3600_000;
const T0 = Date.UTC(2033, 0, 1, 0, 0, 0);

function filesIn(dir: string): KeyRingFiles {
  return { keys: `${dir}/keys.json`, keysTmp: `${dir}/keys.json.tmp` };
}

interface StoredRing {
  active: string;
  keys: { kid: string; exp_bound: string; retired?: string }[];
}

function stored(files: KeyRingFiles): StoredRing {
  return JSON.parse(Deno.readTextFileSync(files.keys));
}

Deno.test("KeyRing.open: the first open creates keys.json with mode 0600 and one active key", async () => {
  await withTempDir(async (dir) => {
    // given an empty state dir
    const files = filesIn(dir);
    // when the ring is opened
    const ring = await KeyRing.open(files, T0);
    // then keys.json exists, private to its owner, holding the active key
    const st = Deno.statSync(files.keys);
    assert.equal(st.mode! & 0o777, 0o600);
    const doc = stored(files);
    assert.equal(doc.active, ring.active.kid);
    assert.deepEqual(doc.keys.map((k) => k.kid), [ring.active.kid]);
    assert.match(ring.active.kid, /^k4\.pid\./);
    // and no temporary file is left behind
    assert.throws(() => Deno.statSync(files.keysTmp), Deno.errors.NotFound);
  });
});

Deno.test("KeyRing.open: reopening yields the same active key, which still verifies old tokens", async () => {
  await withTempDir(async (dir) => {
    // given a ring that signed a token
    const files = filesIn(dir);
    const first = await KeyRing.open(files, T0);
    const token = await signV4Public(first.active, { n: 1 });
    // when opened again (a restart)
    const again = await KeyRing.open(files, T0 + 1000);
    // then the active key is the same and the token verifies with the reopened ring
    assert.equal(again.active.kid, first.active.kid);
    assert.deepEqual(again.active.seed, first.active.seed);
    assert.deepEqual(await verifyV4Public(token, (kid) => again.get(kid)), { n: 1 });
  });
});

Deno.test("KeyRing.open: a corrupt keys.json is refused with a message naming the file", async () => {
  await withTempDir(async (dir) => {
    const files = filesIn(dir);
    Deno.writeTextFileSync(files.keys, "{not json");
    await assert.rejects(KeyRing.open(files, T0), /keys\.json is unreadable or corrupt/);
  });
});

Deno.test("KeyRing.coverExpiry: writes the ring only when the bound must grow", async () => {
  await withTempDir(async (dir) => {
    // given a fresh ring (bound = its creation time)
    const files = filesIn(dir);
    const ring = await KeyRing.open(files, T0);
    const ino0 = Deno.statSync(files.keys).ino;
    // when a token expiring at or before the bound is covered, then nothing is written
    ring.coverExpiry(T0);
    ring.coverExpiry(T0 - HOUR);
    assert.equal(Deno.statSync(files.keys).ino, ino0);
    // when a later expiry is covered, then the ring is rewritten with a bound past it
    ring.coverExpiry(T0 + 2 * HOUR);
    const ino1 = Deno.statSync(files.keys).ino;
    assert.notEqual(ino1, ino0);
    const bound = Date.parse(stored(files).keys[0].exp_bound);
    assert.ok(bound >= T0 + 2 * HOUR, `bound ${rfc3339(bound)} does not cover the token`);
    assert.equal(ring.latestExpiry, bound);
    // and covering anything up to the new bound writes nothing more
    ring.coverExpiry(T0 + 2 * HOUR + 1000);
    ring.coverExpiry(bound);
    assert.equal(Deno.statSync(files.keys).ino, ino1);
    // while the mode stays 0600 across rewrites
    assert.equal(Deno.statSync(files.keys).mode! & 0o777, 0o600);
  });
});

Deno.test("KeyRing.rotate: the old key keeps verifying and is published with its not_after", async () => {
  await withTempDir(async (dir) => {
    // given a ring whose key signed a token valid for two hours
    const files = filesIn(dir);
    const ring = await KeyRing.open(files, T0);
    ring.coverExpiry(T0 + 2 * HOUR);
    const oldKid = ring.active.kid;
    const token = await signV4Public(ring.active, { old: true });
    // when the key is rotated
    const { previous, previousNotAfter } = await ring.rotate(T0 + 60_000);
    // then a new key is active and the old one still verifies its token
    assert.equal(previous, oldKid);
    assert.notEqual(ring.active.kid, oldKid);
    assert.ok(previousNotAfter >= T0 + 2 * HOUR);
    assert.deepEqual(await verifyV4Public(token, (kid) => ring.get(kid)), { old: true });
    // and the published document lists both, with not_after only for the old one
    const doc = ring.publicDocument("identity@unit");
    assert.equal(doc.active, ring.active.kid);
    assert.equal(doc.issuer, "identity@unit");
    const byKid = new Map(doc.keys.map((k) => [k.kid, k]));
    assert.equal(byKid.get(oldKid)?.not_after, rfc3339(previousNotAfter));
    assert.equal(byKid.get(ring.active.kid)?.not_after, undefined);
    assert.match(byKid.get(ring.active.kid)!.public, /^k4\.public\./);
    // and the stored ring marks the old key retired
    const retired = stored(files).keys.find((k) => k.kid === oldKid);
    assert.equal(retired?.retired, rfc3339(T0 + 60_000));
    // and a reopen before not_after keeps both
    const again = await KeyRing.open(files, T0 + HOUR);
    assert.equal(again.active.kid, ring.active.kid);
    assert.ok(again.get(oldKid));
  });
});

Deno.test("KeyRing.open: a retired key whose exp_bound has passed is dropped on reopen", async () => {
  await withTempDir(async (dir) => {
    // given a rotated ring whose old key's tokens all expire by its bound
    const files = filesIn(dir);
    const ring = await KeyRing.open(files, T0);
    ring.coverExpiry(T0 + HOUR);
    const oldKid = ring.active.kid;
    const { previousNotAfter } = await ring.rotate(T0 + 1000);
    const newKid = ring.active.kid;
    // when reopened after that bound
    const later = await KeyRing.open(files, previousNotAfter + 1000);
    // then the old key is gone (from memory and from keys.json) and the active key remains
    assert.equal(later.get(oldKid), undefined);
    assert.equal(later.active.kid, newKid);
    assert.deepEqual(stored(files).keys.map((k) => k.kid), [newKid]);
    assert.deepEqual(later.publicDocument("identity@unit").keys.map((k) => k.kid), [newKid]);
  });
});

Deno.test("KeyRing.open: the active key is kept even when its own bound has passed", async () => {
  await withTempDir(async (dir) => {
    const files = filesIn(dir);
    const ring = await KeyRing.open(files, T0);
    const later = await KeyRing.open(files, T0 + 365 * 24 * HOUR);
    assert.equal(later.active.kid, ring.active.kid);
  });
});

Deno.test("KeyRing: a bound or rotation that cannot be written is not adopted", async () => {
  await withTempDir(async (dir) => {
    // Given a ring whose next write will fail (its temp file's path is taken by a folder)
    const files = filesIn(dir);
    const ring = await KeyRing.open(files, T0);
    const active = ring.active.kid;
    await Deno.mkdir(files.keysTmp);
    // When the bound must grow, or the key rotate
    // Then both fail, and the ring in memory is what is on disk
    assert.throws(() => ring.coverExpiry(T0 + 48 * HOUR));
    assert.throws(() => ring.coverExpiry(T0 + 48 * HOUR), "still refuses: nothing was adopted");
    await assert.rejects(() => ring.rotate(T0));
    assert.equal(ring.active.kid, active);
    assert.deepEqual(stored(files).keys.map((k) => k.kid), [active]);
  });
});

Deno.test("KeyRing.rotate: the new key is active only once publish has run, and not if it throws", async () => {
  await withTempDir(async (dir) => {
    // given a ring
    const files = filesIn(dir);
    const ring = await KeyRing.open(files, T0);
    const old = ring.active.kid;
    // when it rotates, publish sees the new key already active (same synchronous step)
    let seen = "";
    await ring.rotate(T0 + 1000, { publish: () => (seen = ring.active.kid) });
    assert.notEqual(seen, old);
    assert.equal(ring.active.kid, seen);
    // when a publish fails, the rotation is undone, in memory and on disk
    await assert.rejects(() =>
      ring.rotate(T0 + 2000, {
        publish: () => {
          throw new Error("disk full");
        },
      }), /disk full/);
    assert.equal(ring.active.kid, seen);
    assert.equal(stored(files).active, seen);
  });
});

Deno.test("KeyRing cap_ids: identity knows the ids it sealed and their expiry, across a restart", async () => {
  await withTempDir(async (dir) => {
    // given a ring that made an id for a token expiring at T0 + 1 h (and a bit)
    const files = filesIn(dir);
    const ring = await KeyRing.open(files, T0);
    const exp = T0 + HOUR + 999;
    const id = ring.newCapId(exp);
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.notEqual(ring.newCapId(exp), id, "two ids for the same expiry differ");
    // then it opens to the expiry in whole seconds (the token's exp claim), also after a restart
    assert.deepEqual(ring.openCapId(id, T0), { expMs: T0 + HOUR, root: false });
    assert.deepEqual((await KeyRing.open(files, T0)).openCapId(id, T0), {
      expMs: T0 + HOUR,
      root: false,
    });
    // and a root capability's id says so
    assert.equal(ring.openCapId(ring.newCapId(exp, { root: true }), T0)?.root, true);
    // and an id it never made, or one with a digit changed, is unknown
    const typo = id.slice(0, 31) + (id[31] === "0" ? "1" : "0");
    for (const other of [typo, "0".repeat(32), crypto.randomUUID().replaceAll("-", "")]) {
      assert.equal(ring.openCapId(other, T0), undefined, other);
    }
  });
});

Deno.test("KeyRing cap_ids: ids drawn across many batches of random bytes are distinct and open to their own expiry", async () => {
  await withTempDir(async (dir) => {
    // given a ring
    const ring = await KeyRing.open(filesIn(dir), T0);
    // when it makes 3,000 ids (the random bytes are drawn 585 ids' worth at a time)
    // for three expiries, every fifth a root's
    const ids = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      ids.set(ring.newCapId(T0 + HOUR + (i % 3) * 1000, { root: i % 5 === 0 }), i);
    }
    // then no two are the same (the same expiry and flag differ only in random bytes),
    // and each opens to its own expiry and root flag
    assert.equal(ids.size, 3000);
    for (const [id, i] of ids) {
      assert.deepEqual(ring.openCapId(id, T0), {
        expMs: T0 + HOUR + (i % 3) * 1000,
        root: i % 5 === 0,
      });
    }
  });
});

Deno.test("KeyRing cap_ids: a ring from before sealed ids accepts any id until its tokens expired", async () => {
  await withTempDir(async (dir) => {
    // given a keys.json written without a cap_id key, whose key signed up to T0 + 2 h
    const files = filesIn(dir);
    const ring = await KeyRing.open(files, T0);
    ring.coverExpiry(T0 + HOUR);
    const doc = JSON.parse(Deno.readTextFileSync(files.keys));
    delete doc.cap_ids;
    Deno.writeTextFileSync(files.keys, JSON.stringify(doc));
    // when it is opened by this version
    const upgraded = await KeyRing.open(files, T0);
    // then an unsealed (old, random) id may be live until then, and no longer
    const old = crypto.randomUUID().replaceAll("-", "");
    assert.equal(upgraded.openCapId(old, T0)?.expMs, T0 + 2 * HOUR);
    assert.equal(upgraded.openCapId(old, T0 + 2 * HOUR + 1), undefined);
    // and the window is stored, so a restart keeps it
    assert.equal((await KeyRing.open(files, T0)).openCapId(old, T0)?.expMs, T0 + 2 * HOUR);
  });
});
