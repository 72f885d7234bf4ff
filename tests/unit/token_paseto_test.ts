/**
 * Unit tests for src/token/paseto.ts: v4.public sign and verify, strict
 * parsing, and interoperability with paseto-ts and @noble/ed25519 in both
 * directions.
 */

import assert from "node:assert/strict";
// paseto-ts has an import cycle (uint8array <-> magic): loading "magic"
// first initialises the cycle in the order it needs.
import "paseto-ts/lib/magic";
import {
  MAX_TOKEN_LENGTH,
  openV4Public,
  parseV4Public,
  peekKeyId,
  signV4Public,
  TokenError,
  type TokenFailure,
  verifyV4Public,
} from "../../src/token/paseto.ts";
import { PAE } from "paseto-ts/lib/pae";
import { sign as pasetoSign, verify as pasetoVerify } from "paseto-ts/v4";
import { verifyAsync } from "@noble/ed25519";
import {
  b64url,
  fromB64url,
  generateSigningKey,
  importVerifyKey,
  publicPaserk,
  secretPaserk,
  type SigningKey,
  type VerifyKey,
} from "../../src/token/keys.ts";
import { makeClaims } from "./support.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Fixture {
  key: SigningKey;
  vk: VerifyKey;
  other: SigningKey;
  otherVk: VerifyKey;
}

async function fixture(): Promise<Fixture> {
  const key = await generateSigningKey();
  const other = await generateSigningKey();
  return {
    key,
    vk: await importVerifyKey(key.publicKey),
    other,
    otherVk: await importVerifyKey(other.publicKey),
  };
}

/** A lookup that knows exactly `keys`. */
function lookupOf(...keys: VerifyKey[]) {
  const m = new Map(keys.map((k) => [k.kid, k]));
  return (kid: string) => m.get(kid);
}

/** The parts of a token: body bytes (message || signature) and footer bytes. */
function split(token: string): { body: Uint8Array; footer: Uint8Array } {
  const [v, purpose, body, footer] = token.split(".");
  assert.equal(`${v}.${purpose}`, "v4.public");
  return { body: fromB64url(body)!, footer: fromB64url(footer)! };
}

function join(body: Uint8Array, footer: Uint8Array): string {
  return `v4.public.${b64url(body)}.${b64url(footer)}`;
}

/** Verifies `token`, which must fail with `reason`; returns the error. */
async function refusedWith(
  token: string,
  lookup: (kid: string) => VerifyKey | undefined,
  reason: TokenFailure,
): Promise<TokenError> {
  try {
    await verifyV4Public(token, lookup);
  } catch (err) {
    assert.ok(err instanceof TokenError, `expected TokenError, got ${err}`);
    assert.equal(err.reason, reason, err.message);
    return err;
  }
  assert.fail(`token was accepted; expected ${reason}`);
}

Deno.test("signV4Public → verifyV4Public: the payload comes back unchanged", async () => {
  // given a key and a capability payload
  const f = await fixture();
  const claims = makeClaims({ sub: "ünïcode ✓" });
  // when signed and verified
  const token = await signV4Public(f.key, claims);
  const payload = await verifyV4Public(token, lookupOf(f.vk));
  // then the payload is the claims, and the footer names the key
  assert.deepEqual(payload, claims);
  assert.ok(token.startsWith("v4.public."));
  assert.deepEqual(JSON.parse(decoder.decode(split(token).footer)), { kid: f.key.kid });
  assert.equal(peekKeyId(token), f.key.kid);
});

Deno.test("verifyV4Public: a tampered payload byte is a bad signature", async () => {
  // given a token whose message has one byte changed
  const f = await fixture();
  const token = await signV4Public(f.key, { a: "aaaaaaaa" });
  const { body, footer } = split(token);
  body[6] ^= 0x01; // inside the "aaaaaaaa" string: still valid JSON
  // when verified, then the signature fails
  await refusedWith(join(body, footer), lookupOf(f.vk), "bad_signature");
});

