/**
 * Unit tests for src/token/keys.ts: strict base64url, Ed25519 keys, PASERK
 * serialisation and key ids, checked against published test vectors.
 */

import assert from "node:assert/strict";
import {
  b64url,
  fromB64url,
  generateSigningKey,
  importVerifyKey,
  keyId,
  parsePublicPaserk,
  parseSecretPaserk,
  publicPaserk,
  secretPaserk,
  signingKeyFromSeed,
} from "../../src/token/keys.ts";

function hex(text: string): Uint8Array {
  return Uint8Array.fromHex(text);
}

// PASERK v4 test vectors (seed → k4.secret, k4.public, k4.pid), as in the PASERK spec's
// test-vectors and the libraries that implement it.
const SEED = "707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e90";
const SECRET =
  "k4.secret.cHFyc3R1dnd4eXp7fH1-f4CBgoOEhYaHiImKi4yNjpBg_jdXGl1ufTCxUVTOSp-5LHDIcISPTM3xYmWICX9z9w";
const PUBLIC = "k4.public.YP43Vxpdbn0wsVFUzkqfuSxwyHCEj0zN8WJliAl_c_c";
const PID = "k4.pid.935bxbO7t_1a48JzJTePcXWiFmc791-cNw4pot2V59Oo";

Deno.test("b64url/fromB64url: round-trip every length of bytes, unpadded", () => {
  for (let n = 0; n < 40; n++) {
    // given n random bytes
    const bytes = crypto.getRandomValues(new Uint8Array(n));
    // when encoded and decoded
    const text = b64url(bytes);
    // then the text is unpadded base64url and decodes back
    assert.match(text, /^[A-Za-z0-9_-]*$/);
    assert.deepEqual(fromB64url(text), bytes);
  }
});

Deno.test("fromB64url: refuses padding, the standard alphabet, whitespace and bad lengths", () => {
  const refused = ["AA==", "AAA=", "a+b/", "ab/c", "AA AA", "AAAA\n", "A", "AAAAA", "AA.A"];
  // Whitespace and padding the decoder itself would skip or accept, at every place.
  refused.push("AAAA AAA", "AAAAAA==", "AA=A", "\tAAAAAA", "AAAA\fAA", "AAA\rAAAA", " AA", "AAé");
  for (const text of refused) {
    assert.equal(fromB64url(text), undefined, JSON.stringify(text));
  }
});

Deno.test("fromB64url: refuses non-canonical encodings (non-zero padding bits)", () => {
  // given "AA" (one zero byte) and "AB", which decodes to the same byte with a stray bit
  assert.deepEqual(fromB64url("AA"), new Uint8Array([0]));
  // then only the canonical spelling is accepted
  assert.equal(fromB64url("AB"), undefined);
  assert.deepEqual(fromB64url("AAA"), new Uint8Array([0, 0]));
  assert.equal(fromB64url("AAB"), undefined);
  assert.deepEqual(fromB64url(""), new Uint8Array(0));
});

Deno.test("fromB64url: accepts exactly the texts that encode back to themselves (every last character)", () => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (const start of ["", "QUJD", "_-_-"]) {
    for (const body of ["A", "zz", "Q", "-_"]) {
      for (const last of alphabet) {
        // given a text whose last character leaves 4 or 2 bits past its bytes
        const text = start + body + last;
        const bytes = Uint8Array.fromBase64(text, { alphabet: "base64url" });
        // then it is accepted exactly when it is the canonical spelling of its bytes
        const canonical = b64url(bytes) === text;
        assert.deepEqual(fromB64url(text), canonical ? bytes : undefined, text);
      }
    }
  }
});

Deno.test("signingKeyFromSeed: derives the RFC 8032 public key", async () => {
  // given RFC 8032 test 1's secret key
  const key = await signingKeyFromSeed(
    hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"),
  );
  // then the public key is the one the RFC lists
  assert.deepEqual(
    key.publicKey,
    hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
  );
});

Deno.test("PASERK: secret, public and pid of a known seed match the test vectors", async () => {
  // given the vector's seed
  const key = await signingKeyFromSeed(hex(SEED));
  // then its PASERKs and key id are exactly the vector's
  assert.equal(secretPaserk(key), SECRET);
  assert.equal(publicPaserk(key.publicKey), PUBLIC);
  assert.equal(keyId(key.publicKey), PID);
  assert.equal(key.kid, PID);
});

Deno.test("keyId: k4.pid of the all-zero public key matches the PASERK test vector", () => {
  assert.equal(keyId(new Uint8Array(32)), "k4.pid.S_XQmeEwHbbvRmiyfXfHYpLGjXGzjTRSDoT1YtTakWFE");
});

