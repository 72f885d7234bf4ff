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

/**
 * The delay before each successive restart. The first crash of a service
 * that was Healthy (and has been stable since the last reset) restarts it at
 * once: a one-off (an OOM kill, a stray kill -9) costs no waiting. Crashes
 * after that wait, 100 ms doubling; a crash loop is stopped by quarantine
 * ({@link CrashWindow}), which counts every crash either way.
 */
export class Backoff {
  #opts: BackoffOptions;
  #attempt = 0;
  #immediateUsed = false;

  constructor(options: Partial<BackoffOptions> = {}) {
    this.#opts = { ...DEFAULT_BACKOFF, ...options };
  }

  /** How long a service must stay Healthy before the delay resets. */
  get stableMs(): number {
    return this.#opts.stableMs;
  }

  /**
   * The next delay: initial, then doubling, capped at max; 0 for the first
   * crash since the last reset of a service that had become Healthy.
   */
  next(options: { wasHealthy?: boolean } = {}): number {
    if (options.wasHealthy && this.#attempt === 0 && !this.#immediateUsed) {
      this.#immediateUsed = true;
      return 0;
    }
    const d = Math.min(this.#opts.maxMs, this.#opts.initialMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    return d;
  }

  /** Back to the initial delay. */
  reset(): void {
    this.#attempt = 0;
    this.#immediateUsed = false;
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
