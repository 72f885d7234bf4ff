/**
 * Cluster mode's revocations (docs/cluster.md): identity writes each signed
 * batch of revocations to etcd under `/strata/<cluster>/revocations/<node>/`,
 * and every node's services read that prefix at start and watch it, on top of
 * their own node's list file ({@link FileRevocationSource}).
 *
 * etcd is the transport, not the trust: an entry counts only when it is a
 * revocation list signed by a key endorsed for the issuer `identity@<node>`
 * of the node it is stored under (or by this node's own identity); anything
 * else is ignored. Entries carry an etcd lease that ends after the last token
 * they name expires, so etcd prunes them itself.
 * @module
 */

import type { EtcdHttp, EtcdKeyValue, EtcdRangeResult, EtcdWatch } from "./etcd_http.ts";
import type { KeyLookup } from "../token/key_set.ts";
import type { VerifyKey } from "../token/keys.ts";
import { verifyV4Public } from "../token/paseto.ts";
import {
  isRevokedEntry,
  REVOCATION_LIST_TYPE,
  type RevokedBatch,
  type RevokedEntry,
} from "../token/revocation_set.ts";
import type { Unsubscribe } from "./key_set.ts";
import type { CatchingUpRevocationSource } from "./revocations.ts";

/** The largest signed batch read from etcd (etcd's own request limit is 1.5 MiB). */
const MAX_ENTRY_LENGTH = 2 * 1024 * 1024;

/** Seconds a revocation's etcd lease outlives the last token it names (clock skew). */
export const PRUNE_SLACK_S = 300;

/** The etcd prefix of a cluster's revocations (one key per signed batch, under its node). */
export function revocationsPrefix(cluster: string): string {
  return `/strata/${cluster}/revocations/`;
}

/**
 * While the watch is up, the most time (ms) between the small reads that
 * show etcd is still there: a sixth of the partition bound, at most this,
 * so a cut-off node refuses other nodes' tokens between the bound less that
 * time and the bound (a read a second for each service was about a fifth of
 * an idle cluster's CPU time). A service looks once a second, so with a
 * bound of 6 s or less it reads every time it looks.
 */
export const PROBE_MAX_MS = 5000;

/** The time between the small reads (ms) for a partition bound of `boundMs`. */
export function probeIntervalMs(boundMs: number): number {
  return Math.min(PROBE_MAX_MS, boundMs / 6);
}

/**
 * How long one attempt to write a batch may take (ms). A write proposed while
 * etcd elects a new leader (its leader was killed) is dropped by etcd and
 * answered only after etcd's request timeout (7 s by default); tried again,
 * it reaches the new leader once one is elected.
 */
export const PUBLISH_ATTEMPT_MS = 1500;

/**
 * How long a batch is tried (ms) before the write counts as failed and
 * identity answers etcd_unreachable (it then keeps writing it every second).
 */
export const PUBLISH_BUDGET_MS = 4000;

/** Pause after a failed attempt (ms): etcd refusing at once (no leader yet, a member down). */
const PUBLISH_PAUSE_MS = 100;

/**
 * Writes one signed batch to etcd and resolves once etcd committed it. The
 * key names the node and the batch; the lease ends {@link PRUNE_SLACK_S}
 * after the latest expiry in the batch, which is when etcd deletes it. Each
 * attempt has {@link PUBLISH_ATTEMPT_MS}, tried for {@link PUBLISH_BUDGET_MS};
 * a retry writes the same key (a late first attempt stores the same value).
 */