Deno.test("keyId: a k4.pid string of the right length, stable for a key, distinct across keys", async () => {
  // given two fresh keys
  const a = await generateSigningKey();
  const b = await generateSigningKey();
  // then each id is "k4.pid." + 44 base64url characters (33 bytes)
  for (const k of [a, b]) {
    assert.match(k.kid, /^k4\.pid\.[A-Za-z0-9_-]{44}$/);
    assert.equal(k.kid.length, 51);
    assert.equal(fromB64url(k.kid.slice(7))?.length, 33);
    // and computing it again gives the same id
    assert.equal(keyId(k.publicKey), k.kid);
    assert.equal(keyId(k.publicKey.slice()), k.kid);
  }
  assert.notEqual(a.kid, b.kid);
});

Deno.test("generateSigningKey: 32-byte seed and public key, and a fresh seed each time", async () => {
  const a = await generateSigningKey();
  const b = await generateSigningKey();
  assert.equal(a.seed.length, 32);
  assert.equal(a.publicKey.length, 32);
  assert.notDeepEqual(a.seed, b.seed);
  // the public half is the one derived from the seed
  assert.deepEqual((await signingKeyFromSeed(a.seed)).publicKey, a.publicKey);
});

Deno.test("signingKeyFromSeed: refuses seeds that are not 32 bytes", async () => {
  await assert.rejects(signingKeyFromSeed(new Uint8Array(31)), /32 bytes/);
  await assert.rejects(signingKeyFromSeed(new Uint8Array(64)), /32 bytes/);
});

Deno.test("parseSecretPaserk: round-trips a key and refuses malformed or corrupt ones", async () => {
  // given a key and its k4.secret
  const key = await generateSigningKey();
  const paserk = secretPaserk(key);
  // when parsed back, then it is the same key
  const back = await parseSecretPaserk(paserk);
  assert.equal(back.kid, key.kid);
  assert.deepEqual(back.seed, key.seed);
  // and a k4.secret whose public half was altered is refused as corrupt
  const both = fromB64url(paserk.slice("k4.secret.".length))!;
  both[40] ^= 1;
  await assert.rejects(parseSecretPaserk("k4.secret." + b64url(both)), /corrupt/);
  // as are a wrong prefix, a short key and bad base64url
  await assert.rejects(parseSecretPaserk(paserk.replace("k4.secret.", "k3.secret.")), /k4\.secret/);
  await assert.rejects(parseSecretPaserk("k4.secret." + b64url(both.subarray(0, 32))), /64 bytes/);
  await assert.rejects(parseSecretPaserk(paserk + "="), /64 bytes/);
});

Deno.test("parsePublicPaserk: round-trips a public key and refuses malformed ones", async () => {
  // given a key's k4.public
  const key = await generateSigningKey();
  const vk = await parsePublicPaserk(publicPaserk(key.publicKey));
  // then it verifies with the same id and bytes
  assert.equal(vk.kid, key.kid);
  assert.deepEqual(vk.publicKey, key.publicKey);
  await assert.rejects(parsePublicPaserk(secretPaserk(key)), /k4\.public/);
  await assert.rejects(parsePublicPaserk("k4.public.AAAA"), /32 bytes/);
});

Deno.test("importVerifyKey: verifies what the signing key signs, and only that", async () => {
  // given a signing key and its imported verification key
  const key = await generateSigningKey();
  const vk = await importVerifyKey(key.publicKey);
  const msg = new TextEncoder().encode("hello");
  const sig = key.sign(msg);
  // then the signature verifies, and not over another message
  assert.equal(vk.check(msg, sig), true);
  assert.equal(vk.check(new TextEncoder().encode("hellp"), sig), false);
  // and WebCrypto agrees in both directions (keys move as raw public bytes and JWK)
  const web = await crypto.subtle.importKey(
    "raw",
    vk.publicKey as Uint8Array<ArrayBuffer>,
    {
      name: "Ed25519",
    },
    false,
    ["verify"],
  );
  assert.equal(await crypto.subtle.verify("Ed25519", web, new Uint8Array(sig), msg), true);
  const webPriv = await crypto.subtle.importKey(
    "jwk",
    {
      kty: "OKP",
      crv: "Ed25519",
      d: key.seed.toBase64({ alphabet: "base64url", omitPadding: true }),
      x: key.publicKey.toBase64({ alphabet: "base64url", omitPadding: true }),
    },
    { name: "Ed25519" },
    false,
    ["sign"],
  );
  const webSig = new Uint8Array(await crypto.subtle.sign("Ed25519", webPriv, msg));
  assert.equal(vk.check(msg, webSig), true);
  await assert.rejects(importVerifyKey(new Uint8Array(33)), /32 bytes/);
  // and a key imported for WebCrypto (registry, supervisor) checks the same, with a promise
  const wk = await importVerifyKey(key.publicKey, { webCrypto: true });
  assert.equal(wk.kid, vk.kid);
  const checked = wk.check(msg, sig);
  assert.ok(checked instanceof Promise);
  assert.equal(await checked, true);
  assert.equal(await wk.check(new TextEncoder().encode("hellp"), sig), false);
  assert.equal(await wk.check(msg, webSig), true);
});