Deno.test("verifyV4Public: a tampered signature byte is a bad signature", async () => {
  const f = await fixture();
  const { body, footer } = split(await signV4Public(f.key, { a: 1 }));
  body[body.length - 1] ^= 0x80;
  await refusedWith(join(body, footer), lookupOf(f.vk), "bad_signature");
});

Deno.test("verifyV4Public: a tampered footer is refused (signed: bad_signature; unreadable: malformed)", async () => {
  // given a token, then footers changed in several ways
  const f = await fixture();
  const { body } = split(await signV4Public(f.key, { a: 1 }));
  const withExtra = encoder.encode(JSON.stringify({ kid: f.key.kid, x: 1 }));
  const notJson = encoder.encode("kid=" + f.key.kid);
  const noKid = encoder.encode(JSON.stringify({ key: f.key.kid }));
  const notObject = encoder.encode(JSON.stringify(f.key.kid));
  // then an extra field (same kid) breaks the signature, and unreadable footers are malformed
  await refusedWith(join(body, withExtra), lookupOf(f.vk), "bad_signature");
  await refusedWith(join(body, notJson), lookupOf(f.vk), "malformed");
  await refusedWith(join(body, noKid), lookupOf(f.vk), "malformed");
  await refusedWith(join(body, notObject), lookupOf(f.vk), "malformed");
  // and a footer too long to be a key id is malformed
  const long = encoder.encode(JSON.stringify({ kid: "k".repeat(600) }));
  await refusedWith(join(body, long), lookupOf(f.vk), "malformed");
});

Deno.test("verifyV4Public: footers parsed before are remembered, yet still signed and checked", async () => {
  // given tokens of two keys, each verified once (their footers now remembered)
  const f = await fixture();
  const mine = await signV4Public(f.key, { a: 1 });
  const theirs = await signV4Public(f.other, { a: 1 });
  const lookup = lookupOf(f.vk, f.otherVk);
  assert.deepEqual(await verifyV4Public(mine, lookup), { a: 1 });
  assert.deepEqual(await verifyV4Public(theirs, lookup), { a: 1 });
  // then each footer keeps its own kid, and another key's footer on a body breaks the signature
  assert.equal(peekKeyId(mine), f.key.kid);
  assert.equal(peekKeyId(theirs), f.other.kid);
  await refusedWith(join(split(theirs).body, split(mine).footer), lookup, "bad_signature");
  // and an unreadable footer is refused every time, however often it is sent
  const noKid = join(split(mine).body, encoder.encode(JSON.stringify({ key: f.key.kid })));
  for (let i = 0; i < 3; i++) await refusedWith(noKid, lookup, "malformed");
  // and more distinct footers than are remembered do not stop a good token verifying
  for (let i = 0; i < 100; i++) {
    const odd = join(split(mine).body, encoder.encode(JSON.stringify({ kid: `k4.pid.${i}` })));
    await refusedWith(odd, lookup, "unknown_key");
  }
  assert.deepEqual(await verifyV4Public(mine, lookup), { a: 1 });
});

Deno.test("verifyV4Public: a token signed by a key the lookup does not know is unknown_key", async () => {
  // given a token signed by another key
  const f = await fixture();
  const token = await signV4Public(f.other, { a: 1 });
  // when verified against a lookup that only knows ours, then unknown_key
  const err = await refusedWith(token, lookupOf(f.vk), "unknown_key");
  // and the message names the key, so a dropped or foreign key can be told from a missing one
  assert.equal(err.message, `token: signed by a key this node does not know (${f.other.kid})`);
  // (a footer's kid that is not a key id is not echoed: it is the sender's text)
  const odd = join(split(token).body, encoder.encode(JSON.stringify({ kid: "k4.pid.\u001b[2J" })));
  const oddErr = await refusedWith(odd, lookupOf(f.vk), "unknown_key");
  assert.equal(
    oddErr.message,
    "token: signed by a key this node does not know (a malformed key id)",
  );
});

