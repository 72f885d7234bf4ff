/**
 * Cluster mode's key set (docs/cluster.md): this node identity's own keys
 * (identity.pub, as on a single node) and the keys of every identity the
 * cluster root endorses, read from etcd under `/strata/<cluster>/endorsements/`
 * and kept current by a prefix watch.
 *
 * etcd is the transport, not the root of trust: an entry counts only when it
 * verifies against the root public key the node was configured with, names
 * the node it is stored under and has not expired. Keys of entries that do
 * not hold, and keys whose endorsement expired or was withdrawn, are refused
 * with that reason ({@link EtcdKeySetSource.refusal}), not just as unknown.
 * A record with a lower seq than one already verified for its node (an old
 * endorsement put back in etcd) is refused as a replay.
 * @module
 */

import type { EtcdHttp, EtcdWatch } from "./etcd_http.ts";
import { parsePublicPaserk, type VerifyKey } from "../token/keys.ts";
import {
  claimedKeyIds,
  type Endorsement,
  verifyEndorsement,
  verifyPendingKeys,
} from "../token/endorsement.ts";
import { type Cancel, type Clock, systemClock } from "../runtime/clock.ts";
import { FreshRead, type KeySetSource, type Unsubscribe } from "./key_set.ts";

/**
 * A read of etcd outstanding this long (ms) counts as etcd out of reach (a
 * stopped member answers nothing; a member has 3 s to answer before the client tries the next).
 */
const SLOW_READ_MS = 1000;

/**
 * With etcd out of reach, how long a lookup of an unknown key waits for the
 * read of etcd it starts (ms) before it is answered UNAVAILABLE.
 */
export const CUT_OFF_WAIT_MS = 200;

/**
 * How long a lookup of an unknown key waits for etcd at most (ms) while the
 * node does not know yet that etcd is out of reach (then it is answered
 * UNAVAILABLE, and the next lookup knows).
 */
export const MISS_WAIT_MS = 1500;

/** How long one read of the endorsements may take (ms) before it counts as failed. */
const READ_DEADLINE_MS = 2500;

/**
 * While the prefix watch is up, how long a periodic look ({@link
 * EtcdKeySetSource.poll}) trusts the last whole read before it reads the
 * prefix again (ms), in case the watch missed a change without saying so.
 */
export const WATCHED_REREAD_MS = 10_000;

/** The most refused key ids whose reason is remembered. */
const MAX_REFUSALS = 4096;

/** The etcd prefix of a cluster's endorsements. */
export function endorsementsPrefix(cluster: string): string {
  return `/strata/${cluster}/endorsements/`;
}

/**
 * The etcd prefix of the key sets nodes ask the operator to endorse (one per
 * node, written by its identity after identity.rotate_key, signed by a key
 * the root already endorses for it).
 */
export function pendingKeysPrefix(cluster: string): string {
  return `/strata/${cluster}/pending_keys/`;
}

/** Options for {@link EtcdKeySetSource}. */
export interface EtcdKeySetOptions {
  /** The cluster's name (the prefix and the name endorsements must carry). */
  cluster: string;
  /** A connected etcd client; closed by {@link EtcdKeySetSource.close}. */
  client: EtcdHttp;
  /** The cluster root's public key: the trust anchor. */
  root: VerifyKey;
  /** This node identity's own keys (identity.pub): trusted without etcd. */
  local: KeySetSource;
  /** Expiry of endorsements is judged by this clock (default the system's). */
  clock?: Clock;
  /** {@link WATCHED_REREAD_MS} unless given (tests). */
  watchedRereadMs?: number;
}

