/**
 * The identity service: mints capability tokens (only for callers whose own
 * capability allows it, never broader than theirs), revokes them durably and
 * tells every service at once, rotates the signing key, and publishes the
 * key set and the signed revocation list in the runtime dir.
 * @module
 */

import { createHash } from "node:crypto";
import { setImmediate } from "node:timers";
import { invalidArgument, notFound, permissionDenied, StrataError } from "../wire/errors.ts";
import type { Method } from "../server/server.ts";
import { bindMethods } from "../server/bind.ts";
import { IDENTITY_METHODS } from "../api/identity.ts";
import { MAX_FRAME } from "../wire/frame.ts";
import { checkCapability } from "../policy/authorize.ts";
import { attenuate } from "../policy/constraints.ts";
import { actionOf, allRights, ANY_SERVICE, isRoot, resolveRights } from "../policy/rights.ts";
import type { Audit } from "../runtime/audit.ts";
import { audienceOf, issuerOf, type Layout, runtimeFiles, stateFiles } from "../runtime/config.ts";
import { readAtSync, writeAllSync, writeFileAtomic } from "../runtime/files.ts";
import type { Logger } from "../runtime/log.ts";
import {
  type Capability,
  type Claims,
  type Constraints,
  MAX_CHAIN,
  rfc3339,
} from "../token/claims.ts";
import { signV4Public } from "../token/paseto.ts";
import { signPendingKeys } from "../token/endorsement.ts";
import {
  isRevokedEntry,
  LIST_CHUNK,
  ownListEntries,
  PackedEntries,
  type RevokedEntry,
  signRevocationList,
  signRevocationListNow,
} from "../token/revocation_set.ts";
import type { Trust } from "../sources/trust.ts";
import { LIST_REPLACED_LINE } from "../sources/revocations.ts";
import type { IssuedBook, IssuedRecord } from "./issued.ts";
import type { KeyRing } from "./keyring.ts";
import type { RevocationLog } from "./revocations.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Lifetime of the operator token. */
const OPERATOR_TTL_MS = 365 * 24 * 3600_000;

/** An operator token with less left than this is replaced at start. */
const OPERATOR_RENEW_MS = 30 * 24 * 3600_000;

/** Live revocations identity keeps at most (each is dropped once its token has expired). */
export const MAX_LIVE_REVOCATIONS = 100_000;

/**
 * Live revocations one delegated capability, together with everything
 * delegated from it, may have made.
 */
export const MAX_REVOCATIONS_PER_CALLER = 1000;

/**
 * A line of the list file identity may write again as it is: where it is in
 * the file identity holds (read back from there, not kept in memory: 67 KB a
 * line) and its SHA-256, so a file changed in place is never copied on.
 */
interface PackedLine {
  /** Where the line (with its newline) starts in the file, and its length. */
  offset: number;
  length: number;
  sha256: string;
  /** Its entries' median expiry and latest expiry (Unix seconds). */
  medianExp: number;
  maxExp: number;
}

