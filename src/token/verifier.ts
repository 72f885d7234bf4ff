/**
 * Local token verification with a bounded cache of verified tokens.
 *
 * The cache holds only what a signature check proves (the parsed claims);
 * expiry, not-before, revocation and rights are checked on every use by
 * policy/authorize, so a cached token stops working the moment it expires or
 * is revoked. Concurrent first uses of one token share one signature check.
 * @module
 */

import { type Capability, ClaimsError, parseClaims } from "./claims.ts";
import type { VerifyKey } from "./keys.ts";
import type { KeyLookup } from "./key_set.ts";
import { openV4Public, type ParsedToken, parseV4Public } from "./paseto.ts";

/** Options for {@link TokenVerifier}. */
export interface TokenVerifierOptions {
  /** The issuer tokens must name, "identity@<node_id>". */
  issuer: string;
  /** Cluster mode: the other issuers accepted (the endorsed identities), kept current by the source. */
  issuers?: ReadonlySet<string>;
  /** The audience tokens must name (default "strata"; the cluster's name in cluster mode). */
  audience?: string;
  /** Where verification keys come from. */
  keys: KeyLookup;
  /** Most verified tokens kept; defaults to 4096. */
  cacheSize?: number;
}

/** Verifies tokens locally (no call to identity) and caches the result. */
export class TokenVerifier {
  #issuer: string;
  #keys: KeyLookup;
  #issuers?: ReadonlySet<string>;
  #audience?: string;
  #max: number;
  #cache = new Map<string, Capability>();
  #pending = new Map<string, Promise<Capability>>();

  constructor(options: TokenVerifierOptions) {
    this.#issuer = options.issuer;
    this.#keys = options.keys;
    this.#issuers = options.issuers;
    this.#audience = options.audience;
    this.#max = options.cacheSize ?? 4096;
  }

  /** The issuer this verifier accepts. */
  get issuer(): string {
    return this.#issuer;
  }

  /** Number of cached verified tokens. */
  get cached(): number {
    return this.#cache.size;
  }

  /**
   * Returns the capability a token proves, checking its signature and claims
   * (issuer, audience, shape) on first use. Throws TokenError or ClaimsError
   * (synchronously when the key is at hand: no promise on the common path).
   */
  verify(token: string): Promise<Capability> | Capability {
    const hit = this.#cache.get(token);
    if (hit) {
      // Keep hot tokens: move to the young end of the insertion order.
      this.#cache.delete(token);
      this.#cache.set(token, hit);
      return hit;
    }
    let p = this.#pending.get(token);
    if (p) return p;
    const parsed = parseV4Public(token);
    const key = this.#keys.get(parsed.footer.kid);
    if (!(key instanceof Promise)) return this.#admit(token, parsed, key);
    // A key looked up from its source: concurrent first uses share the wait.
    p = key.then((k) => this.#admit(token, parsed, k)).finally(() => this.#pending.delete(token));
    this.#pending.set(token, p);
    return p;
  }

  /** Checks the signature and the claims, and caches the capability. */
  #admit(
    token: string,
    parsed: ParsedToken,
    key: VerifyKey | undefined,
  ): Capability | Promise<Capability> {
    const payload = openV4Public(parsed, key);
    // A WebCrypto key checks with a promise (a JSON payload is never one).
    if (payload instanceof Promise) return payload.then((p) => this.#claims(token, p, key));
    return this.#claims(token, payload, key);
  }

  #claims(token: string, payload: unknown, key: VerifyKey | undefined): Capability {
    const cap = parseClaims(payload, {
      issuer: this.#issuer,
      issuers: this.#issuers,
      audience: this.#audience,
    });
    // A key endorsed for one identity never vouches for another's tokens.
    if (key?.issuer !== undefined && key.issuer !== cap.claims.iss) {
      throw new ClaimsError(
        "wrong_issuer",
        `token: names issuer ${cap.claims.iss} but is signed by a key of ${key.issuer}`,
      );
    }
    if (this.#cache.size >= this.#max) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
    this.#cache.set(token, cap);
    return cap;
  }

  /** Forgets every cached token (after the key set changed). */
  clearCache(): void {
    this.#cache.clear();
  }
}
