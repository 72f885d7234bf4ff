/**
 * PASETO v4.public signing and verification on Ed25519 (node:crypto, see keys.ts).
 *
 * paseto-ts is the interoperability oracle of the tests, in both directions,
 * for the tokens and for the pre-authentication encoding (PAE). Verification is
 * strict: only "v4.public." tokens with a footer naming a known key id, in
 * canonical base64url, with a valid signature.
 * @module
 */

import { b64url, fromB64url, type SigningKey, type VerifyKey } from "./keys.ts";

const HEADER = "v4.public.";
const HEADER_BYTES = new TextEncoder().encode(HEADER);
const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The longest token accepted for verification. */
export const MAX_TOKEN_LENGTH = 8192;

/** Why a token was refused; stable strings used in errors and audit lines. */
export type TokenFailure =
  | "malformed"
  | "unsupported_version"
  | "unknown_key"
  | "unendorsed_key"
  | "bad_signature";

/** A token that failed verification, with the reason. */
export class TokenError extends Error {
  /** Machine-readable reason. */
  readonly reason: TokenFailure;
  constructor(reason: TokenFailure, message: string) {
    super(message);
    this.name = "TokenError";
    this.reason = reason;
  }
}

/** A PASERK key id (k4.pid: BLAKE2b-264, 44 base64url characters). */
const KID_RE = /^k4\.pid\.[A-Za-z0-9_-]{44}$/;

/** The footer every Strata token carries. */
export interface Footer {
  kid: string;
}

/** Where the PAE of a token's message starts: its count, the header's length and bytes, the message's length. */
const MESSAGE_AT = 8 + 8 + HEADER_BYTES.length + 8;

/** A scratch buffer larger than this is not kept (a payload that large is not a token's). */
const SCRATCH_KEPT = 64 * 1024;

/** The scratch buffer tokens are signed and checked in (grown as needed, up to SCRATCH_KEPT). */
let scratch = new Uint8Array(4096);

/** Writes `n` as PAE's 64-bit little-endian length, top bit clear. */
function le64(out: Uint8Array, at: number, n: number): void {
  const hi = Math.floor(n / 2 ** 32) & 0x7fffffff;
  out[at] = n & 0xff;
  out[at + 1] = (n >>> 8) & 0xff;
  out[at + 2] = (n >>> 16) & 0xff;
  out[at + 3] = (n >>> 24) & 0xff;
  out[at + 4] = hi & 0xff;
  out[at + 5] = (hi >>> 8) & 0xff;
  out[at + 6] = (hi >>> 16) & 0xff;
  out[at + 7] = (hi >>> 24) & 0xff;
}

/** A scratch buffer with room for a PAE of a message and footer of `bytes` together. */
function scratchOf(bytes: number): Uint8Array {
  const need = MESSAGE_AT + bytes + 16;
  if (need <= scratch.length) return scratch;
  const out = new Uint8Array(need);
  if (need <= SCRATCH_KEPT) scratch = out;
  return out;
}

/**
 * Completes PASETO's pre-authentication encoding (PAE: the count of pieces,
 * then each one's length as a 64-bit little-endian integer with the top bit
 * clear, and its bytes; here the header, message, footer and an empty
 * implicit assertion) around a message of `length` bytes already at
 * {@link MESSAGE_AT} in `out`.
 */
function paeAround(out: Uint8Array, length: number, footer: Uint8Array): Uint8Array {
  le64(out, 0, 4);
  le64(out, 8, HEADER_BYTES.length);
  out.set(HEADER_BYTES, 16);
  le64(out, MESSAGE_AT - 8, length);
  let at = MESSAGE_AT + length;
  le64(out, at, footer.length);
  out.set(footer, at + 8);
  at += 8 + footer.length;
  le64(out, at, 0);
  return out.subarray(0, at + 8);
}

/**
 * Signs `payload` as a v4.public token whose footer names the key id.
 * Synchronous: an Ed25519 signature costs less than a round trip through a
 * promise. The payload is encoded straight into its PAE, in one scratch
 * buffer that then holds the token's body too, instead of three new buffers
 * a token (message, PAE, body).
 */
export function signV4Public(key: SigningKey, payload: unknown): string {
  const json: string | undefined = JSON.stringify(payload);
  if (json === undefined) throw new TypeError("signV4Public: the payload has no JSON form");
  const f = footerOf(key);
  // UTF-8 takes at most 3 bytes per UTF-16 unit; the body needs 64 more.
  const out = scratchOf(json.length * 3 + f.bytes.length + 64);
  const { written } = encoder.encodeInto(json, out.subarray(MESSAGE_AT));
  const sig = key.sign(paeAround(out, written, f.bytes));
  // The body is the message and the signature: the signature goes where the
  // PAE's footer was.
  out.set(sig, MESSAGE_AT + written);
  return HEADER + b64url(out.subarray(MESSAGE_AT, MESSAGE_AT + written + sig.length)) + "." +
    f.text;
}

/** Each signing key's footer, encoded once: the same for every token it signs. */
const footers = new WeakMap<SigningKey, { bytes: Uint8Array; text: string }>();

function footerOf(key: SigningKey): { bytes: Uint8Array; text: string } {
  let f = footers.get(key);
  if (!f) {
    const bytes = encoder.encode(JSON.stringify({ kid: key.kid } satisfies Footer));
    f = { bytes, text: b64url(bytes) };
    footers.set(key, f);
  }
  return f;
}

/** The parts of a v4.public token that passed the syntax checks. */
export interface ParsedToken {
  message: Uint8Array;
  signature: Uint8Array;
  footerBytes: Uint8Array;
  footer: Footer;
}