function sha256Hex(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Live revocations kept for the operator token alone: delegated ones stop short of them. */
export const OPERATOR_RESERVED_REVOCATIONS = 10_000;

/**
 * Lines appended to the revocation list file (one per batch) after which
 * identity writes it whole again, in lines of LIST_CHUNK entries: a service
 * verifies every line when it starts, so the file must not grow a line per
 * batch for ever.
 */
export const COMPACT_AFTER_LINES = 1024;

/**
 * Quiet time after the last append before the list file is compacted (when
 * at least COMPACT_IDLE_LINES were appended): between bursts of revocations,
 * where the rewrite, and every service's re-read of it, costs nobody a wait.
 */
export const COMPACT_IDLE_MS = 250;

/** Appended lines worth a compaction once revocations have gone quiet. */
export const COMPACT_IDLE_LINES = 16;

/**
 * The longest a revocation waits for the others under way to join its batch
 * (ms). Callers answered together come back together, so a batch usually
 * fills at once; the wait only runs out when a caller went away.
 */
export const GATHER_MS = 1;

/** The most revocations one batch waits for (a larger batch goes when GATHER_MS runs out). */
const MAX_GATHER = 256;

/**
 * Cluster mode: how often (ms) the log is compared with what etcd holds of this node's
 * revocations, so a batch a writer to etcd deleted is written again within about this long.
 */
export const RECONCILE_MS = 5000;

/** The `by` of a revocation another node made of a token issued here (see #adopt). */
const ADOPTED_BY = "cluster";

/** rfc3339 of the last two seconds asked for, made once each (a token's iat and exp). */
class SecondTexts {
  #secs = [NaN, NaN];
  #texts = ["", ""];
  #next = 0;

  /** rfc3339(ms). */
  of(ms: number): string {
    const sec = Math.floor(ms / 1000);
    if (this.#secs[0] === sec) return this.#texts[0];
    if (this.#secs[1] === sec) return this.#texts[1];
    const i = this.#next;
    this.#next = 1 - i;
    this.#secs[i] = sec;
    return (this.#texts[i] = rfc3339(ms));
  }
}

/** What a successful issue returns. */
export interface Issued {
  token: string;
  cap_id: string;
  expires: number;
}

/** Characters of capabilities one identity.list answer carries at most (well within a frame). */
const LIST_MAX_CHARS = 512 * 1024;

/** Filters of identity.list. */
interface ListParams {
  service?: string;
  sub?: string;
  revoked?: boolean;
  limit: number;
}

/** One capability as identity.list returns it. */
export interface Listed extends IssuedRecord {
  revoked: boolean;
  /** The ancestor whose revocation revoked it (absent when it was revoked itself). */
  revoked_via?: string;
}

/** What identity.list returns. */
export interface ListAnswer {
  capabilities: Listed[];
  /** How many matched (more than returned when truncated). */
  total: number;
  truncated?: boolean;
  /** Live records dropped for room since identity started (operator only). */
  dropped?: number;
}

/** What identity is built from. */
export interface IdentityDeps {
  layout: Layout;
  ring: KeyRing;
  revocations: RevocationLog;
  /** The record of issued capabilities, for identity.list. */
  issued: IssuedBook;
  trust: Trust;
  audit: Audit;
  log: Logger;
  /**
   * Cluster mode: writes a signed batch to etcd, resolving once etcd committed
   * it (sources/etcd_revocations.ts); a revoke answers ok only after that.
   */
  publish?: (signed: string, entries: RevokedEntry[]) => Promise<unknown>;
  /** Cluster mode: the cap_ids of this node's revocations in etcd now (read at start). */
  published?: () => Promise<Set<string>>;
  /**
   * Cluster mode: writes this node's key set as pending endorsement to etcd
   * (signed; src/token/endorsement.ts), resolving once etcd committed it.
   */
  offerKeys?: (signed: string) => Promise<unknown>;
  /**
   * Cluster mode: the key ids the node's endorsement in etcd names, read
   * without checking it: only to choose which key signs the pending set.
   */
  endorsedKids?: () => Promise<string[]>;
}

/** identity.revoke's params (see src/api/identity.ts). */
interface RevokeParams {
  cap_id?: string;
  token?: string;
  confirm_root?: boolean;
}

/** What identity.revoke is asked to revoke: its id, lineage (when given a token), expiry, rootness. */
interface RevokeTarget {
  capId: string;
  lineage?: readonly string[];
  expMs: number;
  root: boolean;
}

/** identity.revoke's answer. */
interface RevokeAnswer {
  status: string;
  cap_id: string;
  already?: boolean;
}

/** A revocation waiting for its batch. */
interface Queued {
  entry: RevokedEntry;
  by: string;
  /** The caller's ancestors below the root token, whose quota it also uses. */
  byTree: readonly string[];
  /** The caller to audit the revocation for and answer (absent for one adopted from etcd). */
  caller?: Capability;
  /** Settles once the batch is durable: what #commit returned. */
  done: Promise<RevokeAnswer | undefined>;
  resolve(answer: RevokeAnswer | undefined | Promise<RevokeAnswer>): void;
  reject(err: unknown): void;
}

/** Identity's state and methods. */
export class IdentityService {
  #d: IdentityDeps;
  #issuer: string;
  /** The RFC 3339 texts of the last seconds minted (an issue needs two; a second has thousands). */
  #times = new SecondTexts();
  /** The cap_id of the operator token in the state dir. */
  #operatorCap?: string;
  /** Revocations waiting for the next batch (group commit). */
  #queue: Queued[] = [];
  /** Whether a batch is being formed, signed and fsynced (one at a time). */
  #flushing = false;
  /** Revocations in batches that were formed and not answered yet. */
  #unanswered = 0;
  /**
   * How many revocations are usually under way at once (queued plus in
   * batches): a batch waits until that many are queued, or GATHER_MS.
   */
  #concurrency = 1;
  /** Ends the wait for a full batch (see #kick). */
  #gatherTimer?: ReturnType<typeof setTimeout>;
  /** Whether the wait for a full batch ran out: the next batch goes with what is queued. */
  #gathered = false;
  /** cap_id → settles when its revocation is durable (queued or in a batch). */
  #inFlight = new Map<string, Promise<unknown>>();
  /**
   * Cluster mode: revocations made here whose write to etcd failed, kept in
   * the state dir and written again by {@link retryPublish} until etcd commits them.
   */
  #unpublished = new Map<string, RevokedEntry>();
  /** The retry under way, so at most one is outstanding. */
  #retrying?: Promise<void>;
  /**
   * When the log was last compared with etcd (performance.now): again every
   * {@link RECONCILE_MS}, since a writer to etcd can delete a batch.
   */
  #reconciledAt = -Infinity;
  /** Cluster mode: bumped by each key rotation; the key set offered to etcd is of {@link #offered}. */
  #keysGen = 0;
  #offered = -1;
  /** The offer under way, so at most one is outstanding. */
  #offering?: Promise<boolean>;
  /** Lines appended to the list file since it was last written whole. */
  #appendedLines = 0;
  /** The compaction waiting for revocations to go quiet. */
  #compactTimer?: ReturnType<typeof setTimeout>;
  /** When the last line was appended to the list file (performance.now). */
  #appendedAt = 0;
  /**
   * Full lines of the list file as last written whole, each with the median
   * and the latest expiry of its entries: read back and written again as
   * they are (no signature, no JSON) while at most half their entries have
   * expired and their key is the active one, so a compaction signs only what
   * was revoked since the last, and services skip the lines they have
   * checked already.
   */
  #packed: PackedLine[] = [];
  /** The key #packed was signed with; none: the next write packs every entry. */
  #packedKid?: string;
  /** Entries of the last line written whole, packed again with the next ones. */
  #openLine: RevokedEntry[] = [];
  /** Entries of the batch lines appended since the file was last written whole. */
  #tail: RevokedEntry[] = [];
  /** Whether a compaction runs (a second one would find nothing to do). */
  #compacting = false;
  /** Entries of the batch being fsynced: already in the list file, not yet in the set. */
  #unsynced = new Map<string, RevokedEntry>();
  /** The last whole write of the list file: whole writes go one at a time. */
  #listWrite: Promise<void> = Promise.resolve();
  /**
   * The list file identity wrote last, held open: lines are appended to it
   * and the replaced-line marks it, also when it is no longer at the path
   * (removed or replaced by hand), since the services still read it.
   */
  #listFile?: { file: Deno.FsFile; ino: number };

  constructor(deps: IdentityDeps) {
    this.#d = deps;
    this.#issuer = issuerOf(deps.layout);
    if (deps.publish) {
      this.#loadUnpublished();
      deps.trust.onRevoked((ids) => this.#adopt(ids));
    }
  }

  /**
   * Cluster mode: another node's identity revoked tokens this one issued (it may, given the
   * token). This node honours its own tokens without etcd, so the entries go into this log too:
   * after a restart with etcd out of reach they are still refused here.
   */
  #adopt(ids: string[]): void {
    const mine = new Set(
      ids.filter((id) =>
        this.#d.issued.has(id) && !this.#d.revocations.set.has(id) && !this.#inFlight.has(id)
      ),
    );
    if (mine.size === 0) return;
    for (const e of this.#d.trust.revoked.entries()) {
      if (!mine.has(e.cap_id)) continue;
      this.#d.log.info("revocation of a token issued here, made on another node; recorded", {
        cap_id: e.cap_id,
      });
      this.#commit(e, [], ADOPTED_BY).catch(() => {});
    }
  }

  /**
   * Whether `cap` is this node's operator token (root, issued here). Another node's root token,
   * honoured in cluster mode, is no operator of this identity.
   */
  #isOperator(cap: Capability): boolean {
    return isRoot(cap) && cap.claims.iss === this.#issuer;
  }

  /** Reads the pending etcd writes a previous run left (expired ones are dropped). */
  #loadUnpublished(): void {
    let text: string;
    try {
      text = Deno.readTextFileSync(stateFiles(this.#d.layout).etcdPending);
    } catch {
      return; // None pending.
    }
    const now = Date.now() / 1000;
    try {
      const entries = JSON.parse(text) as unknown;
      if (!Array.isArray(entries)) throw new Error("not a list");
      for (const e of entries) {
        if (isRevokedEntry(e) && e.exp > now) this.#unpublished.set(e.cap_id, e);
      }
    } catch (err) {
      this.#d.log.warn(
        "etcd_pending.json unreadable; its revocations stay local until revoked again",
        {
          error: (err as Error).message,
        },
      );
    }
  }

  /** Writes the pending etcd writes to the state dir (durably: they must outlive a crash). */
  #saveUnpublished(): void {
    const st = stateFiles(this.#d.layout);
    writeFileAtomic(st.etcdPending, JSON.stringify([...this.#unpublished.values()]) + "\n", {
      tmpPath: st.etcdPendingTmp,
      mode: 0o600,
    });
  }

  /** How many revocations made here wait to be written to etcd. */
  get unpublished(): number {
    return this.#unpublished.size;
  }

  /**
   * Cluster mode: writes the revocations whose etcd write failed again, as one
   * signed batch (called every second and at start; at most one at a time).
   */
  retryPublish(): Promise<void> {
    if (!this.#d.publish) return Promise.resolve();
    if (this.#unpublished.size === 0 && (!this.#reconcileDue() || !this.#d.published)) {
      return Promise.resolve();
    }
    this.#retrying ??= this.#retryPublish().finally(() => (this.#retrying = undefined));
    return this.#retrying;
  }

  #reconcileDue(): boolean {
    return performance.now() - this.#reconciledAt >= RECONCILE_MS;
  }

  async #retryPublish(): Promise<void> {
    if (this.#reconcileDue() && this.#d.published) {
      // Every live revocation of the log that etcd lacks is written again.
      const asked = performance.now();
      // etcd out of reach: the unpublished ones below are still tried; compared next time.
      const inEtcd = await this.#d.published().catch(() => undefined);
      let added = 0;
      for (const e of inEtcd ? this.#d.revocations.set.entries() : []) {
        if (!inEtcd!.has(e.cap_id) && !this.#unpublished.has(e.cap_id)) {
          this.#unpublished.set(e.cap_id, e);
          added++;
        }
      }
      if (inEtcd) this.#reconciledAt = asked;
      if (added > 0) {
        this.#saveUnpublished();
        this.#d.log.warn("revocations missing from etcd; writing them", { count: added });
      }
    }
    const now = Date.now() / 1000;
    for (const [id, e] of this.#unpublished) if (e.exp <= now) this.#unpublished.delete(id);
    const entries = [...this.#unpublished.values()].slice(0, LIST_CHUNK);
    if (entries.length === 0) return this.#saveUnpublished();
    const signed = await signRevocationList(this.#d.ring.active, this.#issuer, entries);
    if (await this.#publish(signed, entries)) {
      this.#d.log.info("pending revocations written to etcd", { count: entries.length });
    }
  }

  /** Cluster mode: whether etcd has the key set as it is now, or the endorsement names it all. */
  get keysOffered(): boolean {
    return !this.#d.offerKeys || this.#offered === this.#keysGen;
  }

  /**
   * Cluster mode: publishes the keys this identity signs with, as pending
   * endorsement, in etcd (`/strata/<cluster>/pending_keys/<node>`), signed by
   * the newest of its keys the root already endorses, so other nodes can tell
   * the operator's pending work from a forgery. Nothing is written when the
   * endorsement already names every key. At start, after a rotation, and
   * again by the retry until etcd has it; false when etcd did not take it.
   */
  async offerKeys(): Promise<boolean> {
    if (!this.#d.offerKeys) return true;
    const gen = this.#keysGen;
    // An offer under way may be of the key set before a rotation: then offer again.
    while (this.#offered < gen) {
      this.#offering ??= this.#offerKeys().finally(() => (this.#offering = undefined));
      if (!await this.#offering) return false;
    }
    return true;
  }

  async #offerKeys(): Promise<boolean> {
    const gen = this.#keysGen;
    const now = Date.now();
    const keys = this.#d.ring.publicDocument(this.#issuer).keys
      .filter((k) => k.not_after === undefined || Date.parse(k.not_after) >= now)
      .map((k) => ({ kid: k.kid, public: k.public }));
    try {
      const endorsed = await this.#d.endorsedKids!();
      if (!keys.every((k) => endorsed.includes(k.kid))) {
        // Signed by a key the root endorses; without one, by the active key, which other
        // nodes ignore (the node's first endorsement is cluster join's, on the node).
        const signer = this.#d.ring.signingKeyAmong(endorsed) ?? this.#d.ring.active;
        await this.#d.offerKeys!(signPendingKeys(signer, {
          cluster: this.#d.layout.cluster!.name,
          node: this.#d.layout.nodeId,
          keys,
        }));
        this.#d.log.info("key set published in etcd for endorsement", {
          kids: keys.map((k) => k.kid),
          signed_by: signer.kid,
        });
      }
      this.#offered = gen;
      return true;
    } catch (err) {
      this.#d.log.warn("key set not published in etcd; retrying", {
        error: (err as Error).message,
      });
      return false;
    }
  }

  /** Writes the public key set to identity.pub (atomically). */
  publishKeys(): void {
    const rt = runtimeFiles(this.#d.layout);
    writeFileAtomic(
      rt.identityPub,
      JSON.stringify(this.#d.ring.publicDocument(this.#issuer), null, 2) + "\n",
      { tmpPath: rt.identityPubTmp, mode: 0o644, durable: false },
    );
  }

  /**
   * Writes every live revocation to the runtime dir's list file, signed in
   * lines of LIST_CHUNK entries (at start, after a key rotation, and to
   * compact it), dropping entries whose tokens have expired. One write at a
   * time, so a line signed by a key older than the rotation's never lands
   * after it.
   */
  async publishRevocations(): Promise<void> {
    const next = this.#listWrite.then(() => this.#writeList());
    this.#listWrite = next.catch(() => {});
    await next;
  }

  // Signing is synchronous: no batch can append its line to the file being
  // replaced while the whole list is signed and written.
  #writeList(): Promise<void> {
    this.#rewriteListNow();
    return Promise.resolve();
  }

  /**
   * Replaces the list file with `text` and holds the new one open. Services
   * hold the file open and read what is appended: the replaced-line tells
   * them, in the same synchronous step, that the path names a new file.
   */
  #replaceList(text: string | Uint8Array): void {
    const rt = runtimeFiles(this.#d.layout);
    this.#markReplaced(rt.revocations);
    writeFileAtomic(rt.revocations, text, {
      tmpPath: rt.revocationsTmp,
      mode: 0o600,
      durable: false,
    });
    this.#listFile?.file.close();
    this.#listFile = undefined;
    // Read too: the full lines are read back from it at the next compaction.
    const file = Deno.openSync(rt.revocations, { read: true, append: true });
    this.#listFile = { file, ino: file.statSync().ino ?? -1 };
    // Every line appended before this (synchronous) write is in it.
    this.#appendedLines = 0;
  }

  /**
   * Writes the list file whole at once (signed without a promise): every
   * live entry and those of the batch being fsynced, whose line is in the
   * file already; at least one line (an empty list, signed, says "nothing is
   * revoked"); the entries of expired tokens left out, but for those that
   * share a line kept as it was with live ones. Entries are packed in order
   * of expiry, so a line's entries mostly expire together.
   */
  #rewriteListNow(): void {
    const set = this.#d.revocations.set;
    const nowMs = Date.now();
    set.prune(nowMs);
    const key = this.#d.ring.active;
    const live = (e: RevokedEntry) => e.exp * 1000 >= nowMs;
    // Kept lines, read back from the file identity holds, as bytes: copied
    // into the new file as they are (decoding, joining and encoding again
    // the 2.6 MB of 70 full lines took 3.0-4.8 ms, copying them 1.0).
    let kept: { line: PackedLine; bytes: Uint8Array }[] = [];
    let pool: RevokedEntry[] | undefined;
    if (this.#packedKid === key.kid && this.#listFile) {
      try {
        pool = [];
        for (const line of this.#packed) {
          if (line.maxExp * 1000 < nowMs) continue;
          const bytes = readAtSync(this.#listFile.file, line.offset, line.length);
          if (sha256Hex(bytes) !== line.sha256) throw new Error("a line changed in place");
          if (line.medianExp * 1000 >= nowMs) kept.push({ line, bytes });
          else {
            for (const e of ownListEntries(decoder.decode(bytes).trimEnd())) {
              if (live(e)) pool.push(e);
            }
          }
        }
        // What the set or the batch being written holds, as the full pack:
        // the entries of a batch that failed leave the file again.
        const seen = new Set<string>();
        for (const e of [...this.#openLine, ...this.#tail, ...this.#unsynced.values()]) {
          const held = set.has(e.cap_id) || this.#unsynced.has(e.cap_id);
          if (held && live(e) && !seen.has(e.cap_id)) {
            seen.add(e.cap_id);
            pool.push(e);
          }
        }
      } catch (err) {
        // The set has every entry: packed anew from it.
        this.#d.log.warn("revocation list packed anew", { error: (err as Error).message });
        kept = [];
        pool = undefined;
      }
    }
    // The whole set (at start: every live revocation) as packed, with no object per entry.
    const all = pool ?? (this.#unsynced.size === 0 ? set.packed() : undefined) ??
      [...set.entries(), ...[...this.#unsynced.values()].filter((e) => !set.has(e.cap_id))];
    const asPacked = all instanceof PackedEntries ? all : PackedEntries.of(all);
    const sorted = asPacked?.sortedByExpiry() ??
      (all as RevokedEntry[]).sort((a, b) => a.exp - b.exp);
    const expAt = (i: number) => sorted instanceof PackedEntries ? sorted.exps[i] : sorted[i].exp;
    const lines = kept;
    let open: RevokedEntry[] = [];
    for (let i = 0; i < sorted.length; i += LIST_CHUNK) {
      const end = Math.min(i + LIST_CHUNK, sorted.length);
      const chunk = sorted.slice(i, end);
      if (end - i < LIST_CHUNK) open = chunk instanceof PackedEntries ? chunk.toArray() : chunk;
      else {
        const bytes = encoder.encode(signRevocationListNow(key, this.#issuer, chunk, true) + "\n");
        const line = { offset: 0, length: bytes.length, sha256: sha256Hex(bytes) };
        lines.push({
          line: { ...line, medianExp: expAt(i + (LIST_CHUNK >> 1)), maxExp: expAt(end - 1) },
          bytes,
        });
      }
    }
    // New records: #packed keeps describing the file held if the replace fails.
    let offset = 0;
    const packed = lines.map((l) => {
      const at = offset;
      offset += l.bytes.length;
      return { ...l.line, offset: at };
    });
    const last = open.length > 0 || lines.length === 0
      ? encoder.encode(signRevocationListNow(key, this.#issuer, open, true) + "\n")
      : new Uint8Array(0);
    const whole = new Uint8Array(offset + last.length);
    for (let i = 0; i < lines.length; i++) whole.set(lines[i].bytes, packed[i].offset);
    whole.set(last, offset);
    this.#replaceList(whole);
    this.#packed = packed;
    this.#packedKid = key.kid;
    this.#openLine = open;
    this.#tail = [];
  }

  /**
   * Writes the list file whole again when the path no longer names the one
   * identity holds (removed or replaced by hand), so a service that starts
   * meanwhile still reads every revocation; identity/main.ts calls it every
   * second.
   */
  keepListFile(): void {
    const path = runtimeFiles(this.#d.layout).revocations;
    try {
      if (!this.#listFile || this.#listIntact(path)) return;
    } catch {
      return; // not to be looked at now: the next append finds out too
    }
    this.#d.log.warn("revocation list file removed or replaced; written whole again", { path });
    void this.publishRevocations().catch((err) =>
      this.#d.log.warn("revocation list not written", { error: (err as Error).message })
    );
  }

  /** Whether the path still names the list file identity holds. */
  #listIntact(path: string): boolean {
    if (!this.#listFile) return false;
    try {
      return Deno.statSync(path).ino === this.#listFile.ino;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  }

  /**
   * Counts a line appended to the list file and compacts the file when it
   * has grown by COMPACT_AFTER_LINES, or once revocations go quiet.
   */
  #countAppended(): void {
    this.#appendedLines++;
    this.#appendedAt = performance.now();
    if (this.#appendedLines >= COMPACT_AFTER_LINES) {
      clearTimeout(this.#compactTimer);
      this.#compactTimer = undefined;
      void this.#compact();
    } else if (this.#appendedLines >= COMPACT_IDLE_LINES && this.#compactTimer === undefined) {
      this.#awaitQuiet(COMPACT_IDLE_MS);
    }
  }

  /**
   * Compacts once no line was appended for COMPACT_IDLE_MS: one timer that,
   * when it fires early, waits out the rest (clearing and setting a timer on
   * every append cost 4-5 µs a batch).
   */
  #awaitQuiet(ms: number): void {
    this.#compactTimer = setTimeout(() => {
      this.#compactTimer = undefined;
      const quiet = performance.now() - this.#appendedAt;
      if (quiet < COMPACT_IDLE_MS) this.#awaitQuiet(COMPACT_IDLE_MS - quiet);
      else if (this.#appendedLines >= COMPACT_IDLE_LINES) void this.#compact();
    }, ms);
    Deno.unrefTimer(this.#compactTimer as unknown as number);
  }

  async #compact(): Promise<void> {
    if (this.#compacting) return;
    this.#compacting = true;
    try {
      await this.publishRevocations();
    } catch (err) {
      // The appended lines stay valid; the next append tries again.
      this.#d.log.warn("revocation list not compacted", { error: (err as Error).message });
    } finally {
      this.#compacting = false;
    }
  }

  /**
   * Appends the replaced-line to the list file about to be replaced, so a
   * service reading it opens the path again. A service that reads it before
   * the rename keeps reading this file and looks at the path before every
   * request until it names another (also when identity stops in between).
   */
  #markReplaced(path: string): void {
    // Each line identity appends starts with a newline too, so a line torn
    // by a failed write before it cannot swallow it.
    const marker = new TextEncoder().encode(`\n${LIST_REPLACED_LINE}\n`);
    if (this.#listFile) return writeAllSync(this.#listFile.file, marker);
    // At start: the file a previous identity wrote, if any.
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { append: true });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return; // the first list of this runtime dir
      throw err;
    }
    try {
      writeAllSync(file, marker);
    } finally {
      file.close();
    }
  }

  /**
   * Appends one signed revocation to the list file (one line). When the file
   * identity holds is no longer at the path (removed or replaced by hand),
   * the file is written whole first, so both the services that read the old
   * one (they meet its replaced-line) and any that start now see every
   * revocation.
   */
  #appendRevocation(signed: string, entries: readonly RevokedEntry[]): void {
    const path = runtimeFiles(this.#d.layout).revocations;
    if (!this.#listIntact(path)) {
      if (this.#listFile) {
        this.#d.log.warn("revocation list file removed or replaced; written whole again", { path });
      }
      this.#rewriteListNow();
    }
    writeAllSync(this.#listFile!.file, encoder.encode(`\n${signed}\n`));
    for (const e of entries) this.#tail.push(e);
    this.#countAppended();
  }

  /** Stops the compaction timer and closes the list file (at stop). */
  close(): Promise<void> {
    clearTimeout(this.#compactTimer);
    this.#listFile?.file.close();
    this.#listFile = undefined;
    return Promise.resolve();
  }

  /**
   * Signs, records and audits one capability. Synchronous, like the signature:
   * an issue answered without a promise also skips the server's per-request timer.
   */
  #mint(
    body: Omit<Claims, "jti" | "iss" | "aud" | "iat" | "nbf" | "exp">,
    expMs: number,
    now: number,
    jti: string = this.#d.ring.newCapId(expMs, {
      root: body.service === ANY_SERVICE && body.parent === undefined,
    }),
  ): Issued {
    const issued = this.#times.of(now);
    const claims: Claims = {
      jti,
      iss: this.#issuer,
      aud: audienceOf(this.#d.layout),
      iat: issued,
      nbf: issued,
      exp: this.#times.of(expMs),
      ...body,
    };
    this.#d.ring.coverExpiry(expMs);
    const token = signV4Public(this.#d.ring.active, claims);
    this.#d.issued.add({
      cap_id: jti,
      sub: body.sub,
      service: body.service,
      rights: body.rights,
      ...(body.constraints.path_prefix !== undefined
        ? { path_prefix: body.constraints.path_prefix }
        : {}),
      ...(body.constraints.rate_limit !== undefined
        ? { rate_limit: body.constraints.rate_limit }
        : {}),
      iat: Math.floor(now / 1000),
      exp: Math.floor(expMs / 1000),
      ...(body.parent !== undefined ? { parent: body.parent } : {}),
      chain: body.chain ?? [],
    });
    this.#d.audit.event("cap.issued", {
      cap_id: jti,
      parent: body.parent,
      sub: body.sub,
      service: body.service,
      rights: body.rights,
      exp: claims.exp,
    });
    return { token, cap_id: jti, expires: Math.floor(expMs / 1000) };
  }

  /**
   * Makes sure the state dir holds a usable operator token (every right, no
   * constraints), minting one on first start or when it is revoked, expiring
   * or signed by a key that is gone.
   */
  async ensureOperatorToken(): Promise<void> {
    const st = stateFiles(this.#d.layout);
    const now = Date.now();
    try {
      const cap = await this.#d.trust.verifier.verify(
        (await Deno.readTextFile(st.operatorToken)).trim(),
      );
      checkCapability(cap, undefined, { service: "identity", revoked: this.#d.revocations.set });
      if (cap.claims.service === ANY_SERVICE && cap.expMs - now > OPERATOR_RENEW_MS) {
        this.#operatorCap = cap.capId;
        // Minted before identity kept a record of what it issued: list it too.
        if (!this.#d.issued.has(cap.capId)) {
          this.#d.issued.add({
            cap_id: cap.capId,
            sub: cap.claims.sub,
            service: cap.claims.service,
            rights: cap.claims.rights,
            iat: Math.floor(Date.parse(cap.claims.iat) / 1000),
            exp: Math.floor(cap.expMs / 1000),
            chain: [],
          });
        }
        return;
      }
    } catch {
      // Missing, unreadable, revoked or signed by a dropped key: mint anew.
    }
    const rights = allRights();
    const issued = this.#mint(
      {
        sub: "operator",
        service: ANY_SERVICE,
        actions: [],
        rights,
        constraints: {},
      },
      now + OPERATOR_TTL_MS,
      now,
    );
    writeFileAtomic(st.operatorToken, issued.token + "\n", {
      tmpPath: st.operatorTokenTmp,
      mode: 0o600,
    });
    this.#operatorCap = issued.cap_id;
    this.#d.log.info("operator token written", { path: st.operatorToken, cap_id: issued.cap_id });
  }

  /** The methods identity serves (declared in src/api/identity.ts). */
  methods(): Method<Capability>[] {
    return bindMethods<Capability>(IDENTITY_METHODS, {
      "identity.issue": { handler: (p, ctx) => this.#issue(p, ctx.cap!) },
      "identity.revoke": {
        handler: (p: RevokeParams, ctx) => this.#revoke(p, ctx.cap!),
      },
      "identity.introspect": { handler: (p: { token: string }) => this.#introspect(p.token) },
      "identity.rotate_key": { handler: (_p, ctx) => this.#rotate(ctx.cap!) },
      "identity.list": {
        cost: () => MAX_FRAME,
        handler: (p: ListParams, ctx) => this.#list(p, ctx.cap!),
      },
      "identity.keys": { handler: () => this.#d.ring.publicDocument(this.#issuer) },
    });
  }

  #issue(
    p: {
      service: string;
      actions?: string[];
      rights?: string[];
      path_prefix?: string;
      ttl_seconds?: number;
      rate_limit?: string;
      sub?: string;
    },
    parent: Capability,
  ): Issued {
    if (parent.claims.iss !== this.#issuer) {
      // A delegation is minted by the identity that issued the parent: it keeps the record of
      // the tree (identity.list) and the tree's revocation quota.
      const node = parent.claims.iss.replace(/^identity@/, "");
      throw permissionDenied(
        `identity.issue: your token was issued by ${parent.claims.iss}, not ${this.#issuer}; ` +
          `a token is delegated by the identity that issued it: call identity.issue on node ` +
          `${node} (tokens it mints are honoured on every node of the cluster)`,
        { reason: "foreign_issuer", issuer: parent.claims.iss },
      );
    }
    const now = Date.now();
    const rights = resolveRights(p);
    // The cap_id seals the expiry, known only after attenuate: a stand-in first.
    const pending = "0".repeat(32);
    const grant = attenuate(parent, {
      cap_id: pending,
      service: p.service,
      rights,
      path_prefix: p.path_prefix,
      rate_limit: p.rate_limit,
      ttl_seconds: p.ttl_seconds,
    }, now);
    if (parent.lineage.length > MAX_CHAIN) {
      throw permissionDenied(
        `delegation is limited to ${MAX_CHAIN} levels; issue from a shallower token`,
        { reason: "broader_than_parent", field: "depth" },
      );
    }
    const capId = this.#d.ring.newCapId(grant.expMs);
    const constraints: Constraints = grant.constraints;
    if (constraints.rate_buckets) {
      constraints.rate_buckets = constraints.rate_buckets.map((b) =>
        b.cap_id === pending ? { ...b, cap_id: capId } : b
      );
    }
    const prefix = grant.service === ANY_SERVICE ? undefined : `${grant.service}.`;
    return this.#mint(
      {
        sub: p.sub ?? parent.claims.sub,
        service: grant.service,
        actions: rights.map((r) => (prefix && r.startsWith(prefix) ? actionOf(r) : r)),
        rights,
        constraints,
        parent: parent.capId,
        chain: parent.lineage,
      },
      grant.expMs,
      now,
      capId,
    );
  }

  /**
   * Revokes a capability. The operator token may revoke any cap_id; any other
   * holder of identity.revoke only its own capability or ones delegated from
   * it, which it shows by passing the token (so its lineage can be read).
   * Answers only once the revocation is durable and every running service
   * has applied it, for a repeat as for the first call.
   */
  #revoke(
    p: RevokeParams,
    by: Capability,
  ): RevokeAnswer | Promise<RevokeAnswer> {
    if (p.token !== undefined) return this.#revokeToken(p, p.token, by);
    const now = Date.now();
    let target: RevokeTarget;
    if (p.cap_id !== undefined) {
      const sealed = this.#d.ring.openCapId(p.cap_id, now);
      if (sealed === undefined) {
        throw notFound(
          `params.cap_id: ${p.cap_id} was never issued by this node's identity, so nothing ` +
            "was revoked; check the id (strata-ctl token inspect shows a token's cap_id)" +
            (this.#d.layout.cluster
              ? "; to revoke another node's token here, pass the token itself (params.token)"
              : ""),
          { reason: "never_issued" },
        );
      }
      const root = sealed.root || p.cap_id === this.#operatorCap;
      target = { capId: p.cap_id, expMs: sealed.expMs, root };
    } else {
      throw invalidArgument("params: give cap_id, or the token to revoke");
    }
    return this.#revokeTarget(p, by, target, now);
  }

  /** #revoke of a token given whole (params.token): its lineage is read from it. */
  async #revokeToken(p: RevokeParams, token: string, by: Capability): Promise<RevokeAnswer> {
    const now = Date.now();
    let cap: Capability;
    try {
      cap = await this.#d.trust.verifier.verify(token);
    } catch (err) {
      throw invalidArgument(
        `params.token: not a token this node trusts (${(err as Error).message})`,
      );
    }
    if (p.cap_id !== undefined && p.cap_id !== cap.capId) {
      throw invalidArgument(`params.cap_id: the token's cap_id is ${cap.capId}, not ${p.cap_id}`);
    }
    const root = isRoot(cap);
    if (root && cap.claims.iss !== this.#issuer) {
      // Its own identity writes a new operator token when it is revoked; this one cannot.
      throw permissionDenied(
        `params.token: ${cap.capId} is the root operator capability of ${cap.claims.iss}; ` +
          "revoke it on that node (its identity then writes a new operator token)",
        { reason: "foreign_root" },
      );
    }
    const target = { capId: cap.capId, lineage: cap.lineage, expMs: cap.expMs, root };
    return await this.#revokeTarget(p, by, target, now);
  }

  /**
   * The rest of #revoke, once the target is known: the caller's right to it,
   * the quotas, then the batch. Synchronous up to the batch (a revoke by
   * cap_id makes one promise step of its own, not an async function's).
   */
  #revokeTarget(
    p: RevokeParams,
    by: Capability,
    target: RevokeTarget,
    now: number,
  ): RevokeAnswer | Promise<RevokeAnswer> {
    const root = this.#isOperator(by);
    if (!root && target.capId !== by.capId && !target.lineage?.includes(by.capId)) {
      throw permissionDenied(
        target.lineage
          ? `capability ${target.capId} was not delegated from yours (${by.capId})`
          : "params.cap_id: you may revoke only your own capability or ones delegated from it; " +
            "pass the token itself (params.token) so its lineage can be checked",
        { reason: "not_in_your_tree" },
      );
    }
    if (target.expMs <= now) {
      throw notFound(
        `${p.token !== undefined ? "params.token" : "params.cap_id"}: capability ` +
          `${target.capId} expired at ${rfc3339(target.expMs)}; no service accepts it, ` +
          "so there is nothing to revoke",
        { reason: "expired" },
      );
    }
    if (target.root && p.confirm_root !== true) {
      throw invalidArgument(
        `params.confirm_root: ${target.capId} is the node's root operator capability; revoking ` +
          "it revokes every token delegated from it (every token of the node) and identity " +
          "writes a new operator token. Pass confirm_root: true (strata-ctl token revoke " +
          "--force) if that is what you mean",
        { reason: "confirm_root" },
      );
    }
    const capId = target.capId;
    const waiting = this.#inFlight.get(capId);
    if (waiting) {
      // A revocation of the same id is under way: answer once it is in effect.
      return waiting.then(
        () => ({ status: "revoked", cap_id: capId, already: true }),
        // That one failed: this caller tries again (and hears its own outcome).
        () => this.#revokeTarget(p, by, target, now),
      );
    } else if (this.#d.revocations.set.has(capId) && !this.#unpublished.has(capId)) {
      return { status: "revoked", cap_id: capId, already: true };
    }
    // Keep the entry until no token with this id can still be valid.
    const entry = { cap_id: capId, exp: Math.ceil(target.expMs / 1000) };
    // A delegated caller's revocations count against every ancestor below the
    // root token too, so a tree shares one quota; the last revocations are
    // kept for the operator, so its revoke is never refused for lack of room.
    const tree = by.lineage.length > 1 ? by.lineage.slice(1) : [by.capId];
    if (!root) {
      for (const id of tree) {
        const used = this.#d.revocations.countBy(id);
        if (used >= MAX_REVOCATIONS_PER_CALLER) {
          throw new StrataError(
            "RESOURCE_EXHAUSTED",
            `the delegation tree of capability ${id} already has ${used} live revocations, ` +
              "the most one may; they go as the tokens they name expire",
          );
        }
      }
    }
    const room = root ? MAX_LIVE_REVOCATIONS : MAX_LIVE_REVOCATIONS - OPERATOR_RESERVED_REVOCATIONS;
    if (this.#d.revocations.set.size >= room) {
      throw new StrataError(
        "RESOURCE_EXHAUSTED",
        `${this.#d.revocations.set.size} revocations are live, the most identity keeps` +
          (root ? "" : " for delegated tokens (the rest is the operator's)") +
          "; they go as the tokens they name expire",
      );
    }
    return this.#commit(entry, tree, by) as Promise<RevokeAnswer>;
  }

  /** Audits a revocation that is durable and in effect, and makes its answer. */
  #revoked(capId: string, by: Capability): RevokeAnswer | Promise<RevokeAnswer> {
    this.#d.audit.event("cap.revoked", { cap_id: capId, by: by.capId });
    const answer: RevokeAnswer = { status: "revoked", cap_id: capId };
    if (capId === this.#operatorCap) {
      // The operator revoked its own token (and with it every token delegated
      // from it): write a new one at once rather than lock the operator out.
      return this.ensureOperatorToken().then(() => answer);
    }
    return answer;
  }

  /**
   * Queues a revocation for the next batch and resolves once that batch is
   * durable and in the list file: with the audited answer for `caller` (from
   * #settle, no promise step of its own), or undefined for a revocation
   * adopted from another node (`by` is then its `by`). A repeat of the same
   * id meanwhile waits on the same promise.
   */
  #commit(
    entry: RevokedEntry,
    byTree: readonly string[],
    caller: Capability | string,
  ): Promise<RevokeAnswer | undefined> {
    const { promise, resolve, reject } = Promise.withResolvers<RevokeAnswer | undefined>();
    const cap = typeof caller === "string" ? undefined : caller;
    this.#queue.push({
      entry,
      by: cap ? cap.capId : caller as string,
      byTree,
      caller: cap,
      done: promise,
      resolve,
      reject,
    });
    this.#inFlight.set(entry.cap_id, promise);
    this.#concurrency = Math.min(
      MAX_GATHER,
      Math.max(this.#concurrency, this.#queue.length + this.#unanswered),
    );
    this.#kick();
    return promise;
  }

  /**
   * Starts the next batch once every revocation usually under way is queued
   * (the callers of the batch before come back together), or once GATHER_MS
   * has passed; two groups of callers that each wait for the other's batch
   * thus merge into one batch, one signature, one list line and one fsync.
   */
  #kick(): void {
    if (this.#flushing || this.#queue.length === 0) return;
    if (this.#queue.length >= this.#concurrency || this.#gathered) {
      clearTimeout(this.#gatherTimer);
      this.#gatherTimer = undefined;
      this.#gathered = false;
      void this.#flush();
    } else if (this.#gatherTimer === undefined) {
      this.#gatherTimer = setTimeout(() => {
        this.#gatherTimer = undefined;
        this.#gathered = true;
        // Fewer callers than before: expect as many as are under way now.
        this.#concurrency = Math.max(1, this.#queue.length + this.#unanswered);
        this.#kick();
      }, GATHER_MS);
    }
  }

  /**
   * Group commit: the revocations queued go out together, with one
   * signature, one line in the list file and one fsync of the log. The log's
   * lines are written and their fsync started first, and the line is signed
   * and appended to the list file while the disk works (a revocation in the
   * log before the list only errs on the safe side: identity writes the list
   * whole from the log at its next start); each is answered once both are
   * done, and every service reads the list file's new lines before it judges
   * a request, so each request that arrives after the answer is judged with
   * the revocation.
   */
  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      // Let the requests already read in this turn of the event loop join the
      // batch, unless every revocation usually under way is queued already.
      if (this.#queue.length < this.#concurrency) {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const batch = this.#queue.splice(0);
      this.#unanswered += batch.length;
      // Every entry is sent, also one the log already had (a retry after a
      // batch that failed past its fsync).
      const entries = batch.map((q) => q.entry);
      let signed = "";
      for (const e of entries) this.#unsynced.set(e.cap_id, e);
      try {
        await this.#d.revocations.appendAll(batch, {
          // In the list file before the answer: the services read it before each request.
          beside: () => {
            signed = signRevocationListNow(this.#d.ring.active, this.#issuer, entries);
            this.#appendRevocation(signed, entries);
          },
        });
        // Cluster mode: the set identity judges tokens by is its own (etcd feeds it too).
        if (this.#d.trust.revoked !== this.#d.revocations.set) this.#d.trust.revoked.add(entries);
      } catch (err) {
        // Not durable, or not in the list file: the callers hear the error.
        // Services that read the line refuse the token until they restart
        // (their set only adds), and a log that has it makes it revoked at
        // identity's next start: both on the safe side.
        this.#settle(batch, err);
        return;
      } finally {
        for (const e of entries) this.#unsynced.delete(e.cap_id);
      }
      void this.#spread(batch, signed);
    } finally {
      this.#flushing = false;
      this.#kick();
    }
  }

  /** Answers a batch's callers: that it is done, or with the error. */
  #settle(batch: Queued[], outcome?: unknown, ok = false): void {
    this.#unanswered -= batch.length;
    for (const q of batch) {
      // The id leaves #inFlight before any waiter runs.
      if (this.#inFlight.get(q.entry.cap_id) === q.done) this.#inFlight.delete(q.entry.cap_id);
      if (!ok) q.reject(outcome);
      else if (!q.caller) q.resolve(undefined);
      else {
        try {
          q.resolve(this.#revoked(q.entry.cap_id, q.caller));
        } catch (err) {
          q.reject(err);
        }
      }
    }
  }

  /**
   * Finishes a durable batch: answers its callers, in cluster mode once etcd
   * has committed it too.
   */
  async #spread(batch: Queued[], signed: string): Promise<void> {
    if (!this.#d.publish) return this.#settle(batch, undefined, true);
    try {
      if (!await this.#publish(signed, batch.map((q) => q.entry))) {
        throw new StrataError(
          "UNAVAILABLE",
          "etcd: the revocation is in effect on this node but could not be written to etcd, " +
            "so other nodes may still honour the token until it is: identity keeps writing it " +
            "to etcd (at least once a second, also after a restart); check etcd",
          { reason: "etcd_unreachable" },
        );
      }
      this.#settle(batch, undefined, true);
    } catch (err) {
      this.#settle(batch, err);
    }
  }

  /** Writes a batch to etcd (cluster mode); false when etcd did not commit it. */
  async #publish(signed: string, entries: RevokedEntry[]): Promise<boolean> {
    if (!this.#d.publish) return true;
    try {
      await this.#d.publish(signed, entries);
      let changed = false;
      for (const e of entries) changed = this.#unpublished.delete(e.cap_id) || changed;
      if (changed) this.#saveUnpublished();
      return true;
    } catch (err) {
      let changed = false;
      for (const e of entries) {
        if (!this.#unpublished.has(e.cap_id)) {
          this.#unpublished.set(e.cap_id, e);
          changed = true;
        }
      }
      // Durable before the caller hears UNAVAILABLE: the retry survives a restart.
      if (changed) this.#saveUnpublished();
      this.#d.log.warn("revocation not written to etcd", { error: (err as Error).message });
      return false;
    }
  }

  /**
   * The live capabilities identity issued: every one for the operator token,
   * otherwise the caller's own and those delegated from it. Newest first.
   */
  #list(p: ListParams, by: Capability): ListAnswer {
    const root = this.#isOperator(by);
    const revoked = this.#d.revocations.set;
    const matched: Listed[] = [];
    for (const r of this.#d.issued.list({ tree: root ? undefined : by.capId }).reverse()) {
      if (p.service !== undefined && r.service !== p.service) continue;
      if (p.sub !== undefined && r.sub !== p.sub) continue;
      const via = revoked.revokedIn([...r.chain, r.cap_id]);
      if (p.revoked !== undefined && p.revoked !== (via !== undefined)) continue;
      matched.push({
        ...r,
        revoked: via !== undefined,
        ...(via !== undefined && via !== r.cap_id ? { revoked_via: via } : {}),
      });
    }
    const capabilities: Listed[] = [];
    let chars = 0;
    for (const c of matched) {
      if (capabilities.length >= p.limit) break;
      chars += JSON.stringify(c).length;
      if (chars > LIST_MAX_CHARS) break;
      capabilities.push(c);
    }
    return {
      capabilities,
      total: matched.length,
      ...(matched.length > capabilities.length ? { truncated: true } : {}),
      ...(root && this.#d.issued.dropped > 0 ? { dropped: this.#d.issued.dropped } : {}),
    };
  }

  async #introspect(token: string) {
    let cap: Capability;
    try {
      cap = await this.#d.trust.verifier.verify(token);
    } catch (err) {
      return { valid: false, reason: (err as { reason?: string }).reason ?? "malformed" };
    }
    try {
      // The trust's set: this node's revocations and, in cluster mode, every node's from etcd.
      const { revoked, cannotVouch } = this.#d.trust.authContext;
      checkCapability(cap, undefined, { service: "identity", revoked, cannotVouch });
      if (revoked !== this.#d.revocations.set) {
        checkCapability(cap, undefined, { service: "identity", revoked: this.#d.revocations.set });
      }
    } catch (err) {
      const reason = (err as { details?: { reason?: string } }).details?.reason ?? "invalid";
      return { valid: false, reason, claims: cap.claims };
    }
    return { valid: true, claims: cap.claims };
  }

  async #rotate(by: Capability) {
    // The operator token is the root: service "*" and no parent. A delegated
    // token may carry the right, but rotating the node's key is not delegable.
    if (!this.#isOperator(by)) {
      throw permissionDenied("identity.rotate_key: only the operator token may rotate the key", {
        reason: "not_operator",
      });
    }
    // The key set naming the new key is published in the same synchronous
    // step that makes it active: no token it signs is handed out before.
    const { previous, previousNotAfter } = await this.#d.ring.rotate(Date.now(), {
      publish: () => this.publishKeys(),
    });
    this.#keysGen++;
    await this.publishRevocations();
    // The operator token is not replaced: the old key keeps verifying it, and
    // a second root token would stay valid beside it.
    // Services learn the new key from the list file written whole with it
    // (and from any token it signs), when they next read either.
    const offered = await this.offerKeys();
    this.#d.audit.event("key.rotated", { kid: this.#d.ring.active.kid, previous, by: by.capId });
    return {
      kid: this.#d.ring.active.kid,
      previous,
      previous_valid_until: rfc3339(previousNotAfter),
      // Cluster mode: other nodes honour the new key once the operator endorses it.
      ...(this.#d.offerKeys
        ? {
          pending_endorsement: {
            published: offered,
            endorse: `strata-ctl cluster endorse ${this.#d.layout.nodeId}`,
          },
        }
        : {}),
    };
  }
}
