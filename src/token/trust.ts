/**
 * Everything a service needs to judge tokens on its own: the published key
 * set, the revocations it knows of, and the verifier with its cache. Identity keeps these current by pushing
 * signed revocation lists; the service also re-reads the files now and then,
 * in case a push was missed.
 * @module
 */

import { issuerOf, type Layout, runtimeFiles } from "../runtime/config.ts";
import { type KeyLookup, PublishedKeys } from "./key_set.ts";
import { openRevocationList, RevocationFile, RevocationSet } from "./revocation_set.ts";
import { TokenVerifier } from "./verifier.ts";
import { type Clock, systemClock } from "../runtime/clock.ts";

/** A service's local view of what identity has signed and revoked. */
export class Trust {
  readonly issuer: string;
  readonly keys: PublishedKeys;
  readonly revoked: RevocationSet;
  readonly verifier: TokenVerifier;
  #file: RevocationFile;
  #onRevoked: (ids: string[]) => void = () => {};
  #clock: Clock;

  /**
   * Identity passes its own key ring and revocation set; every other service
   * reads what identity publishes in the runtime dir.
   */
  constructor(
    layout: Layout,
    own?: { keys: KeyLookup; revoked: RevocationSet },
    options: { clock?: Clock } = {},
  ) {
    this.#clock = options.clock ?? systemClock;
    const rt = runtimeFiles(layout);
    this.issuer = issuerOf(layout);
    this.keys = new PublishedKeys(rt.identityPub, { onChange: () => this.verifier.clearCache() });
    this.revoked = own?.revoked ?? new RevocationSet();
    this.verifier = new TokenVerifier({ issuer: this.issuer, keys: own?.keys ?? this.keys });
    this.#file = new RevocationFile(rt.revocations);
  }

  /** Sets what to do when capabilities become revoked (fs closes their handles). */
  onRevoked(fn: (ids: string[]) => void): void {
    this.#onRevoked = fn;
  }

  /** The pieces authorize() needs. */
  get authContext() {
    return { verifier: this.verifier, revoked: this.revoked };
  }

  /** Re-reads the key set and the revocation list if either changed. */
  async refresh(): Promise<void> {
    await this.keys.refresh();
    let added: string[] = [];
    try {
      added = await this.#file.load(this.revoked, this.keys, this.issuer);
    } catch {
      // Not verifiable yet (e.g. signed by a key not yet published): retried later.
    }
    this.revoked.prune(this.#clock.now());
    if (added.length > 0) this.#onRevoked(added);
  }

  /**
   * Applies a signed revocation list pushed by identity. Throws when it is
   * not signed by this node's identity.
   */
  async applyPush(signed: string): Promise<number> {
    // A list signed by a key not loaded yet makes the lookup re-check identity.pub.
    const entries = await openRevocationList(signed, this.keys, this.issuer);
    const added = this.revoked.add(entries);
    if (added.length > 0) this.#onRevoked(added);
    return added.length;
  }
}
