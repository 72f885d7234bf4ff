/**
 * The rate_limit constraint: a token bucket per capability, in bounded memory.
 * @module
 */

/** A rate, parsed from "50rps". */
export interface Rate {
  perSecond: number;
}

const RATE_RE = /^([1-9][0-9]{0,6})rps$/;

/** Parses "<n>rps" (1 to 9,999,999); undefined when the text is not a rate. */
export function parseRate(text: string): Rate | undefined {
  const m = RATE_RE.exec(text);
  return m ? { perSecond: Number(m[1]) } : undefined;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Options for {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** Most buckets kept; the least recently used is dropped past it. */
  maxBuckets?: number;
}

/**
 * Token buckets keyed by cap_id. A bucket holds one second of requests
 * (burst = rate) and refills continuously.
 */
export class RateLimiter {
  #buckets = new Map<string, Bucket>();
  #max: number;

  constructor(options: RateLimiterOptions = {}) {
    this.#max = options.maxBuckets ?? 10_000;
  }

  /** Buckets currently held. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Takes one request from the bucket of `key`. Returns 0 when allowed, or the
   * milliseconds until the next request would be.
   */
  take(key: string, rate: Rate, now: number = performance.now()): number {
    let b = this.#buckets.get(key);
    if (b) {
      this.#buckets.delete(key);
      b.tokens = Math.min(rate.perSecond, b.tokens + ((now - b.at) / 1000) * rate.perSecond);
      b.at = now;
    } else {
      if (this.#buckets.size >= this.#max) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
      b = { tokens: rate.perSecond, at: now };
    }
    this.#buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / rate.perSecond) * 1000);
  }
}
