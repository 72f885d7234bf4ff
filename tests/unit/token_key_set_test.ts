/**
 * Unit tests for src/token/key_set.ts: importing the published key set
 * (reloading identity.pub is tested in sources_key_set_test.ts).
 */

import assert from "node:assert/strict";
import { rfc3339 } from "../../src/token/claims.ts";
import { importKeySet, type KeySetDocument } from "../../src/token/key_set.ts";
import { generateSigningKey, publicPaserk, type SigningKey } from "../../src/token/keys.ts";

function entry(key: SigningKey, notAfter?: number) {
  return {
    kid: key.kid,
    public: publicPaserk(key.publicKey),
    created: "2030-01-01T00:00:00Z",
    ...(notAfter !== undefined ? { not_after: rfc3339(notAfter) } : {}),
  };
}

function doc(keys: ReturnType<typeof entry>[]): KeySetDocument {
  return { v: 1, issuer: "identity@unit", active: keys[0]?.kid ?? "", keys };
}

/** Writes a file by rename, as identity does, so its inode changes. */
Deno.test("importKeySet: keeps current keys and drops those past their not_after", async () => {
  // given an active key, a retired key still valid, and one whose not_after has passed
  const [active, retired, gone] = await Promise.all([1, 2, 3].map(() => generateSigningKey()));
  const now = Date.UTC(2031, 0, 1);
  const d = doc([entry(active), entry(retired, now + 60_000), entry(gone, now - 1000)]);
  // when imported at `now`
  const keys = await importKeySet(d, now);
  // then only the first two remain, usable for verification
  assert.deepEqual([...keys.keys()].sort(), [active.kid, retired.kid].sort());
  assert.deepEqual(keys.get(retired.kid)?.publicKey, retired.publicKey);
  // and at a later time the retired one is dropped too
  assert.deepEqual([...(await importKeySet(d, now + 120_000)).keys()], [active.kid]);
});

Deno.test("importKeySet: refuses a document that is not a v1 key set, or a kid that does not match", async () => {
  const [a, b] = await Promise.all([generateSigningKey(), generateSigningKey()]);
  await assert.rejects(importKeySet(null), /not a v1 key set/);
  await assert.rejects(importKeySet({ v: 2, keys: [] }), /not a v1 key set/);
  await assert.rejects(importKeySet({ v: 1, keys: {} }), /not a v1 key set/);
  await assert.rejects(importKeySet(doc([{ ...entry(a), kid: b.kid }])), /does not match/);
});
