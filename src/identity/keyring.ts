/**
 * Identity's signing keys, kept in the state dir (keys.json, 0600): created
 * on first start and reused after, so tokens outlive restarts.
 *
 * Each key records an upper bound on the expiry of every token it signed
 * (`exp_bound`), written durably before a token that would exceed it is
 * handed out. After a rotation the old key keeps verifying until that bound,
 * that is, until the last token it signed has expired, and is then dropped.
 * @module
 */

import { type Cipheriv, createCipheriv, createDecipheriv, type Decipheriv } from "node:crypto";
import { writeFileAtomic } from "../runtime/files.ts";
import { parseRfc3339, rfc3339 } from "../token/claims.ts";
import type { KeyLookup, KeySetDocument } from "../token/key_set.ts";
import {
  generateSigningKey,
  importVerifyKey,
  parseSecretPaserk,
  publicPaserk,
  secretPaserk,
  type SigningKey,
  type VerifyKey,
} from "../token/keys.ts";

/** Raising the bound by this much past a new token's expiry keeps writes rare. */
const BOUND_SLACK_MS = 3600_000;

interface StoredKey {
  kid: string;
  secret: string;
  created: string;
  exp_bound: string;
  retired?: string;
}

interface StoredRing {
  v: 1;
  active: string;
  keys: StoredKey[];
  /** The AES-128 key cap_ids are sealed with (hex), and until when ids from before it existed may be live. */
  cap_ids?: { key: string; legacy_until?: string };
}

/** The first 4 bytes of every sealed cap_id: a random id opens to them with chance 2^-32. */
const CAP_ID_TAG = new TextEncoder().encode("stra");

/** Random bytes a cap_id takes: the block's last 7. */
const CAP_ID_RANDOM = 7;

/**
 * Random bytes drawn ahead for cap_ids, 4 KiB at a time (585 ids): one call
 * to the system's generator per batch instead of one per issue.
 */
const randomPool = new Uint8Array(4096);
let randomAt = randomPool.length;

/** The block sealed into a cap_id, filled in place for each (the cipher copies it). */
const capIdBlock = new Uint8Array(16);
capIdBlock.set(CAP_ID_TAG, 0);

interface RingKey {
  signing: SigningKey;
  verify: VerifyKey;
  created: string;
  expBoundMs: number;
  retired?: string;
}

/** Where the ring lives. */
export interface KeyRingFiles {
  keys: string;
  keysTmp: string;
}

/** The active signing key and the retired keys that still verify. */
export class KeyRing implements KeyLookup {
  #files: KeyRingFiles;
  #keys = new Map<string, RingKey>();
  #active!: RingKey;
  #capIdKey!: Uint8Array;
  /** AES-128-ECB without padding, one block per update: kept, not made per id. */
  #seal?: { cipher: Cipheriv; decipher: Decipheriv };
  /** Ids not sealed (made before the cap_id key existed) may be live until then. */
  #legacyUntilMs = 0;

  private constructor(files: KeyRingFiles) {
    this.#files = files;
  }