Deno.test("verifyV4Public: a lookup that returns the wrong key gives bad_signature", async () => {
  // given a token by "other" and a lookup that answers every kid with our key
  const f = await fixture();
  const token = await signV4Public(f.other, { a: 1 });
  // then the signature does not verify
  await refusedWith(token, () => f.vk, "bad_signature");
});

Deno.test("verifyV4Public: the lookup may be async", async () => {
  const f = await fixture();
  const token = await signV4Public(f.key, { n: 2 });
  assert.deepEqual(await verifyV4Public(token, (kid) => Promise.resolve(lookupOf(f.vk)(kid))), {
    n: 2,
  });
});

Deno.test("verifyV4Public: v2.public, v3.public and v4.local tokens are unsupported_version", async () => {
  // given a v4.public token re-labelled as other versions and purposes
  const f = await fixture();
  const rest = (await signV4Public(f.key, { a: 1 })).slice("v4.public.".length);
  for (const header of ["v2.public.", "v3.public.", "v4.local.", "v1.local."]) {
    // when verified, then the version is named as unsupported
    const err = await refusedWith(header + rest, lookupOf(f.vk), "unsupported_version");
    assert.match(err.message, new RegExp(header.slice(0, -1).replace(".", "\\.")));
  }
});

Deno.test("verifyV4Public: things that are not PASETO tokens are malformed", async () => {
  const f = await fixture();
  const token = await signV4Public(f.key, { a: 1 });
  const { body } = split(token);
  const cases = [
    "",
    "hello",
    "V4.public." + token.slice(10),
    "v4.public.", // nothing after the header
    "v4.public." + b64url(body), // no footer
    token + ".extra", // too many parts
    "v4.public." + b64url(body.subarray(0, 63)) + ".e30", // shorter than a signature
  ];
  for (const t of cases) await refusedWith(t, lookupOf(f.vk), "malformed");
});

Deno.test("verifyV4Public: padded or non-canonical base64url is refused as malformed", async () => {
  // given a token whose body length leaves padding bits (length % 3 != 0)
  const f = await fixture();
  let token = "";
  for (let pad = 0; pad < 3; pad++) {
    token = await signV4Public(f.key, { p: "x".repeat(pad) });
    if (token.split(".")[2].length % 4 !== 0) break;
  }
  const [v, p, body, footer] = token.split(".");
  assert.notEqual(body.length % 4, 0, "test setup: need a body with padding bits");
  // sanity: the original verifies
  await verifyV4Public(token, lookupOf(f.vk));
  // when "=" padding is added to the body or the footer
  const padded = `${v}.${p}.${body}${"=".repeat(4 - (body.length % 4))}.${footer}`;
  await refusedWith(padded, lookupOf(f.vk), "malformed");
  const footerPadded = `${v}.${p}.${body}.${footer}=`;
  await refusedWith(footerPadded, lookupOf(f.vk), "malformed");
  // or the last character is changed only in its unused low bits (same bytes when decoded loosely)
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const last = alphabet.indexOf(body.at(-1)!);
  const sloppy = `${v}.${p}.${body.slice(0, -1)}${alphabet[last ^ 1]}.${footer}`;
  assert.deepEqual(
    Uint8Array.fromBase64(sloppy.split(".")[2], { alphabet: "base64url" }),
    fromB64url(body),
    "test setup: the sloppy spelling decodes to the same bytes",
  );
  // then both are refused before any signature check
  await refusedWith(sloppy, lookupOf(f.vk), "malformed");
  // and standard-alphabet characters are refused too
  const std = `${v}.${p}.${body.replaceAll("-", "+").replaceAll("_", "/")}.${footer}`;
  if (std !== token) await refusedWith(std, lookupOf(f.vk), "malformed");
});

