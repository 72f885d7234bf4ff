/**
 * The published key set: the public keys identity signs with, by key id,
 * written to $STRATA_RUNTIME_DIR/identity.pub and read by every verifier.
 *
 * A verifier reloads the file when it changes, so a rotated key is picked up
 * without a restart. The rule on an unknown key id is exact: the answer waits
 * for a stat of identity.pub that began after the lookup, and the file is
 * re-read when that stat shows it changed. Identity publishes the key set
 * before it hands out any token signed by a new key, so such a token is
 * never refused as unknown_key. Lookups that miss meanwhile share one stat
 * (at most one runs and one waits), which bounds what unknown key ids cost.
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
  #onChange?: () => void;
  #loading?: Promise<void>;
  /** The check that starts once #loading ends, shared by the misses that arrived meanwhile. */
  #queued?: Promise<void>;

  constructor(path: string, options: PublishedKeysOptions = {}) {
    this.#path = path;
    this.#onChange = options.onChange;
  }

  /** The key ids currently loaded. */
  get kids(): string[] {
    return [...this.#keys.keys()];
  }

  /** Looks a key up; on a miss, re-checks the file (see the module doc) before answering. */
  async get(kid: string): Promise<VerifyKey | undefined> {
    const hit = this.#keys.get(kid);
    if (hit) return hit;
    await this.refresh();
    return this.#keys.get(kid);
  }

  /**
   * Re-reads the file when its inode, size or mtime changed. Resolves after
   * a check that began after the call: a check already running may have
   * looked before the file changed, so the caller waits for the next one.
   */
  refresh(): Promise<void> {
    if (!this.#loading) {
      this.#loading = this.#refresh().finally(() => (this.#loading = undefined));
      return this.#loading;
    }
    this.#queued ??= this.#loading.catch(() => {}).then(() => {
      this.#queued = undefined;
      return this.refresh();
    });
    return this.#queued;
  }

  async #refresh(): Promise<void> {
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