function refuseVersion(token: string): never {
  const m = /^(v\d)\.(public|local)\./.exec(token);
  if (m) {
    throw new TokenError(
      "unsupported_version",
      `token: ${m[1]}.${m[2]} tokens are not accepted; Strata issues v4.public tokens`,
    );
  }
  throw new TokenError("malformed", "token: not a PASETO token (expected v4.public.…)");
}

/** Parses the syntax of a v4.public token without checking its signature. */
export function parseV4Public(token: string, maxLength = MAX_TOKEN_LENGTH): ParsedToken {
  if (token.length > maxLength) {
    throw new TokenError("malformed", `token: longer than ${maxLength} characters`);
  }
  if (!token.startsWith(HEADER)) refuseVersion(token);
  const rest = token.slice(HEADER.length);
  const dot = rest.indexOf(".");
  if (dot < 0) throw new TokenError("malformed", "token: missing footer with the key id");
  if (rest.indexOf(".", dot + 1) >= 0) throw new TokenError("malformed", "token: too many parts");
  const body = fromB64url(rest.slice(0, dot));
  if (!body) throw new TokenError("malformed", "token: invalid base64url");
  if (body.length < 64) throw new TokenError("malformed", "token: too short to hold a signature");
  const { footerBytes, footer } = parseFooter(rest.slice(dot + 1));
  return {
    message: body.subarray(0, body.length - 64),
    signature: body.subarray(body.length - 64),
    footerBytes,
    footer,
  };
}

/**
 * Footers already parsed, by their text: every token of one key has the same
 * footer, so a first use decodes only its body. Only well-formed footers are
 * kept, and at most FOOTERS of them (the set starts over when full), so odd
 * footers cannot grow it. The bytes are the footer's as decoded, which the
 * signature covers as before.
 */
const parsedFooters = new Map<string, { footerBytes: Uint8Array; footer: Footer }>();
const FOOTERS = 64;

/** A token's footer, decoded and checked (base64url, at most 512 bytes, JSON naming a kid). */
function parseFooter(text: string): { footerBytes: Uint8Array; footer: Footer } {
  const known = parsedFooters.get(text);
  if (known) return known;
  const footerBytes = fromB64url(text);
  if (!footerBytes) throw new TokenError("malformed", "token: invalid base64url");
  if (footerBytes.length > 512) throw new TokenError("malformed", "token: footer too long");
  let footer: unknown;
  try {
    footer = JSON.parse(utf8.decode(footerBytes));
  } catch {
    throw new TokenError("malformed", "token: footer is not JSON");
  }
  if (
    typeof footer !== "object" || footer === null ||
    typeof (footer as Footer).kid !== "string"
  ) {
    throw new TokenError("malformed", "token: footer has no key id (kid)");
  }
  const parsed = { footerBytes, footer: footer as Footer };
  if (parsedFooters.size >= FOOTERS) parsedFooters.clear();
  parsedFooters.set(text, parsed);
  return parsed;
}

/** Returns the key id named in a token's footer, or undefined if unreadable. */
export function peekKeyId(token: string): string | undefined {
  try {
    return parseV4Public(token).footer.kid;
  } catch {
    return undefined;
  }
}

/** Options for {@link verifyV4Public}. */
export interface VerifyOptions {
  /** The longest token accepted; defaults to {@link MAX_TOKEN_LENGTH}. */
  maxLength?: number;
}

/**
 * Verifies a v4.public token and returns its decoded payload.
 * `lookup` maps the footer's key id to a verification key.
 */
export async function verifyV4Public(
  token: string,
  lookup: (kid: string) => VerifyKey | undefined | Promise<VerifyKey | undefined>,
  options: VerifyOptions = {},
): Promise<unknown> {
  const p = parseV4Public(token, options.maxLength);
  return openV4Public(p, await lookup(p.footer.kid));
}

/**
 * Checks a parsed token's signature with `key` (the one its footer names, or
 * undefined if unknown) and returns its decoded payload; synchronous with a
 * node:crypto key, so a caller whose key is at hand verifies without a
 * promise (a WebCrypto key answers with one, see keys.ts).
 */
export function openV4Public(
  p: ParsedToken,
  key: VerifyKey | undefined,
  read: (message: Uint8Array) => unknown = readJson,
): unknown {
  if (!key) {
    // Named, so the operator can tell a key identity has dropped (after a rotation, once every
    // token it signed had expired) or another issuer's from one that should be known. Only a
    // well-formed id is echoed: the footer is the sender's text.
    const kid = KID_RE.test(p.footer.kid) ? p.footer.kid : "a malformed key id";
    throw new TokenError("unknown_key", `token: signed by a key this node does not know (${kid})`);
  }
  // The PAE is built in the scratch buffer, which the next token reuses: a
  // WebCrypto key's check copies the message before its promise (keys.ts).
  const out = scratchOf(p.message.length + p.footerBytes.length);
  out.set(p.message, MESSAGE_AT);
  const ok = key.check(paeAround(out, p.message.length, p.footerBytes), p.signature);
  if (ok instanceof Promise) return ok.then((good) => opened(p, good, read));
  return opened(p, ok, read);
}

/**
 * A payload's JSON, parsed (the default reader of {@link openV4Public}, which
 * is given another for the lines of a revocation list).
 */
export function readJson(message: Uint8Array): unknown {
  try {
    return JSON.parse(utf8.decode(message));
  } catch {
    throw new TokenError("malformed", "token: payload is not JSON");
  }
}

/** The payload of a token whose signature check said `ok`, read by `read`. */
function opened(p: ParsedToken, ok: boolean, read: (message: Uint8Array) => unknown): unknown {
  if (!ok) throw new TokenError("bad_signature", "token: signature is not valid");
  return read(p.message);
}