export async function publishRevocations(
  client: EtcdHttp,
  signed: string,
  options: { cluster: string; node: string; entries: RevokedEntry[] },
): Promise<string> {
  const lastExp = Math.max(...options.entries.map((e) => e.exp));
  const ttl = Math.max(60, lastExp - Math.floor(Date.now() / 1000) + PRUNE_SLACK_S);
  // A batch id that sorts by time and never collides (a restart keeps the node name).
  const id = `${Date.now().toString().padStart(15, "0")}-${crypto.randomUUID()}`;
  const key = `${revocationsPrefix(options.cluster)}${options.node}/${id}`;
  const until = Date.now() + PUBLISH_BUDGET_MS;
  for (;;) {
    const deadline = new Date(Math.min(until, Date.now() + PUBLISH_ATTEMPT_MS));
    try {
      // Not kept alive: the lease just runs out (a failed attempt's too).
      const lease = await client.grantLease(ttl, { deadline });
      await client.put(key, signed, { lease, deadline });
      return key;
    } catch (err) {
      if (Date.now() + PUBLISH_PAUSE_MS >= until) throw err;
      await new Promise((r) => setTimeout(r, PUBLISH_PAUSE_MS));
    }
  }
}

/** Options for {@link EtcdRevocationSource}. */
export interface EtcdRevocationOptions {
  /** The cluster's name (the prefix). */
  cluster: string;
  /** A connected etcd client (not closed here: the key source owns it). */
  client: EtcdHttp;
  /** The cluster's trusted keys (this node's and the endorsed ones). */
  keys: KeyLookup;
  /** This node's own issuer, `identity@<node>` (its keys carry no endorsement). */
  localIssuer: string;
  /** This node's own list file. */
  local: CatchingUpRevocationSource;
  /** Cut off from etcd longer than this (ms), the node refuses other nodes' tokens. */
  partitionBoundMs: number;
}

/** This node's revocations and every other node's, from etcd. */
export class EtcdRevocationSource implements CatchingUpRevocationSource {
  #o: EtcdRevocationOptions;
  #prefix: string;
  #listeners = new Set<(entries: RevokedBatch) => void>();
  /** etcd keys already applied (a value is never rewritten under its key). */
  #seen = new Set<string>();
  /** Keys signed by a key not known yet: read again at the next poll. */
  #retry = new Set<string>();
  #watcher?: EtcdWatch;
  #watching?: Promise<void>;
  #watchUp = false;
  #closed = false;
  /** The read of etcd under way (at most one). */
  #polling?: Promise<void>;
  /**
   * The newest etcd revision up to which every put under the prefix has
   * been taken in (applied, or kept to retry): from whole reads, the
   * watch's events and the small reads.
   */
  #rev = 0;
  /** When etcd's prefix was last read whole or the watch last delivered (ms, performance.now). */
  lastContact = -Infinity;
  /** Why the last read of etcd failed, while it fails. */
  lastError?: string;

