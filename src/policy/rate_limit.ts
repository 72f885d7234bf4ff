/**
 * The rate_limit constraint: a token bucket per capability, in bounded memory.
 * @module
 */

import { type Clock, systemClock } from "../runtime/clock.ts";

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
  /** Where refills measure time from (default {@link systemClock}'s monotonic time). */
  clock?: Clock;
}

/**
 * Token buckets keyed by cap_id. A bucket holds one second of requests
 * (burst = rate) and refills continuously.
 */
export class RateLimiter {
  #buckets = new Map<string, Bucket>();
  #max: number;
  #clock: Clock;

  constructor(options: RateLimiterOptions = {}) {
    this.#max = options.maxBuckets ?? 10_000;
    this.#clock = options.clock ?? systemClock;
  }

  /** Buckets currently held. */
  get size(): number {
    return this.#buckets.size;
  }

  /** The refilled bucket of `key`, now the most recently used. */
  #bucket(key: string, rate: Rate, now: number): Bucket {
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
    return b;
  }

  /**
   * Takes one request from the bucket of `key`. Returns 0 when allowed, or the
   * milliseconds until the next request would be.
   */
  take(key: string, rate: Rate, now: number = this.#clock.monotonic()): number {
    return this.takeAll([{ key, rate }], now).wait;
  }

  /**
   * Takes one request from every bucket, or from none: a request one bucket
   * refuses spends nothing from the others. `wait` is 0 when allowed, else the
   * milliseconds until every bucket would allow it, and `blocked` the index of
   * the bucket that waits longest.
   */
  takeAll(
    items: readonly { key: string; rate: Rate }[],
    now: number = this.#clock.monotonic(),
  ): { wait: number; blocked?: number } {
    const buckets = items.map((i) => this.#bucket(i.key, i.rate, now));
    let wait = 0;
    let blocked: number | undefined;
    buckets.forEach((b, n) => {
      const w = b.tokens < 1 ? Math.ceil(((1 - b.tokens) / items[n].rate.perSecond) * 1000) : 0;
      if (w > wait) {
        wait = w;
        blocked = n;
      }
    });
    if (wait > 0) return { wait, blocked };
    for (const b of buckets) b.tokens -= 1;
    return { wait: 0 };
  }
}
