/**
 * Where a verifier's key set comes from: a {@link KeySetSource} gives a
 * snapshot, a change feed and a re-read on demand; {@link FileKeySetSource}
 * is today's, identity.pub in the runtime dir; {@link KeySetLookup} is the
 * hot path's synchronous in-memory lookup fed by any source.
 *
 * The rule on an unknown key id is exact: the answer waits for a re-read of
 * the source that began after the lookup. For the file, that is a stat of
 * identity.pub, and the file is re-read when the stat shows it changed.
 * Identity publishes the key set before it hands out any token signed by a
 * new key, so such a token is never refused as unknown_key. Lookups that miss
 * meanwhile share one stat (at most one runs and one waits), which bounds what
 * unknown key ids cost.
 * @module
 */

import type { VerifyKey } from "../token/keys.ts";
import { importKeySet, type KeyLookup } from "../token/key_set.ts";
import { TokenError } from "../token/paseto.ts";
import { StrataError } from "../wire/errors.ts";

/**
 * Re-reads that a caller can trust to be fresh: run() resolves after a read
 * that began after the call. A read already under way may have looked before
 * the change the caller waits for, so callers that arrive meanwhile share
 * one more read, which starts when it ends.
 */
export class FreshRead {
  #read: () => Promise<void>;
  #loading?: Promise<void>;
  /** The read that starts once #loading ends, shared by the callers that arrived meanwhile. */
  #queued?: Promise<void>;

  /** Re-reads with `read`. */
  constructor(read: () => Promise<void>) {
    this.#read = read;
  }

  /** Resolves after a read that began after this call. */
  run(): Promise<void> {
    if (!this.#loading) {
      this.#loading = this.#read().finally(() => (this.#loading = undefined));
      return this.#loading;
    }
    this.#queued ??= this.#loading.catch(() => {}).then(() => {
      this.#queued = undefined;
      return this.run();
    });
    return this.#queued;
  }
}
/** Stops a subscription to a change feed. */
export type Unsubscribe = () => void;

/** A key set: what it holds now, its changes, and a re-read on demand. */
export interface KeySetSource {
  /** The keys held now, by key id. */
  snapshot(): ReadonlyMap<string, VerifyKey>;
  /** Re-reads the set; resolves after a read that began after the call. */
  refresh(): Promise<void>;
  /**
   * The periodic look, for changes the change feed may not have told
   * (default: {@link refresh}); cluster mode reads etcd only when its watch
   * cannot be relied on.
   */
  poll?(): Promise<void>;
  /** The change feed: `fn` runs after each change of the set, with the new snapshot. */
  subscribe(fn: (keys: ReadonlyMap<string, VerifyKey>) => void): Unsubscribe;
  /** Why a key id the source knows of is not trusted (cluster mode: no valid endorsement). */
  refusal?(kid: string): string | undefined;
  /**
   * The re-read of a lookup that missed, bounded in time (cluster mode: etcd
   * may be out of reach): resolves to why the source could not be read in
   * time, or undefined once a read that began after the call is done.
   */
  refreshBounded?(): Promise<string | undefined>;
  /** Releases what the source holds open (an etcd client). */
  close?(): void;
}

/**
 * The key set read from identity.pub, reloaded when the file's inode, size or
 * mtime changes. A missing file means "no keys yet" (identity has not
 * started), not an error.
 */
export class FileKeySetSource implements KeySetSource {
  #path: string;
  #keys: ReadonlyMap<string, VerifyKey> = new Map();
  #stamp = "";
  #listeners = new Set<(keys: ReadonlyMap<string, VerifyKey>) => void>();
  #fresh = new FreshRead(() => this.#refresh());

  /** A source over the key set file at `path` (identity.pub). */
  constructor(path: string) {
    this.#path = path;
  }

  /** The keys loaded by the last read. */
  snapshot(): ReadonlyMap<string, VerifyKey> {
    return this.#keys;
  }

  /** Subscribes to changes of the set. */
  subscribe(fn: (keys: ReadonlyMap<string, VerifyKey>) => void): Unsubscribe {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * Re-reads the file when it changed. Resolves after a check that began
   * after the call: a check already running may have looked before the file
   * changed, so the caller waits for the next one.
   */
  refresh(): Promise<void> {
    return this.#fresh.run();
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
    if (changed) { for (const fn of this.#listeners) fn(keys); }
  }
}

/**
 * The verifier's key lookup over a source: a hit is answered from the
 * snapshot in memory; a miss waits for one re-read that began after it (see
 * the module doc) and looks again.
 */
export class KeySetLookup implements KeyLookup {
  #source: KeySetSource;

  /** A lookup over `source`'s snapshots. */
  constructor(source: KeySetSource) {
    this.#source = source;
  }

  /** The key ids currently loaded. */
  get kids(): string[] {
    return [...this.#source.snapshot().keys()];
  }

  /**
   * Looks a key up; on a miss, re-reads the source once before answering.
   * A key the source refuses (an endorsement that does not hold) is a
   * TokenError "unendorsed_key" with the reason, not just unknown. A key the
   * source cannot judge because its store is out of reach is UNAVAILABLE
   * (`details.reason` "etcd_unreachable"): a lookup that may succeed later.
   */
  get(kid: string): VerifyKey | Promise<VerifyKey | undefined> {
    const hit = this.#source.snapshot().get(kid);
    if (hit) return hit;
    const read = this.#source.refreshBounded?.() ?? this.#source.refresh().then(() => undefined);
    return read.then((cut) => {
      const key = this.#source.snapshot().get(kid);
      const why = key ? undefined : this.#source.refusal?.(kid);
      if (why !== undefined) {
        throw new TokenError(
          "unendorsed_key",
          `token: signed by key ${kid}, which the cluster root does not endorse: ${why}`,
        );
      }
      if (!key && cut !== undefined) {
        throw new StrataError(
          "UNAVAILABLE",
          `token: signed by key ${kid}, which this node does not know and cannot look up now: ` +
            `${cut}; retry once it reaches etcd again`,
          { reason: "etcd_unreachable", kid },
        );
      }
      return key;
    });
  }

  /** Re-reads the source. */
  refresh(): Promise<void> {
    return this.#source.refresh();
  }

  /** The source's periodic look (the service's refresh, and its start-up read). */
  poll(): Promise<void> {
    return this.#source.poll?.() ?? this.#source.refresh();
  }
}
