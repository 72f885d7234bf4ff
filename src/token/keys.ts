/**
 * Ed25519 keys for PASETO v4.public: generation, PASERK serialisation
 * (k4.secret, k4.public) and key ids (k4.pid).
 *
 * Signing and verification use node:crypto's Ed25519 (Deno's native code,
 * synchronous: 15 µs a signature and 31 µs a verification here, against 45
 * and 59 µs for WebCrypto, which also ran on the event loop's thread).
 * node:crypto is loaded when the first key is made, not with this module: a
 * program that calls {@link verifyWithWebCrypto} first (registry and
 * supervisor, which judge few tokens) verifies with WebCrypto instead and
 * never loads Deno's Node layer, 2.5 MB of memory or more per process. The
 * public key is re-derived from the seed whenever a secret is loaded, so a
 * corrupted key file is caught before it signs anything. The tests check
 * both directions against WebCrypto, @noble/ed25519 and paseto-ts.
 * @module
 */

import { BLAKE2b } from "@stablelib/blake2b";

/** node:crypto, loaded by the first key made (see the module's comment). */
let nodeCrypto: Promise<typeof import("node:crypto")> | undefined;
function loadNodeCrypto(): Promise<typeof import("node:crypto")> {
  return nodeCrypto ??= import("node:crypto");
}

/** Whether keys imported from now on verify with WebCrypto (see {@link verifyWithWebCrypto}). */
let webCryptoVerify = false;

/**
 * Makes the verification keys imported from now on verify with WebCrypto
 * (asynchronously) instead of node:crypto, so this program does not load
 * Deno's Node layer for it. For programs that verify few tokens.
 */
export function verifyWithWebCrypto(): void {
  webCryptoVerify = true;
}

const encoder = new TextEncoder();

/** Encodes bytes as unpadded base64url. */
export function b64url(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/**
 * Decodes unpadded base64url, refusing padding, other alphabets, whitespace
 * and non-canonical encodings (so one token has exactly one spelling).
 * Returns undefined when the text is not canonical base64url.
 */
export function fromB64url(text: string): Uint8Array | undefined {
  const tail = text.length % 4;
  if (tail === 1) return undefined;
  // The one other spelling of the same bytes sets bits the last character
  // carries past them (4 bits after 2 characters, 2 after 3): canonical means
  // they are zero. Told from the character, without encoding the bytes again.
  if (tail !== 0 && (B64URL.indexOf(text[text.length - 1]) & (tail === 2 ? 0xf : 0x3)) !== 0) {
    return undefined;
  }
  let bytes: Uint8Array;
  try {
    // Throws on any character outside the base64url alphabet but two: ASCII
    // whitespace, which it skips, and "=" padding at the end.
    bytes = Uint8Array.fromBase64(text, { alphabet: "base64url" });
  } catch {
    return undefined;
  }
  // Every character carried 6 bits only if none was skipped or padding: then
  // and only then the bytes are 3/4 of the characters. Checked natively, not
  // by a pattern over the text (14 ms of the 8.4 MB list file a service reads
  // at start with 100,000 revocations).
  return bytes.length === Math.floor(text.length * 3 / 4) ? bytes : undefined;
}

/** The base64url alphabet, each character at its value. */
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** A signing key with its public half and id. */
export interface SigningKey {
  /** PASERK key id, "k4.pid.…". */
  kid: string;
  /** The 32-byte Ed25519 seed. */
  seed: Uint8Array;
  /** The 32-byte public key. */
  publicKey: Uint8Array;
  /** Signs a message (synchronously, node:crypto's Ed25519). */
  sign(message: Uint8Array): Uint8Array;
}

/** A public key ready to verify, with its id. */
export interface VerifyKey {
  kid: string;
  publicKey: Uint8Array;
  /**
   * Whether `signature` is this key's over `message`: at once with
   * node:crypto, a promise with WebCrypto.
   */
  check(message: Uint8Array, signature: Uint8Array): boolean | Promise<boolean>;
  /** The only issuer tokens signed by this key may name (cluster mode: from its endorsement). */
  issuer?: string;
}

/** The PASERK of a public key: "k4.public." + base64url(pk). */
export function publicPaserk(publicKey: Uint8Array): string {
  return "k4.public." + b64url(publicKey);
}

/** The PASERK of a secret key: "k4.secret." + base64url(seed || pk). */
export function secretPaserk(key: SigningKey): string {
  const both = new Uint8Array(64);
  both.set(key.seed, 0);
  both.set(key.publicKey, 32);
  return "k4.secret." + b64url(both);
}

/** The PASERK key id of a public key (k4.pid: BLAKE2b-264 of its PASERK). */
export function keyId(publicKey: Uint8Array): string {
  const header = "k4.pid.";
  const h = new BLAKE2b(33);
  h.update(encoder.encode(header + publicPaserk(publicKey)));
  return header + b64url(h.digest());
}

/** Imports a raw 32-byte public key for verification. */
export async function importVerifyKey(
  publicKey: Uint8Array,
  options: { webCrypto?: boolean } = {},
): Promise<VerifyKey> {
  if (publicKey.length !== 32) throw new Error("an Ed25519 public key is 32 bytes");
  const kid = keyId(publicKey);
  if (options.webCrypto ?? webCryptoVerify) {
    const key = await crypto.subtle.importKey(
      "raw",
      publicKey.slice(),
      { name: "Ed25519" },
      false,
      [
        "verify",
      ],
    );
    return {
      kid,
      publicKey,
      check: (message, signature) =>
        crypto.subtle.verify("Ed25519", key, signature.slice(), message.slice()),
    };
  }
  const { createPublicKey, verify } = await loadNodeCrypto();
  const key = createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: b64url(publicKey) },
    format: "jwk",
  });
  return { kid, publicKey, check: (message, signature) => verify(null, message, key, signature) };
}

