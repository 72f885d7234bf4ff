/**
 * Unit tests for src/token/revocation_set.ts: the add-only revocation set,
 * the signed revocation list, and the revocation file in the runtime dir.
 */

import assert from "node:assert/strict";
import { newCapId } from "../../src/token/claims.ts";
import { generateSigningKey, importVerifyKey } from "../../src/token/keys.ts";
import { signV4Public, TokenError } from "../../src/token/paseto.ts";
import {
  openRevocationList,
  REVOCATION_LIST_TYPE,
  RevocationFile,
  RevocationSet,
  type RevokedEntry,
  signRevocationList,
} from "../../src/token/revocation_set.ts";
import { CountingLookup, ISSUER, withTempDir } from "./support.ts";

const SOON = Math.floor(Date.now() / 1000) + 3600;

Deno.test("RevocationSet: add reports only new ids; has and size follow", () => {
  // given an empty set
  const set = new RevocationSet();
  const [a, b] = [newCapId(), newCapId()];
  // when entries are added twice over
  const first = set.add([{ cap_id: a, exp: SOON }, { cap_id: b, exp: SOON }]);
  const again = set.add([{ cap_id: a, exp: SOON }]);
  // then only unknown ids are reported as added
  assert.deepEqual(first, [a, b]);
  assert.deepEqual(again, []);
  assert.equal(set.size, 2);
  assert.ok(set.has(a));
  assert.ok(!set.has(newCapId()));
});

Deno.test("RevocationSet: revokedIn returns the first revoked id of a lineage, ancestors first", () => {
  // given a lineage root → mid → leaf with mid and leaf revoked
  const set = new RevocationSet();
  const [root, mid, leaf] = [newCapId(), newCapId(), newCapId()];
  assert.equal(set.revokedIn([root, mid, leaf]), undefined);
  set.add([{ cap_id: leaf, exp: SOON }, { cap_id: mid, exp: SOON }]);
  // then the ancestor is named, not the leaf
  assert.equal(set.revokedIn([root, mid, leaf]), mid);
  assert.equal(set.revokedIn([leaf]), leaf);
  assert.equal(set.revokedIn([root]), undefined);
  assert.equal(set.revokedIn([]), undefined);
});

Deno.test("RevocationSet: merging is a union that keeps the later expiry, and never forgets", () => {
  // given an entry known with a late expiry
  const set = new RevocationSet();
  const [a, b] = [newCapId(), newCapId()];
  set.add([{ cap_id: a, exp: 2_000_000_000 }]);
  // when a stale list says the same id with an earlier expiry, plus another id
  set.add([{ cap_id: a, exp: 1_000 }, { cap_id: b, exp: 1_500_000_000 }]);
  // and an empty list arrives
  set.add([]);
  // then both are held, a with its later expiry
  const byId = new Map(set.entries().map((e) => [e.cap_id, e.exp]));
  assert.equal(byId.get(a), 2_000_000_000);
  assert.equal(byId.get(b), 1_500_000_000);
  assert.equal(set.size, 2);
});

Deno.test("RevocationSet: prune drops only entries whose token expired before now", () => {
  // given entries expiring at 100 s, 200 s and 300 s
  const set = new RevocationSet();
  const [a, b, c] = [newCapId(), newCapId(), newCapId()];
  set.add([{ cap_id: a, exp: 100 }, { cap_id: b, exp: 200 }, { cap_id: c, exp: 300 }]);
  // when pruned at exactly 200 s
  set.prune(200_000);
  // then only the one that expired earlier is gone
  assert.ok(!set.has(a));
  assert.ok(set.has(b));
  assert.ok(set.has(c));
  set.prune(250_000);
  assert.deepEqual(set.entries().map((e) => e.cap_id), [c]);
});

Deno.test("signRevocationList → openRevocationList: the entries round-trip", async () => {
  // given a signed list of two entries
  const key = await generateSigningKey();
  const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
  const entries: RevokedEntry[] = [{ cap_id: newCapId(), exp: SOON }, {
    cap_id: newCapId(),
    exp: SOON + 1,
  }];
  const signed = await signRevocationList(key, ISSUER, entries);
  // when opened with the key set and issuer
  const opened = await openRevocationList(signed, keys, ISSUER);
  // then the entries are the same
  assert.deepEqual(opened, entries);
  assert.ok(signed.startsWith("v4.public."));
});

Deno.test("openRevocationList: a list signed by another key is refused", async () => {
  // given a list signed by a key that is not in the key set
  const key = await generateSigningKey();
  const stranger = await generateSigningKey();
  const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
  const signed = await signRevocationList(stranger, ISSUER, [{ cap_id: newCapId(), exp: SOON }]);
  // then it is refused as signed by an unknown key
  await assert.rejects(
    openRevocationList(signed, keys, ISSUER),
    (e: unknown) => e instanceof TokenError && e.reason === "unknown_key",
  );
  // and a lookup that answers with the wrong key gives a bad signature
  const liar = { get: () => keys.get(key.kid) };
  await assert.rejects(
    openRevocationList(signed, liar, ISSUER),
    (e: unknown) => e instanceof TokenError && e.reason === "bad_signature",
  );
});

