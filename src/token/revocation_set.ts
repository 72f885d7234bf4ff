/**
 * Revoked capabilities as every verifier holds them (in memory, for the hot
 * path), and the signed revocation list identity publishes and pushes: its
 * signing and verifying. Reading the list file is sources/revocations.ts's.
 *
 * Revocation only ever adds: a verifier merges every list it is given and
 * never forgets an entry before the token it names has expired, so a replayed
 * or stale list cannot bring a revoked token back.
 * @module
 */

import type { KeyLookup } from "./key_set.ts";
import type { SigningKey } from "./keys.ts";
import { openV4Public, parseV4Public, signV4Public } from "./paseto.ts";

/** One revoked capability: its id and when its token expires (unix seconds). */
export interface RevokedEntry {
  cap_id: string;
  exp: number;
}

/** The payload type of a signed revocation list. */
export const REVOCATION_LIST_TYPE = "strata.revocations";

/** The largest signed list accepted (16 MiB of token text). */
const MAX_LIST_LENGTH = 16 * 1024 * 1024;

/** The revoked capability ids a verifier knows of. */
export class RevocationSet {
  #expiry = new Map<string, number>();

  /** How many entries are held. */
  get size(): number {
    return this.#expiry.size;
  }

  /** Whether this capability id is revoked. */
  has(capId: string): boolean {
    return this.#expiry.has(capId);
  }

  /** Returns the first revoked id of a lineage (ancestors, then the token). */
  revokedIn(lineage: readonly string[]): string | undefined {
    if (this.#expiry.size === 0) return undefined;
    for (const id of lineage) if (this.#expiry.has(id)) return id;
    return undefined;
  }

  /** Merges entries; returns the ids that were not known before. */
  add(entries: Iterable<RevokedEntry>): string[] {
    const added: string[] = [];
    for (const e of entries) {
      if (!this.#expiry.has(e.cap_id)) added.push(e.cap_id);
      this.#expiry.set(e.cap_id, Math.max(e.exp, this.#expiry.get(e.cap_id) ?? 0));
    }
    return added;
  }

  /** Drops entries whose tokens expired before `nowMs` (they can never verify). */
  prune(nowMs: number = Date.now()): void {
    for (const [id, exp] of this.#expiry) if (exp * 1000 < nowMs) this.#expiry.delete(id);
  }

  /** All entries. */
  entries(): RevokedEntry[] {
    return [...this.#expiry].map(([cap_id, exp]) => ({ cap_id, exp }));
  }
}

/** Signs a revocation list (used by identity for the file and for pushes). */
export async function signRevocationList(
  key: SigningKey,
  issuer: string,
  revoked: RevokedEntry[],
): Promise<string> {
  return await signV4Public(key, {
    typ: REVOCATION_LIST_TYPE,
    iss: issuer,
    iat: new Date().toISOString(),
    revoked,
  });
}

/** Whether `x` is a well-formed revocation entry (a 32-hex cap_id and an integer exp). */
export function isRevokedEntry(x: unknown): x is RevokedEntry {
  const e = x as RevokedEntry;
  return typeof e === "object" && e !== null && typeof e.cap_id === "string" &&
    /^[0-9a-f]{32}$/.test(e.cap_id) && Number.isSafeInteger(e.exp);
}

/**
 * Verifies a signed revocation list against the key set and returns its
 * entries. Throws when the signature, issuer or shape is wrong.
 */
export async function openRevocationList(
  signed: string,
  keys: KeyLookup,
  issuer: string,
): Promise<RevokedEntry[]> {
  return await openRevocationListNow(signed, keys, issuer);
}

/**
 * {@link openRevocationList} without a promise when the key is at hand (a
 * push's usual case: no promise and no request timer per push); a promise
 * only when the key set must be read again first. Throws when it is forged.
 */
export function openRevocationListNow(
  signed: string,
  keys: KeyLookup,
  issuer: string,
): RevokedEntry[] | Promise<RevokedEntry[]> {
  const parsed = parseV4Public(signed, MAX_LIST_LENGTH);
  const key = keys.get(parsed.footer.kid);
  if (key instanceof Promise) return key.then((k) => listEntries(openV4Public(parsed, k), issuer));
  return listEntries(openV4Public(parsed, key), issuer);
}

function listEntries(opened: unknown, issuer: string): RevokedEntry[] {
  const payload = opened as Record<string, unknown>;
  if (payload?.typ !== REVOCATION_LIST_TYPE || payload.iss !== issuer) {
    throw new Error("revocation list: wrong type or issuer");
  }
  if (!Array.isArray(payload.revoked) || !payload.revoked.every(isRevokedEntry)) {
    throw new Error("revocation list: malformed entries");
  }
  return payload.revoked;
}

/** Entries per signed line of the revocation list file (see sources/revocations.ts). */
export const LIST_CHUNK = 1000;
