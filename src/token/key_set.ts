/**
 * The published key set document: the public keys identity signs with, by
 * key id, and its parsing. Where a verifier gets the document from (today
 * identity.pub in the runtime dir, reloaded when it changes) is
 * sources/key_set.ts's.
 * @module
 */

import { parsePublicPaserk, type VerifyKey } from "./keys.ts";
import { parseRfc3339 } from "./claims.ts";

/** One entry of the published key set. */
export interface PublishedKey {
  kid: string;
  /** "k4.public.…" */
  public: string;
  /** RFC 3339 creation time. */
  created: string;
  /** RFC 3339; after it no token signed by this key can still be valid. */
  not_after?: string;
}

/** The published key set document. */
export interface KeySetDocument {
  v: 1;
  issuer: string;
  /** The key id new tokens are signed with. */
  active: string;
  keys: PublishedKey[];
}

/** Parses and imports a key set document; drops keys past their not_after. */
export async function importKeySet(
  doc: unknown,
  now: number = Date.now(),
): Promise<Map<string, VerifyKey>> {
  const d = doc as KeySetDocument;
  if (typeof d !== "object" || d === null || d.v !== 1 || !Array.isArray(d.keys)) {
    throw new Error("key set: not a v1 key set document");
  }
  const out = new Map<string, VerifyKey>();
  for (const entry of d.keys) {
    if (entry.not_after !== undefined && parseRfc3339(entry.not_after) < now) continue;
    const key = await parsePublicPaserk(entry.public);
    if (key.kid !== entry.kid) throw new Error(`key set: key id of ${entry.kid} does not match`);
    out.set(key.kid, key);
  }
  return out;
}

/** Anything that maps a key id to a verification key. */
export interface KeyLookup {
  get(kid: string): VerifyKey | undefined | Promise<VerifyKey | undefined>;
}