Deno.test("verifyV4Public: tokens longer than the limit are malformed before any parsing", async () => {
  // given a valid token and a limit just below its length
  const f = await fixture();
  const token = await signV4Public(f.key, { a: "x".repeat(100) });
  let asked = 0;
  const lookup = (kid: string) => {
    asked++;
    return lookupOf(f.vk)(kid);
  };
  // then it is refused at that limit and accepted at its own length
  await assert.rejects(
    verifyV4Public(token, lookup, { maxLength: token.length - 1 }),
    (e: unknown) => e instanceof TokenError && e.reason === "malformed",
  );
  assert.equal(asked, 0);
  await verifyV4Public(token, lookup, { maxLength: token.length });
  // and the default limit is MAX_TOKEN_LENGTH
  const huge = await signV4Public(f.key, { a: "x".repeat(MAX_TOKEN_LENGTH) });
  await refusedWith(huge, lookupOf(f.vk), "malformed");
});

Deno.test("verifyV4Public: a correctly signed payload that is not JSON is malformed", async () => {
  // given a message that is not JSON, signed properly over PAE
  const f = await fixture();
  const m = encoder.encode("not json at all");
  const footer = encoder.encode(JSON.stringify({ kid: f.key.kid }));
  const m2 = PAE(encoder.encode("v4.public."), m, footer, new Uint8Array(0));
  const sig = new Uint8Array(f.key.sign(m2));
  const body = new Uint8Array(m.length + 64);
  body.set(m);
  body.set(sig, m.length);
  // when verified, then the signature passes but the payload is refused
  await refusedWith(join(body, footer), lookupOf(f.vk), "malformed");
});

Deno.test("peekKeyId: the footer's kid, or undefined when unreadable", async () => {
  const f = await fixture();
  assert.equal(peekKeyId(await signV4Public(f.key, {})), f.key.kid);
  assert.equal(peekKeyId("v4.public.garbage"), undefined);
  assert.equal(peekKeyId("v2.public.x.y"), undefined);
});

Deno.test("interop: the PAE signed and verified is paseto-ts's, for messages short and long, in a reused buffer", async () => {
  // given a key that keeps what it is asked to sign, and a real key to verify
  const f = await fixture();
  const signed: Uint8Array[] = [];
  const recording: SigningKey = {
    ...f.key,
    sign: (m) => {
      signed.push(m.slice());
      return f.key.sign(m);
    },
  };
  const checked: Uint8Array[] = [];
  const checking: VerifyKey = {
    ...f.vk,
    check: (m, sig) => {
      checked.push(m.slice());
      return f.vk.check(m, sig);
    },
  };
  // payloads of 2 to 90,000 bytes (past the kept scratch buffer), non-ASCII
  // too, signed one after another so a shorter one follows a longer one
  // ("€" and U+FFFF take the most UTF-8 bytes per UTF-16 unit, 3: the
  // buffer's size for them is exact, in the kept buffer and past it)
  const payloads = [
    {},
    { a: "x".repeat(5000) },
    { b: 1 },
    { c: "é€😀".repeat(20_000) },
    {
      d: "y".repeat(300),
    },
    { e: "€".repeat(2000) },
    { f: "\uffff".repeat(30_000) },
    { g: "€" },
  ];
  for (const payload of payloads) {
    const token = signV4Public(recording, payload);
    const message = encoder.encode(JSON.stringify(payload));
    const footer = encoder.encode(JSON.stringify({ kid: f.key.kid }));
    const expected = PAE(encoder.encode("v4.public."), message, footer, new Uint8Array(0));
    // then what was signed is paseto-ts's PAE of the token's parts
    assert.deepEqual(signed.at(-1), expected);
    // and so is what verification checks, and the payload comes back whole
    assert.deepEqual(openV4Public(parseV4Public(token, 1 << 20), checking), payload);
    assert.deepEqual(checked.at(-1), expected);
    // and paseto-ts verifies the token
    assert.deepEqual(
      pasetoVerify(publicPaserk(f.key.publicKey), token, { validatePayload: false, maxDepth: 0 })
        .payload,
      payload,
    );
  }
  // and a payload with no JSON form is refused, not signed as an empty message
  assert.throws(() => signV4Public(f.key, undefined), TypeError);
});