  /** Loads the ring, creating it with a fresh key on first start. */
  static async open(files: KeyRingFiles, now: number = Date.now()): Promise<KeyRing> {
    const ring = new KeyRing(files);
    let stored: StoredRing | undefined;
    try {
      stored = JSON.parse(await Deno.readTextFile(files.keys));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new Error(`${files.keys} is unreadable or corrupt (${err}); restore it from backup`);
      }
    }
    if (!stored) {
      await ring.#addActive(now);
      ring.#capIdKey = crypto.getRandomValues(new Uint8Array(16));
      ring.#save();
      return ring;
    }
    for (const k of stored.keys) {
      const expBoundMs = parseRfc3339(k.exp_bound);
      if (k.kid !== stored.active && expBoundMs < now) continue; // every token it signed has expired
      const signing = await parseSecretPaserk(k.secret);
      if (signing.kid !== k.kid) throw new Error(`${files.keys}: key id mismatch for ${k.kid}`);
      ring.#keys.set(k.kid, {
        signing,
        verify: await importVerifyKey(signing.publicKey),
        created: k.created,
        expBoundMs,
        ...(k.retired ? { retired: k.retired } : {}),
      });
    }
    const active = ring.#keys.get(stored.active);
    if (!active) throw new Error(`${files.keys}: the active key ${stored.active} is missing`);
    ring.#active = active;
    if (stored.cap_ids) {
      ring.#capIdKey = Uint8Array.fromHex(stored.cap_ids.key);
      ring.#legacyUntilMs = stored.cap_ids.legacy_until
        ? parseRfc3339(stored.cap_ids.legacy_until)
        : 0;
    } else {
      // A ring from before sealed cap_ids: the random ids it handed out stay
      // revocable by id until every token signed so far has expired.
      ring.#capIdKey = crypto.getRandomValues(new Uint8Array(16));
      ring.#legacyUntilMs = ring.latestExpiry;
    }
    if (ring.#keys.size !== stored.keys.length || !stored.cap_ids) ring.#save();
    return ring;
  }

  async #addActive(now: number): Promise<RingKey> {
    const signing = await generateSigningKey();
    const key: RingKey = {
      signing,
      verify: await importVerifyKey(signing.publicKey),
      created: rfc3339(now),
      expBoundMs: now,
    };
    this.#keys.set(signing.kid, key);
    this.#active = key;
    return key;
  }

  #save(): void {
    const doc: StoredRing = {
      v: 1,
      active: this.#active.signing.kid,
      keys: [...this.#keys.values()].map((k) => ({
        kid: k.signing.kid,
        secret: secretPaserk(k.signing),
        created: k.created,
        exp_bound: rfc3339(k.expBoundMs),
        ...(k.retired ? { retired: k.retired } : {}),
      })),
      cap_ids: {
        key: this.#capIdKey.toHex(),
        ...(this.#legacyUntilMs > 0 ? { legacy_until: rfc3339(this.#legacyUntilMs) } : {}),
      },
    };
    writeFileAtomic(this.#files.keys, JSON.stringify(doc, null, 2) + "\n", {
      tmpPath: this.#files.keysTmp,
      mode: 0o600,
    });
  }

  /** The key new tokens are signed with. */
  get active(): SigningKey {
    return this.#active.signing;
  }

  /**
   * The newest key of the ring among `kids` (cluster mode: the keys the root
   * endorses for this node), to sign what other nodes check against that
   * endorsement; undefined when the ring holds none of them.
   */
  signingKeyAmong(kids: readonly string[]): SigningKey | undefined {
    let best: RingKey | undefined;
    for (const kid of kids) {
      const k = this.#keys.get(kid);
      if (k && (!best || Date.parse(k.created) > Date.parse(best.created))) best = k;
    }
    return best?.signing;
  }

  /** Looks up a verification key by id. */
  get(kid: string): VerifyKey | undefined {
    return this.#keys.get(kid)?.verify;
  }

  /**
   * The latest time any token signed by any key here can expire. A
   * revocation can be forgotten after it.
   */
  get latestExpiry(): number {
    let max = 0;
    for (const k of this.#keys.values()) max = Math.max(max, k.expBoundMs);
    return max;
  }

  /**
   * Makes sure the active key's recorded bound covers a token expiring at
   * `expMs`, writing the ring durably first if it does not.
   */
  coverExpiry(expMs: number): void {
    if (expMs <= this.#active.expBoundMs) return;
    const before = this.#active.expBoundMs;
    this.#active.expBoundMs = expMs + BOUND_SLACK_MS;
    try {
      this.#save();
    } catch (err) {
      // Not on disk, so not true: a token must not be signed beyond it.
      this.#active.expBoundMs = before;
      throw err;
    }
  }

  /**
   * A fresh cap_id for a token expiring at `expMs`: the tag, the expiry, a
   * flags byte (1: a root capability) and 56 random bits, sealed with AES-128
   * under the ring's cap_id key. Identity thus knows every id it handed out
   * (until when, and whether it is a root) without writing a record per token.
   */
  newCapId(expMs: number, options: { root?: boolean } = {}): string {
    // No allocation but the cipher's output: a block, a DataView and a random
    // draw per id took 4.7-5.1 µs against 2.5-2.6 (loops of 200,000, two each).
    if (randomAt + CAP_ID_RANDOM > randomPool.length) {
      crypto.getRandomValues(randomPool);
      randomAt = 0;
    }
    const block = capIdBlock;
    const exp = Math.floor(expMs / 1000);
    block[4] = exp >>> 24;
    block[5] = (exp >>> 16) & 0xff;
    block[6] = (exp >>> 8) & 0xff;
    block[7] = exp & 0xff;
    block[8] = options.root ? 1 : 0;
    for (let i = 0; i < CAP_ID_RANDOM; i++) block[9 + i] = randomPool[randomAt + i];
    randomAt += CAP_ID_RANDOM;
    const sealed: Uint8Array = this.#sealer().cipher.update(block);
    return sealed.toHex();
  }

  #sealer(): { cipher: Cipheriv; decipher: Decipheriv } {
    this.#seal ??= {
      cipher: createCipheriv("aes-128-ecb", this.#capIdKey, null).setAutoPadding(false),
      decipher: createDecipheriv("aes-128-ecb", this.#capIdKey, null).setAutoPadding(false),
    };
    return this.#seal;
  }

  /**
   * What identity sealed in a cap_id: when its token expires (epoch ms) and
   * whether it is a root capability; undefined for an id it never issued. An
   * unsealed id from before the cap_id key existed is answered with the
   * latest expiry any such token can have (and root unknown: false).
   */
  openCapId(capId: string, now: number = Date.now()): { expMs: number; root: boolean } | undefined {
    if (!/^[0-9a-f]{32}$/.test(capId)) return undefined;
    // Read in place (a revoke opens one on each call: no copy, no closure).
    const block: Uint8Array = this.#sealer().decipher.update(Uint8Array.fromHex(capId));
    if (
      block[0] === CAP_ID_TAG[0] && block[1] === CAP_ID_TAG[1] &&
      block[2] === CAP_ID_TAG[2] && block[3] === CAP_ID_TAG[3]
    ) {
      const exp = ((block[4] << 24) | (block[5] << 16) | (block[6] << 8) | block[7]) >>> 0;
      return { expMs: exp * 1000, root: block[8] === 1 };
    }
    return this.#legacyUntilMs > now ? { expMs: this.#legacyUntilMs, root: false } : undefined;
  }

  /**
   * Retires the active key and makes a new one active. `publish` (writing the
   * key set where verifiers read it) runs in the same synchronous step as the
   * switch, so no token signed by the new key exists before the key set
   * naming it is published; when it throws, the rotation is undone.
   */
  async rotate(
    now: number = Date.now(),
    options: { publish?: () => void } = {},
  ): Promise<{ previous: string; previousNotAfter: number }> {
    const signing = await generateSigningKey();
    const fresh: RingKey = {
      signing,
      verify: await importVerifyKey(signing.publicKey),
      created: rfc3339(now),
      expBoundMs: now,
    };
    // From here on synchronous: nothing can sign between the switch and the publish.
    const old = this.#active;
    const keys = new Map(this.#keys);
    old.retired = rfc3339(now);
    this.#keys.set(signing.kid, fresh);
    this.#active = fresh;
    for (const [kid, k] of this.#keys) {
      if (k !== this.#active && k.expBoundMs < now) this.#keys.delete(kid);
    }
    try {
      this.#save();
      options.publish?.();
    } catch (err) {
      // Not stored or not published: go on signing with the old key.
      delete old.retired;
      this.#keys = keys;
      this.#active = old;
      try {
        this.#save();
      } catch { /* keys.json names the new key; identity publishes it at its next start */ }
      throw err;
    }
    return { previous: old.signing.kid, previousNotAfter: old.expBoundMs };
  }

  /** The public key set to publish. */
  publicDocument(issuer: string): KeySetDocument {
    return {
      v: 1,
      issuer,
      active: this.#active.signing.kid,
      keys: [...this.#keys.values()].map((k) => ({
        kid: k.signing.kid,
        public: publicPaserk(k.signing.publicKey),
        created: k.created,
        ...(k === this.#active ? {} : { not_after: rfc3339(k.expBoundMs) }),
      })),
    };
  }
}
