/**
 * Restart policy: exponential backoff between restarts, and quarantine for a
 * service that crashes too often.
 * @module
 */

/** Backoff settings. */
export interface BackoffOptions {
  /** First delay, in ms. */
  initialMs: number;
  /** Longest delay, in ms. */
  maxMs: number;
  /** A service Healthy this long has its delay reset. */
  stableMs: number;
}

/** 100 ms doubling to 30 s, reset after 30 s Healthy. */
export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 30_000, stableMs: 30_000 };

/** Quarantine settings: this many crashes within the window. */
export interface QuarantineOptions {
  crashes: number;
  windowMs: number;
}

/** Five crashes within two minutes. */
export const DEFAULT_QUARANTINE: QuarantineOptions = { crashes: 5, windowMs: 120_000 };

/** The delay before each successive restart. */
export class Backoff {
  #opts: BackoffOptions;
  #attempt = 0;

  constructor(options: Partial<BackoffOptions> = {}) {
    this.#opts = { ...DEFAULT_BACKOFF, ...options };
  }

  /** How long a service must stay Healthy before the delay resets. */
  get stableMs(): number {
    return this.#opts.stableMs;
  }

  /** The next delay: initial, then doubling, capped at max. */
  next(): number {
    const d = Math.min(this.#opts.maxMs, this.#opts.initialMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    return d;
  }

  /** Back to the initial delay. */
  reset(): void {
    this.#attempt = 0;
  }
}

/** Records crash times and says when a service must be quarantined. */
export class CrashWindow {
  #opts: QuarantineOptions;
  #times: number[] = [];

  constructor(options: Partial<QuarantineOptions> = {}) {
    this.#opts = { ...DEFAULT_QUARANTINE, ...options };
  }

  /** Records a crash at `now`; true when it makes too many within the window. */
  record(now: number = Date.now()): boolean {
    this.#times = this.#times.filter((t) => now - t < this.#opts.windowMs);
    this.#times.push(now);
    return this.#times.length >= this.#opts.crashes;
  }

  /** Forgets past crashes (an operator started the service again). */
  clear(): void {
    this.#times = [];
  }
}
