/**
 * Unit tests for src/token/revocation_set.ts: the add-only revocation set,
 * the signed revocation list (the file in the runtime dir is tested in
 * sources_revocations_test.ts).
 */

import assert from "node:assert/strict";
import { newCapId } from "../../src/token/claims.ts";
import { generateSigningKey, importVerifyKey } from "../../src/token/keys.ts";
import { signV4Public, TokenError } from "../../src/token/paseto.ts";
import {
  isRevokedEntry,
  openRevocationList,
  openRevocationListNow,
  ownListEntries,
  PackedEntries,
  packEntries,
  REVOCATION_LIST_TYPE,
  RevocationSet,
  type RevokedEntry,
  scanList,
  signRevocationList,
  signRevocationListNow,
  unpackEntries,
} from "../../src/token/revocation_set.ts";
import { CountingLookup, ISSUER } from "./support.ts";

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
  // and entries added after a prune, one expiring before any held, and one whose expiry
  // was raised past another's, go exactly when they expire
  const [d, e] = [newCapId(), newCapId()];
  set.add([{ cap_id: d, exp: 400 }, { cap_id: e, exp: 270 }]);
  set.prune(280_000);
  assert.deepEqual(set.entries().map((x) => x.cap_id).sort(), [c, d].sort());
  set.add([{ cap_id: c, exp: 500 }]);
  set.prune(350_000);
  assert.equal(set.size, 2);
  set.prune(450_000);
  assert.deepEqual(set.entries().map((x) => x.cap_id), [c]);
  set.prune(500_001);
  assert.equal(set.size, 0);
});

Deno.test("RevocationSet: 50,000 ids (the table grows and is rebuilt by prune) answer as a Map of them does", () => {
  // given 50,000 random ids with expiries spread over 100 s, some added twice
  const set = new RevocationSet();
  const model = new Map<string, number>();
  const ids = Array.from({ length: 50_000 }, newCapId);
  ids.forEach((id, i) => {
    const exp = 1_000 + (i % 100);
    const added = set.add([{ cap_id: id, exp }, { cap_id: id, exp: exp - 1 }]);
    assert.deepEqual(added, [id]);
    model.set(id, exp);
  });
  assert.equal(set.size, 50_000);
  // then every id is held with its expiry, and none that was not added
  assert.ok(ids.every((id) => set.has(id)));
  assert.ok(!set.has(newCapId()));
  assert.deepEqual(new Map(set.entries().map((e) => [e.cap_id, e.exp])), model);
  // when the older half expires
  set.prune(1_050_000);
  // then exactly the entries of tokens expiring at or after 1,050 s are left
  const left = ids.filter((id) => model.get(id)! >= 1_050);
  assert.equal(set.size, left.length);
  assert.ok(left.every((id) => set.has(id)));
  assert.ok(ids.filter((id) => model.get(id)! < 1_050).every((id) => !set.has(id)));
  // and ids added after the rebuild are found too
  const late = newCapId();
  set.add([{ cap_id: late, exp: 5_000 }]);
  assert.equal(set.revokedIn([newCapId(), late]), late);
});

Deno.test("RevocationSet: room reserved ahead (past its cap, below its size, or none) changes no answer", () => {
  const ids = Array.from({ length: 3_000 }, newCapId);
  for (const reserved of [0, 100, 3_000, 10_000_000]) {
    // given a set told to expect `reserved` entries, then given 3,000 in batches
    const set = new RevocationSet();
    set.reserve(reserved);
    for (let i = 0; i < ids.length; i += 1000) {
      assert.equal(
        set.add(ids.slice(i, i + 1000).map((id) => ({ cap_id: id, exp: SOON }))).length,
        1000,
      );
      // and told again, below what it holds
      set.reserve(10);
    }
    // then it holds exactly them
    assert.equal(set.size, ids.length, `reserved ${reserved}`);
    assert.ok(ids.every((id) => set.has(id)));
    assert.ok(!set.has(newCapId()));
    assert.deepEqual(new Set(set.entries().map((e) => e.cap_id)), new Set(ids));
  }
});

