/**
 * Small helpers shared by the unit tests: temp folders that are always
 * removed, capability and claim builders, real signed tokens, a counting key
 * lookup, and assertions on StrataError values.
 * @module
 */

import assert from "node:assert/strict";
import { CtlError, EXIT } from "../../src/ctl/errors.ts";
import { type ErrorName, StrataError } from "../../src/wire/errors.ts";
import type { Capability, Claims } from "../../src/token/claims.ts";
import { AUDIENCE, newCapId, rfc3339 } from "../../src/token/claims.ts";
import type { KeyLookup } from "../../src/token/key_set.ts";
import type { VerifyKey } from "../../src/token/keys.ts";
import { signV4Public } from "../../src/token/paseto.ts";
import type { SigningKey } from "../../src/token/keys.ts";

/** The issuer every unit test node uses. */
export const ISSUER = "identity@unit";

/** Runs `fn` with a fresh folder under /tmp and removes it afterwards, whatever happens. */
export async function withTempDir<T>(fn: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-unit-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Claims of a valid fs token (an hour either side of `nowMs`), with overrides. */
export function makeClaims(overrides: Partial<Claims> = {}, nowMs: number = Date.now()): Claims {
  return {
    jti: newCapId(),
    sub: "tester",
    iss: ISSUER,
    aud: AUDIENCE,
    iat: rfc3339(nowMs - 3600_000),
    nbf: rfc3339(nowMs - 3600_000),
    exp: rfc3339(nowMs + 3600_000),
    service: "fs",
    actions: ["list", "open", "read"],
    rights: ["fs.list", "fs.open", "fs.read"],
    constraints: {},
    ...overrides,
  };
}

/** A Capability as parseClaims would build it from `claims`. */
export function capOf(claims: Claims): Capability {
  return {
    claims,
    capId: claims.jti,
    expMs: Date.parse(claims.exp),
    nbfMs: Date.parse(claims.nbf),
    lineage: [...(claims.chain ?? []), claims.jti],
  };
}

/** A capability with the given overrides, for tests that need no signature. */
export function makeCap(overrides: Partial<Claims> = {}, nowMs: number = Date.now()): Capability {
  return capOf(makeClaims(overrides, nowMs));
}

/** Signs claims into a real v4.public token. */
export async function mint(key: SigningKey, claims: Claims): Promise<string> {
  return await signV4Public(key, claims);
}

/** A key lookup over fixed keys that counts how often it is asked. */
export class CountingLookup implements KeyLookup {
  calls = 0;
  #keys = new Map<string, VerifyKey>();

  constructor(keys: VerifyKey[] = []) {
    for (const k of keys) this.#keys.set(k.kid, k);
  }

  /** Makes another key known. */
  add(key: VerifyKey): void {
    this.#keys.set(key.kid, key);
  }

  get(kid: string): VerifyKey | undefined {
    this.calls++;
    return this.#keys.get(kid);
  }
}

/** Asserts that `err` is a StrataError with `name` (and a message matching `message`). */
export function assertStrataError(
  err: unknown,
  name: ErrorName,
  message?: RegExp,
): StrataError {
  assert.ok(err instanceof StrataError, `expected a StrataError, got ${err}`);
  assert.equal(err.errorName, name, `expected ${name}, got ${err.errorName}: ${err.message}`);
  if (message) assert.match(err.message, message);
  return err;
}

/** Runs `fn`, which must throw a StrataError with `name`; returns the error. */
export function throwsStrata(fn: () => unknown, name: ErrorName, message?: RegExp): StrataError {
  try {
    fn();
  } catch (err) {
    return assertStrataError(err, name, message);
  }
  assert.fail(`expected ${name} to be thrown`);
}

/** Awaits `p`, which must reject with a StrataError with `name`; returns the error. */
export async function rejectsStrata(
  p: Promise<unknown> | (() => Promise<unknown>),
  name: ErrorName,
  message?: RegExp,
): Promise<StrataError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    return assertStrataError(err, name, message);
  }
  assert.fail(`expected ${name} to be thrown`);
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Asserts that `fn` throws a usage error whose message and hint match. */
export function assertUsage(fn: () => unknown, message: RegExp, hint?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CtlError, `expected a CtlError, got ${e}`);
    assert.equal(e.exit, EXIT.USAGE);
    assert.match(e.message, message);
    if (hint) assert.match(e.hint ?? "", hint);
    return true;
  });
}
