/**
 * The published key set: the public keys identity signs with, by key id,
 * written to $STRATA_RUNTIME_DIR/identity.pub and read by every verifier.
 *
 * A verifier reloads the file when it changes (checked on an unknown key id
 * and when identity announces a change), so a rotated key is picked up
 * without a restart.
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

/** Options for {@link PublishedKeys}. */
export interface PublishedKeysOptions {
  /** Least time between two "has the file changed?" checks. */
  recheckMs?: number;
  /** Called after a reload that changed the set. */
  onChange?: () => void;
}

/**
 * A key set read from identity.pub, reloaded when the file changes.
 * A missing file means "no keys yet" (identity has not started), not an error.
 */
export class PublishedKeys implements KeyLookup {
  #path: string;
  #keys = new Map<string, VerifyKey>();
  #stamp = "";
  #lastCheck = 0;
  #recheckMs: number;
  #onChange?: () => void;
  #loading?: Promise<void>;

  constructor(path: string, options: PublishedKeysOptions = {}) {
    this.#path = path;
    this.#recheckMs = options.recheckMs ?? 100;
    this.#onChange = options.onChange;
  }

  /** The key ids currently loaded. */
  get kids(): string[] {
    return [...this.#keys.keys()];
  }

  /** Looks a key up; on a miss, reloads the file if it changed. */
  async get(kid: string): Promise<VerifyKey | undefined> {
    const hit = this.#keys.get(kid);
    if (hit) return hit;
    if (Date.now() - this.#lastCheck < this.#recheckMs) return undefined;
    await this.refresh();
    return this.#keys.get(kid);
  }

  /** Re-reads the file when its inode, size or mtime changed. */
  refresh(): Promise<void> {
    this.#loading ??= this.#refresh().finally(() => (this.#loading = undefined));
    return this.#loading;
  }

  async #refresh(): Promise<void> {
    this.#lastCheck = Date.now();
    let stamp: string;
    try {
      const st = await Deno.stat(this.#path);
      stamp = `${st.ino}:${st.size}:${st.mtime?.getTime()}`;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    if (stamp === this.#stamp) return;
    const keys = await importKeySet(JSON.parse(await Deno.readTextFile(this.#path)));
    this.#stamp = stamp;
    const changed = keys.size !== this.#keys.size ||
      [...keys.keys()].some((k) => !this.#keys.has(k));
    this.#keys = keys;
    if (changed) this.#onChange?.();
  }
}