Deno.test("interop: a token made by signV4Public verifies with paseto-ts verify", async () => {
  // given our token and our public key as a k4.public PASERK
  const f = await fixture();
  const claims = makeClaims();
  const token = await signV4Public(f.key, claims);
  // when paseto-ts verifies it
  const out = pasetoVerify(publicPaserk(f.key.publicKey), token);
  // then it sees our payload and footer
  assert.deepEqual(out.payload, claims);
  assert.deepEqual(out.footer, { kid: f.key.kid });
  // and refuses it under another key
  assert.throws(() => pasetoVerify(publicPaserk(f.other.publicKey), token));
});

Deno.test("interop: a token made by paseto-ts sign verifies with verifyV4Public", async () => {
  // given a token signed by paseto-ts with our k4.secret and a {kid} footer
  const f = await fixture();
  const claims = makeClaims();
  const token = pasetoSign(secretPaserk(f.key), claims, {
    footer: { kid: f.key.kid },
    addExp: false,
    addIat: false,
  });
  // when we verify it
  const payload = await verifyV4Public(token, lookupOf(f.vk));
  // then we get the same claims
  assert.deepEqual(payload, claims);
  // and a paseto-ts token by another key is unknown to a lookup of ours
  const foreign = pasetoSign(secretPaserk(f.other), claims, {
    footer: { kid: f.other.kid },
    addExp: false,
    addIat: false,
  });
  await refusedWith(foreign, lookupOf(f.vk), "unknown_key");
});

Deno.test("interop: our signature verifies with @noble/ed25519 over the PAE bytes", async () => {
  // given our token
  const f = await fixture();
  const token = await signV4Public(f.key, { jti: "x", n: [1, 2, 3] });
  const { body, footer } = split(token);
  const message = body.subarray(0, body.length - 64);
  const signature = body.subarray(body.length - 64);
  const m2 = PAE(encoder.encode("v4.public."), message, footer, new Uint8Array(0));
  // when noble checks the signature over PAE(h, m, f, "")
  // then it is valid, and invalid over a different footer or key
  assert.equal(await verifyAsync(signature, m2, f.key.publicKey), true);
  const m2other = PAE(
    encoder.encode("v4.public."),
    message,
    encoder.encode("{}"),
    new Uint8Array(0),
  );
  assert.equal(await verifyAsync(signature, m2other, f.key.publicKey), false);
  assert.equal(await verifyAsync(signature, m2, f.other.publicKey), false);
});

Deno.test("openV4Public with a WebCrypto key (registry, supervisor): the payload by a promise, a forgery refused", async () => {
  const f = await fixture();
  const wk = await importVerifyKey(f.key.publicKey, { webCrypto: true });
  const token = signV4Public(f.key, { sub: "x", n: 1 });
  const opened = openV4Public(parseV4Public(token), wk);
  assert.ok(opened instanceof Promise);
  assert.deepEqual(await opened, { sub: "x", n: 1 });
  // signed by another key that claims this one's id: refused
  const forged = signV4Public({ ...f.other, kid: f.key.kid }, { sub: "x", n: 1 });
  await assert.rejects(
    Promise.resolve(openV4Public(parseV4Public(forged), wk)),
    (err) => err instanceof TokenError && err.reason === "bad_signature",
  );
  // the PAE is built in a buffer the next token reuses: checks under way
  // while others are signed and opened still judge their own bytes
  const tokens = Array.from({ length: 20 }, (_, n) => signV4Public(f.key, { sub: "x", n }));
  const pending = tokens.map((t) => openV4Public(parseV4Public(t), wk));
  signV4Public(f.key, { sub: "y".repeat(3000) });
  assert.deepEqual(openV4Public(parseV4Public(forged), f.otherVk), { sub: "x", n: 1 });
  assert.deepEqual(await Promise.all(pending), tokens.map((_, n) => ({ sub: "x", n })));
  const forgeries = Array.from({ length: 5 }, () =>
    assert.rejects(
      Promise.resolve(openV4Public(parseV4Public(forged), wk)),
      (err) => err instanceof TokenError && err.reason === "bad_signature",
    ));
  signV4Public(f.key, { sub: "z" });
  await Promise.all(forgeries);
});
