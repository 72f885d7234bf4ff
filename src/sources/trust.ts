/**
 * Everything a service needs to judge tokens on its own: the key set, the
 * revocations it knows of, and the verifier with its cache, each fed from a
 * source. Today's sources are the files identity publishes in the runtime
 * dir: the list file is caught up with before each authorization (a read at
 * its end), the key set when a token names a key not loaded. The verify and
 * revokedIn of the hot path read only memory.
 * @module
 */

import { audienceOf, issuerOf, type Layout, runtimeFiles } from "../runtime/config.ts";
import { type Clock, systemClock } from "../runtime/clock.ts";
import type { KeyLookup } from "../token/key_set.ts";
import { RevocationSet } from "../token/revocation_set.ts";
import { TokenVerifier } from "../token/verifier.ts";
import { FileKeySetSource, KeySetLookup, type KeySetSource } from "./key_set.ts";
import { type CatchingUpRevocationSource, FileRevocationSource } from "./revocations.ts";

/** Options for {@link Trust}. */
export interface TrustOptions {
  /** Where the key set comes from (default identity.pub in the runtime dir). */
  keySource?: KeySetSource;
  /**
   * Where revocations come from (default the signed list file in the runtime
   * dir, checked with this trust's keys).
   */
  revocationSource?: CatchingUpRevocationSource;
  /** When revoked entries may be pruned (default {@link systemClock}). */
  clock?: Clock;
  /** Cluster mode: the other issuers accepted, kept current by the key source. */
  issuers?: ReadonlySet<string>;
  /** Cluster mode: why tokens of `issuer` cannot be vouched for now (see policy/authorize). */
  cannotVouch?: (issuer: string) => string | undefined;
}

/**
 * Verified tokens each service keeps. An entry (token text and its parsed
 * claims) held about 1.7 KB: fs held 6.8 MB of heap for 4,096 after a burst
 * of first uses, and after the bench's load and 15 s idle it was 8.5 MB
 * smaller (PSS, one run) with 1,024. A token past it is verified again (~35 µs).
 */
const VERIFIED_CACHE_SIZE = 1024;

/** A listener's `wants()`, on the safe side: one that throws wants the ids (its entries are merged either way). */
function wantsIds(wants: () => boolean): boolean {
  try {
    return wants();
  } catch {
    return true;
  }
}

/** A service's local view of what identity has signed and revoked. */
export class Trust {
  /** "identity@<node_id>": the issuer tokens and revocation lists must name. */
  readonly issuer: string;
  /** The key lookup the verifier uses, fed by the key set source. */
  readonly keys: KeySetLookup;
  /** The revoked capabilities, in memory, fed by the revocation source. */
  readonly revoked: RevocationSet;
  /** Verifies tokens against the keys (with its cache). */
  readonly verifier: TokenVerifier;
  #revocations: CatchingUpRevocationSource;
  #onRevoked?: { fn: (ids: string[]) => void; wants: () => boolean };
  #clock: Clock;
  #source: KeySetSource;
  #cannotVouch?: (issuer: string) => string | undefined;

  /**
   * Identity passes its own key ring and revocation set; every other service
   * reads what identity publishes in the runtime dir.
   */
  constructor(
    layout: Layout,
    own?: { keys: KeyLookup; revoked: RevocationSet },
    options: TrustOptions = {},
  ) {
    this.#clock = options.clock ?? systemClock;
    const rt = runtimeFiles(layout);
    this.issuer = issuerOf(layout);
    const source = options.keySource ?? new FileKeySetSource(rt.identityPub);
    source.subscribe(() => this.verifier.clearCache());
    this.keys = new KeySetLookup(source);
    this.revoked = own?.revoked ?? new RevocationSet();
    const lookup = own?.keys ?? this.keys;
    this.verifier = new TokenVerifier({
      issuer: this.issuer,
      keys: lookup,
      issuers: options.issuers,
      audience: audienceOf(layout),
      cacheSize: VERIFIED_CACHE_SIZE,
    });
    this.#source = source;
    this.#cannotVouch = options.cannotVouch;
    this.#revocations = options.revocationSource ??
      new FileRevocationSource(rt.revocations, {
        keys: lookup,
        issuer: this.issuer,
        expect: (n) => this.revoked.reserve(n),
      });
    // The feed fills the in-memory set the hot path reads, synchronously.
    this.#revocations.subscribe((entries) => {
      const on = this.#onRevoked;
      if (on === undefined || !wantsIds(on.wants)) {
        this.revoked.merge(entries);
        return;
      }
      const added = this.revoked.add(entries);
      if (added.length > 0) on.fn(added);
    });
  }

  /** Releases the key source (cluster mode: its etcd client) and the open list file. */
  close(): void {
    this.#revocations.close?.();
    this.#source.close?.();
  }

  /**
   * Sets what to do when capabilities become revoked (fs closes their
   * handles). `wants` says whether `fn` would act at all now: while it says
   * no (fs holding no handle), and before anything is set (a service reading
   * the list file at start), the entries are merged without making a string
   * of each new id. A `wants` that throws counts as yes: the entries are
   * merged either way before anything is called.
   */
  onRevoked(fn: (ids: string[]) => void, wants: () => boolean = () => true): void {
    this.#onRevoked = { fn, wants };
  }

  /** The pieces authorize() needs. */
  get authContext(): {
    verifier: TokenVerifier;
    revoked: RevocationSet;
    cannotVouch?: (issuer: string) => string | undefined;
  } {
    return { verifier: this.verifier, revoked: this.revoked, cannotVouch: this.#cannotVouch };
  }

  /** Re-reads the key set and the revocation list if either changed (the periodic look). */
  async refresh(): Promise<void> {
    await this.keys.poll();
    try {
      await this.#revocations.poll();
    } catch {
      // Not readable now: retried on the next refresh.
    }
    this.revoked.prune(this.#clock.now());
  }

  /**
   * Brings the revocations up to date with what identity has acknowledged:
   * reads the lines appended to the list file since the last look, before
   * it returns (a promise only while a line's key is looked up).
   */
  catchUp(): void | Promise<void> {
    return this.#revocations.catchUp();
  }
}
