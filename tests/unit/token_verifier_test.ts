/**
 * Unit tests for src/token/verifier.ts: local verification and its bounded
 * cache of verified tokens.
 */

import assert from "node:assert/strict";
import type { VerifyKey } from "../../src/token/keys.ts";
import { generateSigningKey, importVerifyKey, type SigningKey } from "../../src/token/keys.ts";
import type { KeyLookup } from "../../src/token/key_set.ts";
import { ClaimsError } from "../../src/token/claims.ts";
import { TokenError } from "../../src/token/paseto.ts";
import { TokenVerifier } from "../../src/token/verifier.ts";
import { CountingLookup, ISSUER, makeClaims, mint } from "./support.ts";

async function setup(cacheSize?: number): Promise<{
  key: SigningKey;
  vk: VerifyKey;
  lookup: CountingLookup;
  verifier: TokenVerifier;
}> {
  const key = await generateSigningKey();
  const vk = await importVerifyKey(key.publicKey);
  const lookup = new CountingLookup([vk]);
  return {
    key,
    vk,
    lookup,
    verifier: new TokenVerifier({ issuer: ISSUER, keys: lookup, cacheSize }),
  };
}

Deno.test("TokenVerifier: a first use whose key is at hand is verified without a promise", async () => {
  // given a verifier whose key lookup answers synchronously, and a fresh token
  const s = await setup();
  const token = await mint(s.key, makeClaims());
  // when it is verified for the first time
  const cap = s.verifier.verify(token);
  // then the capability comes back at once, checked and cached
  assert.ok(!(cap instanceof Promise), "no promise when the key is at hand");
  assert.equal(cap.claims.sub, "tester");
  assert.equal(s.verifier.cached, 1);
  // and a forged signature is refused at once too (a throw, not a cached answer)
  const forged = token.slice(0, 30) + (token[30] === "A" ? "B" : "A") + token.slice(31);
  assert.throws(() => s.verifier.verify(forged), TokenError);
  assert.equal(s.verifier.cached, 1);
});

Deno.test("TokenVerifier: a second verify of the same token does not ask the key lookup", async () => {
  // given a verifier and a token
  const s = await setup();
  const token = await mint(s.key, makeClaims());
  // when the token is verified twice
  const first = await s.verifier.verify(token);
  const second = s.verifier.verify(token);
  // then the key was looked up once, and the second answer is the cached capability, at once
  assert.equal(s.lookup.calls, 1);
  assert.ok(!(second instanceof Promise), "a cache hit is answered synchronously");
  assert.equal(second, first);
  assert.equal(s.verifier.cached, 1);
  assert.equal(s.verifier.issuer, ISSUER);
});

Deno.test("TokenVerifier: concurrent first uses of one token share one verification", async () => {
  // given a lookup that answers only when released
  const key = await generateSigningKey();
  const vk = await importVerifyKey(key.publicKey);
  let calls = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow: KeyLookup = {
    async get(kid) {
      calls++;
      await gate;
      return kid === vk.kid ? vk : undefined;
    },
  };
  const verifier = new TokenVerifier({ issuer: ISSUER, keys: slow });
  const token = await mint(key, makeClaims());
  // when three verifications start before the first finishes
  const a = verifier.verify(token);
  const b = verifier.verify(token);
  const c = verifier.verify(token);
  release();
  const caps = await Promise.all([a, b, c]);
  // then they share one promise and one key lookup
  assert.equal(a, b);
  assert.equal(b, c);
  assert.equal(calls, 1);
  assert.equal(caps[0], caps[2]);
});

Deno.test("TokenVerifier: the cache is bounded by cacheSize and drops the least recently used", async () => {
  // given a verifier caching at most two tokens, and three tokens
  const s = await setup(2);
  const [t1, t2, t3] = await Promise.all([1, 2, 3].map(() => mint(s.key, makeClaims())));
  await s.verifier.verify(t1);
  await s.verifier.verify(t2);
  // when t1 is used again (now the most recent) and t3 arrives
  await s.verifier.verify(t1);
  await s.verifier.verify(t3);
  // then only two are cached
  assert.equal(s.verifier.cached, 2);
  assert.equal(s.lookup.calls, 3);
  // and t1 and t3 are still hits while t2 was evicted
  await s.verifier.verify(t1);
  await s.verifier.verify(t3);
  assert.equal(s.lookup.calls, 3);
  await s.verifier.verify(t2);
  assert.equal(s.lookup.calls, 4);
  assert.equal(s.verifier.cached, 2);
});

Deno.test("TokenVerifier: clearCache forgets every verified token", async () => {
  // given a cached token
  const s = await setup();
  const token = await mint(s.key, makeClaims());
  await s.verifier.verify(token);
  // when the cache is cleared
  s.verifier.clearCache();
  // then nothing is cached and the next verify asks the lookup again
  assert.equal(s.verifier.cached, 0);
  await s.verifier.verify(token);
  assert.equal(s.lookup.calls, 2);
});

Deno.test("TokenVerifier: failures are not cached, so a key published later is picked up", async () => {
  // given a token by a key the lookup does not know yet
  const s = await setup();
  const later = await generateSigningKey();
  const token = await mint(later, makeClaims());
  // when verified, it is unknown_key
  await assert.rejects(
    async () => await s.verifier.verify(token),
    (e: unknown) => e instanceof TokenError && e.reason === "unknown_key",
  );
  assert.equal(s.verifier.cached, 0);
  // and after the key becomes known, the same token verifies
  s.lookup.add(await importVerifyKey(later.publicKey));
  const cap = await s.verifier.verify(token);
  assert.equal(cap.claims.sub, "tester");
});

Deno.test("TokenVerifier: claims are checked on first use (issuer), and a refusal is not cached", async () => {
  // given a token from another node's issuer
  const s = await setup();
  const token = await mint(s.key, makeClaims({ iss: "identity@else" }));
  // then it fails with wrong_issuer each time, with a signature check each time
  for (let i = 0; i < 2; i++) {
    await assert.rejects(
      async () => await s.verifier.verify(token),
      (e: unknown) => e instanceof ClaimsError && e.reason === "wrong_issuer",
    );
  }
  assert.equal(s.lookup.calls, 2);
  assert.equal(s.verifier.cached, 0);
});

Deno.test("TokenVerifier: an expired token still verifies (expiry is authorize's job on every use)", async () => {
  // given a token that has expired
  const s = await setup();
  const token = await mint(s.key, makeClaims({ exp: "2000-01-01T00:00:00Z" }));
  // then verify returns its capability with the expiry parsed, for authorize to refuse
  const cap = await s.verifier.verify(token);
  assert.equal(cap.expMs, Date.UTC(2000, 0, 1));
});