Deno.test("RevocationSet: ids taken in another set's listing order load as fast as in random order", () => {
  // given a set of 100,000 ids, as identity holds them after a burst of revocations
  const source = new RevocationSet();
  source.add(Array.from({ length: 100_000 }, () => ({ cap_id: newCapId(), exp: SOON })));
  const listed = source.entries();
  const shuffled = [...listed].sort(() => Math.random() - 0.5);
  function load(entries: RevokedEntry[]): number {
    const t0 = performance.now();
    const set = new RevocationSet();
    for (let i = 0; i < entries.length; i += 1000) set.add(entries.slice(i, i + 1000));
    assert.equal(set.size, entries.length);
    return performance.now() - t0;
  }
  // when a verifier loads them in the order the list file has them (the source's slot order)
  const random = Math.min(load(shuffled), load(shuffled));
  const inOrder = Math.min(load(listed), load(listed));
  // then it is not slower than random order (one shared hash took ~100 times as long)
  assert.ok(
    inOrder < 5 * random + 50,
    `${inOrder.toFixed(0)} ms in order, ${random.toFixed(0)} ms shuffled`,
  );
});

Deno.test("RevocationSet: an id that is not 32 lowercase hex digits is held and told apart exactly", () => {
  // given a lowercase hex id, the same digits in capitals, and ids of other forms
  const set = new RevocationSet();
  const id = newCapId();
  const odd = [id.toUpperCase(), id.slice(1), id + "0", "é".repeat(32), "x"];
  set.add([{ cap_id: id, exp: SOON }]);
  // then none of the others is taken for it
  for (const o of odd) assert.ok(!set.has(o), o);
  // when they are added too, each is its own entry, kept with the later expiry, and pruned by it
  assert.deepEqual(set.add(odd.map((cap_id) => ({ cap_id, exp: 100 }))), odd);
  set.add([{ cap_id: "x", exp: 2_000_000_000 }]);
  assert.equal(set.size, 1 + odd.length);
  assert.ok(odd.every((o) => set.has(o)));
  assert.equal(set.revokedIn(["y", "x"]), "x");
  set.prune(200_000);
  assert.deepEqual(set.entries().map((e) => e.cap_id).sort(), [id, "x"].sort());
});