/** The key set of a cluster node: its own keys and every endorsed identity's. */
export class EtcdKeySetSource implements KeySetSource {
  #o: EtcdKeySetOptions;
  #clock: Clock;
  #prefix: string;
  /** The raw values under the prefix, by node, as last read. */
  #raw = new Map<string, string>();
  /** The raw pending key sets, by node, as last read. */
  #pending = new Map<string, string>();
  /** Keys of pending sets that verified (not endorsed yet), by key id, each with its issuer. */
  #pendingKeys = new Map<string, VerifyKey>();
  #endorsed = new Map<string, Endorsement>();
  /**
   * The newest record verified per node, kept for the life of the process:
   * an endorsement with a lower seq (or any endorsement at or below a
   * withdrawal's seq) is a replay and is refused, even once the newer record
   * is deleted from etcd. Not persisted: the services have no state to write
   * to (src/runtime/permissions.ts); a restarted one starts from what etcd holds.
   */
  #marks = new Map<string, { seq: number; withdrawn: boolean }>();
  #refused = new Map<string, string>();
  /**
   * The node each key id was last named for in etcd, and whether by an
   * endorsement (else by a pending key set only): a reason kept from an
   * earlier read (a replay since overwritten, a pending key since dropped)
   * gives way to what etcd holds now. Bounded as the reasons are.
   */
  #named = new Map<string, { node: string; endorsed: boolean }>();
  #keys: ReadonlyMap<string, VerifyKey> = new Map();
  #issuers = new Set<string>();
  #listeners = new Set<(keys: ReadonlyMap<string, VerifyKey>) => void>();
  #fresh = new FreshRead(() => this.#refresh());
  #watcher?: EtcdWatch;
  /** Whether a watch is being set up. */
  #settingUp = false;
  /** Since when (performance.now) the watch's stream has been up, while it is. */
  #upSince?: number;
  /** When the last read of etcd that succeeded began (performance.now). */
  #readAt = -Infinity;
  #expiryTimer?: Cancel;
  #closed = false;
  /** When the etcd read under way began (performance.now), while one is. */
  #readingSince?: number;
  /** Why the last read of etcd failed, while it fails. */
  lastError?: string;