Deno.test("openRevocationList: a wrong issuer, a wrong type or malformed entries are refused", async () => {
  const key = await generateSigningKey();
  const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
  // given a list by another node's issuer
  const other = await signRevocationList(key, "identity@elsewhere", []);
  await assert.rejects(openRevocationList(other, keys, ISSUER), /wrong type or issuer/);
  // a capability token (not a list) signed by the same key
  const notList = await signV4Public(key, { typ: "cap", iss: ISSUER, revoked: [] });
  await assert.rejects(openRevocationList(notList, keys, ISSUER), /wrong type or issuer/);
  // entries that are not {cap_id, exp}
  for (const revoked of [[{ cap_id: "nothex", exp: 1 }], [{ cap_id: newCapId(), exp: 1.5 }], "x"]) {
    const bad = await signV4Public(key, { typ: REVOCATION_LIST_TYPE, iss: ISSUER, revoked });
    await assert.rejects(openRevocationList(bad, keys, ISSUER), /malformed entries/);
  }
});

Deno.test("RevocationFile: a missing file is nothing revoked yet", async () => {
  await withTempDir(async (dir) => {
    const set = new RevocationSet();
    const keys = new CountingLookup();
    assert.deepEqual(await new RevocationFile(`${dir}/revocations`).load(set, keys, ISSUER), []);
    assert.equal(set.size, 0);
  });
});

Deno.test("RevocationFile: loads the list when the file changed, and only then", async () => {
  await withTempDir(async (dir) => {
    // given a revocation file with one entry
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const [a, b] = [newCapId(), newCapId()];
    const write = async (entries: RevokedEntry[]) => {
      Deno.writeTextFileSync(
        `${path}.tmp`,
        (await signRevocationList(key, ISSUER, entries)) + "\n",
      );
      Deno.renameSync(`${path}.tmp`, path);
    };
    await write([{ cap_id: a, exp: SOON }]);
    const file = new RevocationFile(path);
    const set = new RevocationSet();
    // when loaded, then the entry is merged
    assert.deepEqual(await file.load(set, keys, ISSUER), [a]);
    assert.equal(keys.calls, 1);
    // when loaded again without a change, then the file is not verified again
    assert.deepEqual(await file.load(set, keys, ISSUER), []);
    assert.equal(keys.calls, 1);
    // when identity rewrites it with a second entry, then only the new one is reported
    await write([{ cap_id: a, exp: SOON }, { cap_id: b, exp: SOON }]);
    assert.deepEqual(await file.load(set, keys, ISSUER), [b]);
    assert.equal(keys.calls, 2);
    assert.ok(set.has(a) && set.has(b));
  });
});

Deno.test("RevocationFile: a line signed by a key not known yet is retried on the next load", async () => {
  await withTempDir(async (dir) => {
    // given a file signed by a key the verifier does not know yet
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup();
    const a = newCapId();
    Deno.writeTextFileSync(
      path,
      (await signRevocationList(key, ISSUER, [{ cap_id: a, exp: SOON }])) + "\n",
    );
    const file = new RevocationFile(path);
    const set = new RevocationSet();
    // when loaded, then nothing is merged (and nothing throws)
    assert.deepEqual(await file.load(set, keys, ISSUER), []);
    assert.equal(set.size, 0);
    // and once the key is known, the same unchanged file loads
    keys.add(await importVerifyKey(key.publicKey));
    assert.deepEqual(await file.load(set, keys, ISSUER), [a]);
  });
});

Deno.test("RevocationFile: lines appended later are read from where it left off", async () => {
  await withTempDir(async (dir) => {
    // given a file of one line, already read
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const line = async (id: string) =>
      (await signRevocationList(key, ISSUER, [{ cap_id: id, exp: SOON }])) + "\n";
    const [a, b, c] = [newCapId(), newCapId(), newCapId()];
    Deno.writeTextFileSync(path, await line(a));
    const file = new RevocationFile(path);
    const set = new RevocationSet();
    assert.deepEqual(await file.load(set, keys, ISSUER), [a]);
    // when a whole line and half of another are appended
    const third = await line(c);
    Deno.writeTextFileSync(path, (await line(b)) + third.slice(0, 20), { append: true });
    // then only the whole line is merged, verifying nothing twice
    const calls = keys.calls;
    assert.deepEqual(await file.load(set, keys, ISSUER), [b]);
    assert.equal(keys.calls, calls + 1);
    // and the rest of the torn line, once written, is read too
    Deno.writeTextFileSync(path, third.slice(20), { append: true });
    assert.deepEqual(await file.load(set, keys, ISSUER), [c]);
  });
});

Deno.test("RevocationFile: a line that can never verify is skipped, not a wall", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const a = newCapId();
    const good = (await signRevocationList(key, ISSUER, [{ cap_id: a, exp: SOON }])) + "\n";
    Deno.writeTextFileSync(path, "v4.public.garbage\n" + good);
    assert.deepEqual(await new RevocationFile(path).load(new RevocationSet(), keys, ISSUER), [a]);
  });
});