Deno.test("RevocationSet: an expiry beyond 2106 is held as 2106, one before 1970 is expired", () => {
  const set = new RevocationSet();
  const [far, past] = [newCapId(), newCapId()];
  set.add([{ cap_id: far, exp: 2 ** 40 }, { cap_id: past, exp: -5 }]);
  assert.ok(set.has(far) && set.has(past));
  set.prune(10_000);
  assert.deepEqual(set.entries(), [{ cap_id: far, exp: 0xffffffff }]);
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

Deno.test("isRevokedEntry: a cap_id is exactly 32 lowercase hex digits, as the regex says", () => {
  const regex = /^[0-9a-f]{32}$/;
  const id = newCapId();
  const cases = [
    id,
    id.toUpperCase(),
    id.slice(1),
    id + "0",
    id.slice(0, 31) + "g",
    id.slice(0, 31) + "/",
    id.slice(0, 31) + ":",
    id.slice(0, 31) + "`",
    // Code units whose low seven bits are a hex digit's.
    id.slice(0, 31) + String.fromCharCode(0x80 + 0x30),
    id.slice(0, 31) + String.fromCharCode(0x100 + 0x61),
    "",
  ];
  // And random strings of hex digits with one code unit changed.
  for (let i = 0; i < 2000; i++) {
    const at = i % 32;
    const c = String.fromCharCode((i * 7919) % 0x180);
    cases.push(id.slice(0, at) + c + id.slice(at + 1));
  }
  for (const cap_id of cases) {
    assert.equal(isRevokedEntry({ cap_id, exp: 1 }), regex.test(cap_id), JSON.stringify(cap_id));
  }
  assert.equal(isRevokedEntry({ cap_id: id, exp: 1.5 }), false);
  assert.equal(isRevokedEntry({ cap_id: 1, exp: 1 }), false);
  assert.equal(isRevokedEntry(null), false);
});

/** What JSON.parse and the checks make of a list payload, or "refused". */
function parsedAsJson(bytes: Uint8Array): RevokedEntry[] | "refused" {
  try {
    const p = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    if (p?.typ !== REVOCATION_LIST_TYPE || p.iss !== ISSUER) return "refused";
    if (!Array.isArray(p.revoked) || !p.revoked.every(isRevokedEntry)) return "refused";
    return p.revoked;
  } catch {
    return "refused";
  }
}

Deno.test("scanList reads identity's own form of a list straight from its bytes, as JSON.parse would", () => {
  const id = newCapId();
  const iat = new Date().toISOString();
  const canonical = (revoked: unknown[]) =>
    JSON.stringify({ typ: REVOCATION_LIST_TYPE, iss: ISSUER, iat, revoked });
  const entries = [
    { cap_id: id, exp: SOON },
    { cap_id: newCapId(), exp: 0 },
    { cap_id: newCapId(), exp: 7 },
    { cap_id: newCapId(), exp: 999_999_999_999_999 },
    { cap_id: "0".repeat(32), exp: 1 },
    { cap_id: "f".repeat(32), exp: 4_294_967_296 },
  ];
  // the shortest entries there are, many of them
  const short = Array.from({ length: 100 }, (_, i) => ({ cap_id: newCapId(), exp: i % 10 }));
  // given payloads identity writes: some entries, none, one, the shortest
  for (const revoked of [entries, [], [entries[0]], short]) {
    const bytes = new TextEncoder().encode(canonical(revoked));
    const packed = scanList(bytes, ISSUER);
    // then they are read without JSON, to the same entries
    assert.ok(packed instanceof PackedEntries);
    assert.deepEqual(packed.toArray(), parsedAsJson(bytes));
    assert.deepEqual([...packed], revoked);
  }
  // given payloads in any other form: each is left to JSON.parse (scanList answers undefined),
  // whether JSON.parse then accepts it or not
  const others = [
    canonical(entries).replace(`"exp":${SOON}`, `"exp": ${SOON}`),
    canonical(entries).replace(`{"cap_id":"${id}"`, `{ "cap_id":"${id}"`),
    canonical(entries).replace(`"exp":${SOON}`, `"exp":${SOON}.0`),
    canonical(entries).replace(`"exp":${SOON}`, `"exp":${SOON}e0`),
    canonical(entries).replace(`"exp":${SOON}`, `"exp":-${SOON}`),
    canonical(entries).replace(`"exp":${SOON}`, `"exp":0${SOON}`),
    canonical(entries).replace(`"exp":${SOON}`, `"exp":1234567890123456`),
    canonical(entries).replace(`"exp":${SOON}}`, `"exp":${SOON},"exp":1}`),
    canonical(entries).replace(`"exp":${SOON}}`, `"exp":${SOON},"x":1}`),
    canonical(entries).replace(id, id.toUpperCase()),
    canonical(entries).replace(id, id.slice(1)),
    canonical(entries).replace(id, `${id}0`),
    canonical(entries).replace(id, `\\u0030${id.slice(1)}`),
    canonical(entries).replace(`"cap_id":"${id}","exp":${SOON}`, `"exp":${SOON},"cap_id":"${id}"`),
    canonical(entries).replace(iat, `${iat}\\"`),
    canonical(entries).replace(iat, `${iat}é`),
    canonical(entries).replace(iat, `${iat}\n`),
    canonical(entries).replace(`"iat"`, `"iat2"`),
    canonical(entries).replace(`"typ":"${REVOCATION_LIST_TYPE}"`, `"typ":"strata.revocationz"`),
    canonical(entries).replace(`"iss":"${ISSUER}"`, `"iss":"identity@other"`),
    canonical(entries).replace(`"iss":"${ISSUER}"`, `"iss":"\\u0069dentity@unit"`),
    canonical(entries).replace(`,"revoked":[`, `,"revoked":[],"revoked":[`),
    canonical(entries) + " ",
    canonical(entries) + "}",
    canonical(entries).slice(0, -1),
    canonical(entries).slice(0, -2) + "}",
    canonical(entries).replace("}]}", "},]}"),
    canonical(entries).replace("[{", "[ {"),
    JSON.stringify({ iss: ISSUER, typ: REVOCATION_LIST_TYPE, iat, revoked: entries }),
    JSON.stringify({ typ: REVOCATION_LIST_TYPE, iss: ISSUER, iat, revoked: entries }, null, 1),
  ];
  for (const text of others) {
    const bytes = new TextEncoder().encode(text);
    assert.equal(scanList(bytes, ISSUER), undefined, text.slice(0, 200));
  }
  // and a list of another issuer is not read as this one's
  assert.equal(scanList(new TextEncoder().encode(canonical(entries)), "identity@other"), undefined);
  // every prefix of a canonical payload is refused, with no read past its end
  const whole = new TextEncoder().encode(canonical(entries.slice(0, 2)));
  for (let n = 0; n < whole.length; n++) {
    assert.equal(scanList(whole.subarray(0, n), ISSUER), undefined, `prefix of ${n} bytes`);
  }
});

Deno.test("openRevocationListNow gives a list identity signed as PackedEntries, which a RevocationSet takes as it takes objects", async () => {
  const key = await generateSigningKey();
  const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
  const known = newCapId();
  const entries: RevokedEntry[] = [{ cap_id: known, exp: SOON + 5 }, {
    cap_id: newCapId(),
    exp: SOON,
  }, { cap_id: newCapId(), exp: 5_000_000_000 }];
  const signed = await signRevocationList(key, ISSUER, entries);
  const batch = openRevocationListNow(signed, keys, ISSUER);
  assert.ok(batch instanceof PackedEntries);
  // given two sets that already hold one of the ids with an earlier expiry
  const viaPacked = new RevocationSet();
  const viaObjects = new RevocationSet();
  for (const s of [viaPacked, viaObjects]) s.add([{ cap_id: known, exp: SOON }]);
  // when one takes the packed entries and the other the same entries as objects
  const addedPacked = viaPacked.add(batch);
  const addedObjects = viaObjects.add(entries);
  // then they report the same new ids and hold the same entries
  assert.deepEqual(addedPacked, addedObjects);
  assert.deepEqual(addedPacked, entries.slice(1).map((e) => e.cap_id));
  const sorted = (s: RevocationSet) => s.entries().sort((a, b) => a.cap_id < b.cap_id ? -1 : 1);
  assert.deepEqual(sorted(viaPacked), sorted(viaObjects));
  assert.equal(viaPacked.entries().find((e) => e.cap_id === known)?.exp, SOON + 5);
});

/** `entries` as a list line's PackedEntries (each id's 32 hex digits as four big-endian words). */
function packed(entries: RevokedEntry[]): PackedEntries {
  const words = new Uint32Array(entries.length * 4);
  const exps = new Float64Array(entries.length);
  entries.forEach((e, i) => {
    for (let w = 0; w < 4; w++) {
      words[i * 4 + w] = parseInt(e.cap_id.slice(w * 8, w * 8 + 8), 16);
    }
    exps[i] = e.exp;
  });
  return new PackedEntries(words, exps);
}

Deno.test("RevocationSet.merge: packed lines through the table's growth, with repeats, count and hold what add of objects does", () => {
  // given 20,000 ids in lines of 1,000, a tenth of each line repeated from the line
  // before with a later expiry, and a set with no room reserved (it grows mid-line)
  const ids = Array.from({ length: 20_000 }, newCapId);
  const lines: RevokedEntry[][] = [];
  for (let i = 0; i < ids.length; i += 1000) {
    const line = ids.slice(i, i + 1000).map((cap_id, k) => ({ cap_id, exp: SOON + k }));
    if (i > 0) {
      for (let k = 0; k < 100; k++) line.push({ cap_id: ids[i - 1 - k], exp: SOON + 5000 });
    }
    lines.push(line);
  }
  const viaMerge = new RevocationSet();
  const viaAdd = new RevocationSet();
  for (const line of lines) {
    // when one set merges each line packed, with and without asking for the ids,
    // and the other adds it as objects
    const added = viaAdd.add(line);
    const ids: string[] = [];
    const counted = lines.indexOf(line) % 2 === 0
      ? viaMerge.merge(packed(line), ids)
      : viaMerge.merge(packed(line));
    // then the counts agree, and the ids asked for are the new ones in order
    assert.equal(counted, added.length);
    if (ids.length > 0) assert.deepEqual(ids, added);
    assert.equal(added.length, 1000);
  }
  // and both hold the same entries, each with its latest expiry
  const sorted = (s: RevocationSet) => s.entries().sort((a, b) => a.cap_id < b.cap_id ? -1 : 1);
  assert.equal(viaMerge.size, 20_000);
  assert.deepEqual(sorted(viaMerge), sorted(viaAdd));
  assert.equal(viaMerge.entries().find((e) => e.cap_id === ids[999])?.exp, SOON + 5000);
  assert.ok(!viaMerge.has(newCapId()));
  // and merging a line again adds nothing
  assert.equal(viaMerge.merge(packed(lines[3])), 0);
  // and a packed entry that expires before all others goes at the next prune
  const early = newCapId();
  assert.equal(viaMerge.merge(packed([{ cap_id: early, exp: 100 }])), 1);
  viaMerge.prune(200_000);
  assert.ok(!viaMerge.has(early));
  assert.equal(viaMerge.size, 20_000);
});

/** What JSON.parse and a strict reading of `revoked_packed` make of a packed payload, or "refused". */
function parsedPacked(payload: Uint8Array): RevokedEntry[] | "refused" {
  try {
    const p = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
    if (p?.typ !== REVOCATION_LIST_TYPE || p.iss !== ISSUER || p.revoked !== undefined) {
      return "refused";
    }
    const text = p.revoked_packed;
    if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
      return "refused";
    }
    const raw = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
    // one spelling only: the text is the bytes' own encoding
    if (bytes.toBase64({ alphabet: "base64url", omitPadding: true }) !== text) return "refused";
    if (bytes.length % 20 !== 0) return "refused";
    const view = new DataView(bytes.buffer);
    return Array.from({ length: bytes.length / 20 }, (_, i) => ({
      cap_id: bytes.subarray(i * 20, i * 20 + 16).toHex(),
      exp: view.getUint32(i * 20 + 16),
    }));
  } catch {
    return "refused";
  }
}

Deno.test("revoked_packed: identity's packed lines round-trip, are read without JSON, and refuse every other spelling as a strict reading does", async () => {
  const key = await generateSigningKey();
  const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
  const entries: RevokedEntry[] = [
    { cap_id: newCapId(), exp: SOON },
    { cap_id: "0".repeat(32), exp: 0 },
    { cap_id: "f".repeat(32), exp: 0xffffffff },
    { cap_id: newCapId(), exp: 1 },
  ];
  // given lists identity signs packed: some entries, none, one, 1,000
  const many = Array.from({ length: 1000 }, (_, i) => ({ cap_id: newCapId(), exp: SOON + i }));
  for (const list of [entries, [], [entries[0]], many]) {
    const signed = signRevocationListNow(key, ISSUER, list, true);
    // then the payload holds them packed, not as objects
    const payload = JSON.parse(new TextDecoder().decode(
      Uint8Array.fromBase64(signed.split(".")[2], { alphabet: "base64url" }).subarray(0, -64),
    ));
    assert.equal(typeof payload.revoked_packed, "string");
    assert.equal(payload.revoked, undefined);
    // and they open to the same entries, read from the bytes, and identity reads its own back
    const opened = openRevocationListNow(signed, keys, ISSUER);
    assert.ok(opened instanceof PackedEntries);
    assert.deepEqual(opened.toArray(), list);
    assert.deepEqual(ownListEntries(signed), list);
    assert.deepEqual(await openRevocationList(signed, keys, ISSUER), list);
  }
  // 1,000 entries packed are less than half the characters of the same as objects
  const asObjects = signRevocationListNow(key, ISSUER, many).length;
  const packedLength = signRevocationListNow(key, ISSUER, many, true).length;
  assert.ok(packedLength < asObjects / 2, `${packedLength} against ${asObjects}`);
  // expiries out of the 32-bit range are packed as the set holds them
  assert.deepEqual(
    unpackEntries(packEntries([{ cap_id: entries[0].cap_id, exp: -5 }, {
      cap_id: entries[0].cap_id,
      exp: 2 ** 40,
    }]))!.toArray().map((e) => e.exp),
    [0, 0xffffffff],
  );
  // an id that is not 32 hex digits cannot be packed: such a list is signed as objects
  assert.throws(() => packEntries([{ cap_id: "nothex", exp: 1 }]), /cannot pack/);
  const odd = signRevocationListNow(key, ISSUER, [{ cap_id: "nothex", exp: 1 }], true);
  assert.ok(ownListEntries(odd).length === 1);

  // given payloads around the packed form: each is read from its bytes to what a strict
  // reading gives, or left to JSON.parse (undefined), which then judges it the same way
  const iat = new Date().toISOString();
  const text = packEntries(entries);
  const canonical = (packed: unknown) =>
    JSON.stringify({ typ: REVOCATION_LIST_TYPE, iss: ISSUER, iat, revoked_packed: packed });
  const variants = [
    canonical(text),
    canonical(""),
    canonical(text.slice(0, -1)), // not whole entries
    canonical(text + "A"), // a fourth of a byte
    canonical(text.slice(0, -27)), // one entry fewer: still whole entries
    canonical(text.slice(0, -2) + "B" + text.at(-1)), // another byte
    canonical(text.slice(0, -1) + String.fromCharCode(text.charCodeAt(text.length - 1) + 1)),
    canonical(text + "="),
    canonical(text.replace(/.{20}/, (m) => m + " ")),
    canonical(text.replace(/.{20}/, (m) => m + "+")),
    canonical(text.replace(/.{20}/, (m) => m + "/")),
    canonical(text.replace(/.{20}/, (m) => m + "\\")),
    canonical(text).replace(text.slice(0, 1), `\\u00${text.charCodeAt(0).toString(16)}`),
    canonical(text).replace(`"${text}"`, `"${text}","x":1`),
    canonical(text).replace(`"${text}"`, `["${text}"]`),
    canonical(text).replace(`"${text}"`, `1`),
    canonical(text).replace(`"revoked_packed"`, `"revoked":[],"revoked_packed"`),
    canonical(text).replace(
      `"revoked_packed":"${text}"`,
      `"revoked_packed":"${text}","revoked":[]`,
    ),
    canonical(text).replace(`"revoked_packed"`, `"revoked_packedx"`),
    canonical(text).replace(`"revoked_packed"`, `"revoked_Packed"`),
    canonical(text).replace(`"revoked_packed":`, `"revoked_packed" :`),
    canonical(text).replace(`"iss":"${ISSUER}"`, `"iss":"identity@other"`),
    canonical(text) + " ",
    canonical(text).slice(0, -1),
    canonical(text).slice(0, -2) + "}",
    canonical(text).replace(text, text.slice(0, 40) + "\u00e9" + text.slice(40)),
    canonical(text).replace(text, text.slice(0, 40) + "é" + text.slice(40)),
    canonical(text).replace(text, text.slice(0, 40) + "\u0080" + text.slice(40)),
  ];
  let read = 0;
  for (const v of variants) {
    const bytes = new TextEncoder().encode(v);
    const model = parsedPacked(bytes);
    const scanned = scanList(bytes, ISSUER);
    if (scanned !== undefined) {
      read++;
      assert.deepEqual(scanned.toArray(), model, v.slice(0, 200));
    }
    // and, signed as JSON (when it is JSON), the list opens to what the strict reading gives
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      continue;
    }
    const signed = signV4Public(key, parsed);
    const again = parsedPacked(new TextEncoder().encode(JSON.stringify(parsed)));
    if (again === "refused") {
      assert.throws(() => openRevocationListNow(signed, keys, ISSUER), /./, v.slice(0, 200));
    } else {
      assert.deepEqual([...openRevocationListNow(signed, keys, ISSUER) as PackedEntries], again);
    }
  }
  // the canonical ones are read from their bytes
  assert.ok(read >= 3, `read ${read}`);
  // every prefix of a packed payload is refused, with no read past its end
  const whole = new TextEncoder().encode(canonical(packEntries(entries.slice(0, 2))));
  for (let n = 0; n < whole.length; n++) {
    assert.equal(scanList(whole.subarray(0, n), ISSUER), undefined, `prefix of ${n} bytes`);
  }
});