  /** A source over `options.cluster`'s endorsements; call {@link start} before use. */
  constructor(options: EtcdKeySetOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#prefix = endorsementsPrefix(options.cluster);
    options.local.subscribe(() => this.#rebuild());
  }

  /** The etcd client this source reads with (shared by the node's revocation source). */
  get client(): EtcdHttp {
    return this.#o.client;
  }

  /** The issuers of the endorsed identities, kept current (the verifier's accepted issuers). */
  get issuers(): ReadonlySet<string> {
    return this.#issuers;
  }

  /**
   * Reads the endorsements and starts watching the prefix. Does not wait for
   * etcd: a node that cannot reach it starts with its own keys (and trusts
   * others once it can read them; the service's periodic refresh retries).
   */
  async start(): Promise<void> {
    await this.refresh();
    this.watching = this.#watch();
  }

  /** Settles once the prefix watch is set up (or could not be: then only refreshes read etcd). */
  watching: Promise<void> = Promise.resolve();

  async #watch(): Promise<void> {
    if (this.#settingUp || this.#closed) return;
    this.#settingUp = true;
    let watcher: EtcdWatch;
    try {
      watcher = await this.#o.client.watch(this.#prefix);
    } catch {
      return; // The periodic look reads etcd whole meanwhile, and tries again.
    } finally {
      this.#settingUp = false;
    }
    if (this.#closed) {
      await watcher.cancel().catch(() => {});
      return;
    }
    this.#watcher = watcher;
    this.#upSince = performance.now();
    const reread = () => void this.refresh().catch(() => {});
    watcher.on("put", reread).on("delete", reread);
    // Back after a broken stream, which may have missed changes: read whole again.
    watcher.on("connected", () => {
      this.#upSince = performance.now();
      reread();
    });
    watcher.on("disconnected", () => (this.#upSince = undefined));
    // Cancelled by etcd: this watcher is done, and the next look sets up another.
    watcher.on("error", () => {
      if (this.#watcher !== watcher) return;
      this.#watcher = undefined;
      this.#upSince = undefined;
    });
  }

  /**
   * The periodic look (every second, from the service's refresh): re-reads
   * identity.pub, and reads etcd whole unless the watch has been up since
   * before the last whole read began, that read is under
   * {@link WATCHED_REREAD_MS} old and no read has failed since (changes
   * arrive by the watch). Reading both
   * prefixes of every service each second cost a cluster node about half of
   * its CPU time while idle.
   */
  poll(): Promise<void> {
    if (this.#watcher === undefined && !this.#settingUp && !this.#closed) {
      this.watching = this.#watch();
    }
    const since = this.#upSince;
    // The last read failed (one a watch event started, say): read until one succeeds.
    if (
      this.lastError === undefined && since !== undefined && this.#readAt >= since &&
      performance.now() - this.#readAt < (this.#o.watchedRereadMs ?? WATCHED_REREAD_MS)
    ) {
      return this.#o.local.refresh();
    }
    return this.refresh();
  }

  /** The keys trusted now, by key id. */
  snapshot(): ReadonlyMap<string, VerifyKey> {
    return this.#keys;
  }

  /** Why a key id is refused, when an endorsement named it but does not hold. */
  refusal(kid: string): string | undefined {
    return this.#keys.has(kid) ? undefined : this.#refused.get(kid);
  }

  /**
   * A key a node published as pending (signed by a key the root endorses for
   * it) and the root has not endorsed yet: good for that node's revocation
   * lists, which only take trust away, never for tokens.
   */
  pendingKey(kid: string): VerifyKey | undefined {
    return this.#pendingKeys.get(kid);
  }

  /** Subscribes to changes of the set. */
  subscribe(fn: (keys: ReadonlyMap<string, VerifyKey>) => void): Unsubscribe {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Re-reads identity.pub and etcd; resolves after a read that began after the call. */
  refresh(): Promise<void> {
    return this.#fresh.run();
  }

  /**
   * A lookup's re-read, bounded: resolves once identity.pub is re-read and
   * a read of etcd that began after the call has answered, or has had
   * {@link CUT_OFF_WAIT_MS} (etcd known out of reach) or {@link MISS_WAIT_MS}
   * (the read goes on). Resolves to why etcd could not be read, if it could not.
   */
  async refreshBounded(): Promise<string | undefined> {
    const known = this.unreachable();
    let done = false;
    const full = this.#fresh.run().finally(() => (done = true));
    full.catch(() => {});
    const wait = known === undefined ? MISS_WAIT_MS : CUT_OFF_WAIT_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<void>((r) => (timer = setTimeout(r, wait)));
    try {
      await Promise.all([this.#o.local.refresh(), Promise.race([full.catch(() => {}), waited])]);
    } finally {
      clearTimeout(timer);
    }
    if (done) return this.lastError === undefined ? undefined : this.unreachable();
    return known ?? `etcd has not answered a read for ${wait / 1000} s`;
  }

  /**
   * Why this node cannot read the endorsements now: the last read of etcd
   * failed, or the one under way has had no answer for {@link SLOW_READ_MS}
   * (a lookup of an unknown key then waits only {@link CUT_OFF_WAIT_MS}).
   */
  unreachable(): string | undefined {
    if (this.lastError !== undefined) return `etcd is out of reach (${this.lastError})`;
    const since = this.#readingSince === undefined ? 0 : performance.now() - this.#readingSince;
    return since > SLOW_READ_MS
      ? `etcd has not answered a read for ${(since / 1000).toFixed(1)} s`
      : undefined;
  }

  /** Stops the watch and closes the etcd client. */
  close(): void {
    this.#closed = true;
    this.#expiryTimer?.();
    void this.#watcher?.cancel().catch(() => {});
    this.#o.client.close();
  }

  async #refresh(): Promise<void> {
    await this.#o.local.refresh();
    const asked = performance.now();
    this.#readingSince = asked;
    try {
      const pendingPrefix = pendingKeysPrefix(this.#o.cluster);
      const deadline = { deadline: new Date(Date.now() + READ_DEADLINE_MS) };
      const [all, pending] = await Promise.all([
        this.#o.client.strings(this.#prefix, deadline),
        this.#o.client.strings(pendingPrefix, deadline),
      ]);
      const raw = new Map<string, string>();
      for (const [k, v] of all) raw.set(k.slice(this.#prefix.length), v);
      this.#raw = raw;
      this.#pending = new Map(
        [...pending].map(([k, v]) => [k.slice(pendingPrefix.length), v]),
      );
      this.lastError = undefined;
      this.#readAt = asked;
    } catch (err) {
      // etcd unreachable: what was last read still holds, each endorsement until its
      // expiry (foreign tokens are refused past the partition bound: etcd_revocations.ts).
      this.lastError = (err as Error).message;
    } finally {
      this.#readingSince = undefined;
    }
    await this.#judge();
  }

  /** Verifies every entry against the root; what does not hold is refused with the reason. */
  async #judge(): Promise<void> {
    const now = this.#clock.now();
    const endorsed = new Map<string, Endorsement>();
    const refused = new Map<string, string>();
    // Keys once endorsed and now absent: withdrawn (or their node's entry replaced).
    for (const [node, e] of this.#endorsed) {
      if (!this.#raw.has(node)) {
        for (const k of e.keys) refused.set(k.kid, `the endorsement of ${node} was withdrawn`);
      }
    }
    for (const [node, value] of this.#raw) {
      try {
        const e = await verifyEndorsement(value, this.#o.root, {
          cluster: this.#o.cluster,
          node,
          now,
        });
        const mark = this.#marks.get(node);
        if (
          mark && (e.seq < mark.seq || (e.seq === mark.seq && mark.withdrawn && !e.withdrawn))
        ) {
          const why = mark.withdrawn
            ? `the endorsement of ${node} was withdrawn (seq ${mark.seq}); the older one ` +
              `(seq ${e.seq}) put back in etcd is a replay, refused`
            : `the endorsement of ${node} in etcd (seq ${e.seq}) is older than seq ${mark.seq} ` +
              `this node verified: a replay, refused; run strata-ctl cluster join ${node} again`;
          for (const k of [...e.keys, ...this.#endorsed.get(node)?.keys ?? []]) {
            refused.set(k.kid, why);
          }
          continue;
        }
        if (!mark || e.seq > mark.seq) {
          this.#marks.set(node, { seq: e.seq, withdrawn: e.withdrawn });
        }
        if (e.withdrawn) {
          for (const k of this.#endorsed.get(node)?.keys ?? []) {
            refused.set(k.kid, `the endorsement of ${node} was withdrawn`);
          }
          continue;
        }
        endorsed.set(node, e);
        // Keys dropped from a node's renewed endorsement no longer count.
        for (const old of this.#endorsed.get(node)?.keys ?? []) {
          if (!e.keys.some((k) => k.kid === old.kid)) {
            refused.set(old.kid, `the endorsement of ${node} no longer names it`);
          }
        }
      } catch (err) {
        for (const kid of claimedKeyIds(value)) refused.set(kid, (err as Error).message);
        for (const k of this.#endorsed.get(node)?.keys ?? []) {
          refused.set(k.kid, (err as Error).message);
        }
      }
    }
    // A node's pending keys, signed by a key the root endorses for it: refused with that reason
    // until the operator endorses them. A pending set without such a signature says nothing.
    const pendingKeys = new Map<string, VerifyKey>();
    const pendingOf = new Map<string, string>();
    for (const [node, value] of this.#pending) {
      const e = endorsed.get(node);
      if (!e) continue;
      try {
        const p = await verifyPendingKeys(value, e, { cluster: this.#o.cluster, node });
        for (const k of p.keys) {
          if (e.keys.some((x) => x.kid === k.kid)) continue;
          pendingKeys.set(k.kid, { ...await parsePublicPaserk(k.public), issuer: e.issuer });
          pendingOf.set(k.kid, node);
          refused.set(
            k.kid,
            `${e.issuer} published it at ${
              new Date(p.iatMs).toISOString()
            } (a key rotation) and it awaits the operator's endorsement: ` +
              `run strata-ctl cluster endorse ${node}`,
          );
        }
      } catch {
        // Forged or stale (signed by a key no longer endorsed): ignored.
      }
    }
    // Reasons from earlier reads stay for keys this read says nothing about, unless what
    // etcd holds now says otherwise for the node that named them.
    const trusted = new Set([...endorsed.values()].flatMap((e) => e.keys.map((k) => k.kid)));
    const kept = new Map<string, string>();
    for (const [kid, why] of this.#refused) {
      if (refused.has(kid) || trusted.has(kid)) continue;
      kept.set(kid, this.#noLongerNamed(kid, endorsed) ?? why);
    }
    for (const [node, e] of endorsed) for (const k of e.keys) this.#name(k.kid, node, true);
    for (const [kid, node] of pendingOf) {
      if (this.#named.get(kid)?.endorsed !== true) this.#name(kid, node, false);
    }
    this.#pendingKeys = pendingKeys;
    this.#endorsed = endorsed;
    // Reasons are kept for what etcd once held, within a bound (oldest go first).
    const all = new Map([...kept, ...refused]);
    while (all.size > MAX_REFUSALS) all.delete(all.keys().next().value!);
    this.#refused = all;
    this.#rebuild();
  }

  /** Notes that `node`'s endorsement (or pending key set) names `kid`; newest last. */
  #name(kid: string, node: string, endorsed: boolean): void {
    this.#named.delete(kid);
    this.#named.set(kid, { node, endorsed });
    if (this.#named.size > MAX_REFUSALS) this.#named.delete(this.#named.keys().next().value!);
  }

  /**
   * Why a key once named for a node is refused now, by what etcd holds for
   * that node: a valid endorsement that leaves it out, or a withdrawal (or no
   * record); undefined when its record says nothing clear (then the reason
   * from before stays).
   */
  #noLongerNamed(kid: string, endorsed: ReadonlyMap<string, Endorsement>): string | undefined {
    const named = this.#named.get(kid);
    if (named === undefined) return undefined;
    const e = endorsed.get(named.node);
    if (e !== undefined) {
      return named.endorsed
        ? `the endorsement of ${named.node} no longer names it`
        : `${e.issuer} no longer offers it: it was dropped before the operator endorsed it`;
    }
    if (!this.#raw.has(named.node) || this.#marks.get(named.node)?.withdrawn) {
      return `the endorsement of ${named.node} was withdrawn`;
    }
    return undefined;
  }

  /** Drops the endorsements past their expiry, at once (no etcd read, no await). */
  #expire(): void {
    const now = this.#clock.now();
    for (const [node, e] of this.#endorsed) {
      if (e.expMs > now) continue;
      this.#endorsed.delete(node);
      const when = new Date(e.expMs).toISOString();
      for (const k of e.keys) {
        this.#refused.set(
          k.kid,
          `the endorsement of ${node} expired at ${when}; run strata-ctl cluster join ${node} again`,
        );
      }
    }
    this.#rebuild();
  }

  #rebuild(): void {
    const keys = new Map<string, VerifyKey>();
    const issuers = new Set<string>();
    let soonest = Infinity;
    for (const e of this.#endorsed.values()) {
      issuers.add(e.issuer);
      soonest = Math.min(soonest, e.expMs);
      for (const k of e.keys) keys.set(k.kid, k);
    }
    // The node's own keys are its own identity's: never judged by etcd.
    for (const [kid, k] of this.#o.local.snapshot()) keys.set(kid, k);
    // A key id names one public key; what can change is the set and each key's issuer.
    const changed = keys.size !== this.#keys.size ||
      [...keys].some(([kid, k]) =>
        !this.#keys.has(kid) || this.#keys.get(kid)!.issuer !== k.issuer
      );
    this.#keys = keys;
    this.#issuers.clear();
    for (const i of issuers) this.#issuers.add(i);
    this.#expiryTimer?.();
    if (soonest !== Infinity && !this.#closed) {
      // An endorsement stops holding at its expiry, watch event or not.
      const wait = Math.max(0, Math.min(soonest - this.#clock.now() + 1, 2 ** 31 - 1));
      this.#expiryTimer = this.#clock.after(wait, () => this.#expire());
    }
    if (changed) { for (const fn of this.#listeners) fn(keys); }
  }
}