  /** A source over `options.cluster`'s revocations; {@link poll} reads etcd first. */
  constructor(options: EtcdRevocationOptions) {
    this.#o = options;
    this.#prefix = revocationsPrefix(options.cluster);
    options.local.subscribe((entries) => this.#deliver(entries));
  }

  /** Subscribes to revocations as they are learned. */
  subscribe(fn: (entries: RevokedBatch) => void): Unsubscribe {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #deliver(entries: RevokedBatch): void {
    if (entries.length === 0) return;
    for (const fn of this.#listeners) fn(entries);
  }

  /** This node's list file, as on a single node (other nodes' revocations come by the watch). */
  catchUp(): void | Promise<void> {
    return this.#o.local.catchUp();
  }

  /** The local list's entries and every valid entry in etcd now. */
  async snapshot(): Promise<RevokedEntry[]> {
    const out = await this.#o.local.snapshot();
    const all = await this.#o.client.strings(this.#prefix);
    for (const [k, v] of all) {
      const got = await this.#open(k, v).catch(() => undefined);
      if (got) out.push(...got);
    }
    return out;
  }

  /**
   * Why this node cannot vouch for other nodes' tokens now: it has not read
   * etcd for longer than the partition bound (or not at all since it started),
   * so it may have missed their revocations. Undefined once it has caught up.
   */
  cutOff(): string | undefined {
    const since = performance.now() - this.lastContact;
    if (since <= this.#o.partitionBoundMs) return undefined;
    const bound = `the partition bound of ${this.#o.partitionBoundMs / 1000} s`;
    return (since === Infinity
      ? "this node has not read the cluster's revocations from etcd since it started"
      : `this node has not reached etcd for ${(since / 1000).toFixed(1)} s, more than ${bound}`) +
      ", so it may have missed revocations of other nodes' tokens; it honours only its own " +
      "identity's tokens until it has caught up with etcd" +
      (this.lastError ? ` (etcd: ${this.lastError})` : "");
  }

  /**
   * Reads the local list, then etcd's prefix whole while the watch is not up
   * (at start, after a reconnect, after a partition, or entries signed by a
   * key not known yet); otherwise one small read shows etcd is still there,
   * once {@link probeIntervalMs} has passed since the last read.
   */
  async poll(): Promise<void> {
    await this.#o.local.poll();
    // Cut off, a read of etcd may hang until etcd answers: keep at most one outstanding.
    this.#polling ??= this.#pollEtcd().finally(() => (this.#polling = undefined));
    await this.#polling;
  }

  async #pollEtcd(): Promise<void> {
    // Not awaited: with etcd down, setting up the watch waits for it.
    if (!this.#watching && !this.#closed) this.#watching = this.#watch();
    if (this.#watchUp && this.#retry.size === 0 && this.cutOff() === undefined) {
      const asked = performance.now();
      // In touch as of the last read, and the watch brings every change meanwhile.
      if (asked - this.lastContact < probeIntervalMs(this.#o.partitionBoundMs)) return;
      // What was put under the prefix after everything applied so far: nothing while the
      // watch keeps up; what a watch stalled on a member that stopped answering missed
      // (while the others answer) is applied here, so the bound holds for it too.
      let res: EtcdRangeResult;
      try {
        res = await this.#o.client.range(this.#prefix, { minModRevision: this.#rev + 1 });
        this.lastError = undefined;
      } catch (err) {
        this.lastError = (err as Error).message;
        throw err;
      }
      for (const kv of res.kvs) await this.#apply(kv.key, kv.value);
      this.#rev = Math.max(this.#rev, res.revision);
      this.lastContact = Math.max(this.lastContact, asked);
    } else {
      // Read whole after the watch is set up, so nothing put meanwhile is missed.
      const watcher = this.#watcher;
      await this.#readAll();
      // Up only if that watch still runs (etcd may have cancelled it meanwhile).
      if (watcher && this.#watcher === watcher) this.#watchUp = true;
    }
  }

  /** Stops the watch and closes this node's list file. */
  close(): void {
    this.#o.local.close?.();
    this.#closed = true;
    void this.#watcher?.cancel().catch(() => {});
  }

  async #readAll(): Promise<void> {
    let res: EtcdRangeResult;
    const asked = performance.now();
    try {
      res = await this.#o.client.range(this.#prefix);
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      throw err;
    }
    this.#retry.clear();
    for (const kv of res.kvs) await this.#apply(kv.key, kv.value);
    this.#rev = Math.max(this.#rev, res.revision);
    // Caught up as of when the read was asked (what was put before it is applied).
    this.lastContact = Math.max(this.lastContact, asked);
  }

  async #watch(): Promise<void> {
    let watcher: EtcdWatch;
    try {
      watcher = await this.#o.client.watch(this.#prefix);
    } catch {
      this.#watching = undefined; // poll reads the prefix whole meanwhile, and tries again.
      return;
    }
    if (this.#closed) {
      await watcher.cancel().catch(() => {});
      return;
    }
    this.#watcher = watcher;
    watcher.on("put", (kv: EtcdKeyValue) => {
      // Events come in order: every put up to this revision has been delivered.
      this.#rev = Math.max(this.#rev, kv.modRevision);
      void this.#apply(kv.key, kv.value);
    });
    // A broken stream may have missed puts: read whole until it is back.
    watcher.on("disconnected", () => (this.#watchUp = false));
    watcher.on("connected", () => {
      void this.#readAll().then(() => {
        if (this.#watcher === watcher) this.#watchUp = true;
      }, () => {});
    });
    // Cancelled by etcd (resumed from a compacted revision, say): this watch is over; the
    // next poll reads whole and sets up another.
    watcher.on("error", () => {
      if (this.#watcher !== watcher) return;
      this.#watchUp = false;
      this.#watcher = undefined;
      this.#watching = undefined;
    });
  }

  async #apply(key: string, value: string): Promise<void> {
    if (this.#seen.has(key)) return;
    let entries: RevokedEntry[] | undefined;
    try {
      entries = await this.#open(key, value);
    } catch (err) {
      // Signed by a key this node does not know (yet), does not trust (yet), or could not
      // look up (etcd out of reach): read again later. Otherwise forged: ignored.
      const why = (err as { reason?: string }).reason ??
        (err as { details?: { reason?: string } }).details?.reason;
      if (["unknown_key", "unendorsed_key", "etcd_unreachable"].includes(why!)) {
        this.#retry.add(key);
      }
      return;
    }
    this.#seen.add(key);
    if (entries) this.#deliver(entries);
  }

  /**
   * Verifies one etcd entry: a revocation list whose issuer is the node it is
   * stored under, signed by a key trusted for that issuer.
   */
  async #open(key: string, value: string): Promise<RevokedEntry[]> {
    const node = key.slice(this.#prefix.length).split("/")[0];
    const issuer = `identity@${node}`;
    let used: VerifyKey | undefined;
    const payload = await verifyV4Public(value, async (kid) => {
      used = await this.#o.keys.get(kid);
      return used;
    }, { maxLength: MAX_ENTRY_LENGTH }) as Record<string, unknown>;
    if (payload?.typ !== REVOCATION_LIST_TYPE || payload.iss !== issuer) {
      throw new Error(`revocations in etcd: ${key} is not a list issued by ${issuer}`);
    }
    if ((used?.issuer ?? this.#o.localIssuer) !== issuer) {
      throw new Error(`revocations in etcd: ${key} is signed by a key not endorsed for ${issuer}`);
    }
    const revoked = payload.revoked;
    if (!Array.isArray(revoked) || !revoked.every(isRevokedEntry)) {
      throw new Error(`revocations in etcd: ${key} has malformed entries`);
    }
    return revoked;
  }
}

/**
 * The cap_ids of the revocations `options.node` has in etcd now: identity
 * compares them with its log at start and every few seconds, and writes again
 * what etcd lacks (a batch durable on the node when identity stopped before
 * etcd answered, or entries a writer to etcd deleted). Only lists signed by `options.keys` count.
 */
export async function readPublished(
  client: EtcdHttp,
  options: { cluster: string; node: string; keys: KeyLookup },
): Promise<Set<string>> {
  const prefix = `${revocationsPrefix(options.cluster)}${options.node}/`;
  // Bounded: identity compares its log with etcd every few seconds, also while etcd is away.
  const deadline = new Date(Date.now() + PUBLISH_BUDGET_MS);
  const all = await client.strings(prefix, { deadline });
  const out = new Set<string>();
  for (const value of all.values()) {
    try {
      const p = await verifyV4Public(value, (kid) => options.keys.get(kid), {
        maxLength: MAX_ENTRY_LENGTH,
      }) as Record<string, unknown>;
      if (p?.typ !== REVOCATION_LIST_TYPE || p.iss !== `identity@${options.node}`) continue;
      if (!Array.isArray(p.revoked)) continue;
      for (const e of p.revoked) if (isRevokedEntry(e)) out.add(e.cap_id);
    } catch {
      // Not signed by this node's identity: it vouches for nothing here.
    }
  }
  return out;
}