Deno.test("PackedEntries.sortedByExpiry: the order of a stable sort by expiry, whether counted per second or compared", () => {
  // given entries whose expiries fall within a day (counted) and spread over years (compared),
  // with many alike, and a set's packed form of the same
  let seed = 11;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
  for (const spread of [1, 50, 86_000, 3e7, 4e9]) {
    for (const n of [0, 1, 2, 999, 5000]) {
      const entries = Array.from({ length: n }, () => ({
        cap_id: newCapId(),
        exp: SOON + rand(spread),
      }));
      const packed = PackedEntries.of(entries)!;
      // when sorted
      const sorted = packed.sortedByExpiry().toArray();
      // then as Array.prototype.sort (stable) orders the objects
      assert.deepEqual(sorted, [...entries].sort((a, b) => a.exp - b.exp), `${spread}, ${n}`);
    }
  }
  // an id in any other form is not packed
  assert.equal(PackedEntries.of([{ cap_id: "A".repeat(32), exp: SOON }]), undefined);
});

Deno.test("RevocationSet.packed: the entries in entries()'s order; none when an id in another form is held", () => {
  const set = new RevocationSet();
  set.add(Array.from({ length: 3000 }, (_, i) => ({ cap_id: newCapId(), exp: SOON + i })));
  assert.deepEqual(set.packed()!.toArray(), set.entries());
  set.add([{ cap_id: "not-hex", exp: SOON }]);
  assert.equal(set.packed(), undefined);
});

Deno.test("signRevocationListNow: packed entries sign the same payload as their objects", async () => {
  // given 1,000 entries as objects and as packed
  const key = await generateSigningKey();
  const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
  const entries = Array.from({ length: 1000 }, (_, i) => ({ cap_id: newCapId(), exp: SOON + i }));
  /** The payload's members but its time of signing. */
  const payload = (token: string) => {
    const body = Uint8Array.fromBase64(token.split(".")[2], { alphabet: "base64url" });
    const { iat: _, ...rest } = JSON.parse(new TextDecoder().decode(body.subarray(0, -64)));
    return rest;
  };
  for (const packed of [true, false]) {
    // when each is signed, in either form
    const a = signRevocationListNow(key, ISSUER, entries, packed);
    const b = signRevocationListNow(key, ISSUER, PackedEntries.of(entries)!, packed);
    // then the payloads are the same, and open to the entries
    assert.deepEqual(payload(b), payload(a));
    assert.ok(packed === ("revoked_packed" in payload(a)));
    assert.deepEqual(await openRevocationList(b, keys, ISSUER), entries);
  }
});