/** The DER prefix of a PKCS#8 Ed25519 private key, before its 32-byte seed (RFC 8410). */
const PKCS8_ED25519_PREFIX = new Uint8Array([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
]);

/** Generates a fresh Ed25519 signing key. */
export async function generateSigningKey(): Promise<SigningKey> {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  return await signingKeyFromSeed(seed);
}

/** Builds a signing key from its 32-byte seed (the public key is derived from it). */
export async function signingKeyFromSeed(seed: Uint8Array): Promise<SigningKey> {
  if (seed.length !== 32) throw new Error("an Ed25519 seed is 32 bytes");
  const { createPrivateKey, createPublicKey, sign } = await loadNodeCrypto();
  // A PKCS#8 Ed25519 key is a fixed 16-byte prefix and the seed (RFC 8410).
  const der = new Uint8Array(48);
  der.set(PKCS8_ED25519_PREFIX, 0);
  der.set(seed, 16);
  const { Buffer } = await import("node:buffer");
  const privateKey = createPrivateKey({ key: Buffer.from(der), format: "der", type: "pkcs8" });
  const x = createPublicKey(privateKey).export({ format: "jwk" }).x!;
  const publicKey = fromB64url(x)!;
  return {
    kid: keyId(publicKey),
    seed,
    publicKey,
    sign: (message) => sign(null, message, privateKey),
  };
}

/**
 * Parses a "k4.secret." PASERK. Throws when it is malformed or when its
 * public half does not match the one derived from the seed.
 */
export async function parseSecretPaserk(paserk: string): Promise<SigningKey> {
  if (!paserk.startsWith("k4.secret.")) throw new Error('not a "k4.secret." key');
  const both = fromB64url(paserk.slice("k4.secret.".length));
  if (!both || both.length !== 64) throw new Error("k4.secret key data must be 64 bytes");
  const key = await signingKeyFromSeed(both.slice(0, 32));
  const stored = both.subarray(32);
  if (!key.publicKey.every((b, i) => b === stored[i])) {
    throw new Error("k4.secret key is corrupt: its public half does not match its seed");
  }
  return key;
}

/** Parses a "k4.public." PASERK into a verification key. */
export async function parsePublicPaserk(paserk: string): Promise<VerifyKey> {
  if (!paserk.startsWith("k4.public.")) throw new Error('not a "k4.public." key');
  const raw = fromB64url(paserk.slice("k4.public.".length));
  if (!raw || raw.length !== 32) throw new Error("k4.public key data must be 32 bytes");
  return await importVerifyKey(raw);
}
