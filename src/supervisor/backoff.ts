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
  /**
   * A crash this long after the service became Healthy is not a crash at
   * start-up: it restarts at once. One sooner counts as a start-up crash.
   */
  upMs: number;
}

/** 100 ms doubling to 30 s, reset after 30 s Healthy; a crash after 250 ms Healthy restarts at once. */
export const DEFAULT_BACKOFF: BackoffOptions = {
  initialMs: 100,
  maxMs: 30_000,
  stableMs: 30_000,
  upMs: 250,
};

/** Quarantine settings: this many crashes within the window. */
export interface QuarantineOptions {
  crashes: number;
  windowMs: number;
}

/** Five crashes within two minutes. */
export const DEFAULT_QUARANTINE: QuarantineOptions = { crashes: 5, windowMs: 120_000 };

/**
 * The delay before each restart. A service that had come up (Healthy for
 * at least upMs) and then died (an OOM kill, a stray kill -9, a bug hit by
 * a request) restarts at once, as systemd's Restart=on-failure would. One
 * that crashes at start-up (before Healthy, or within upMs of it) waits,
 * 100 ms doubling, so a service that cannot start does not spin. Either
 * way every crash counts toward quarantine ({@link CrashWindow}: five
 * within two minutes, like systemd's start limit), which is what stops a
 * service that keeps dying.
 */
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

  /**
   * The next delay: 0 for a service that had been Healthy for `healthyForMs`
   * of at least upMs; else initial, then doubling, capped at max.
   */
  next(options: { healthyForMs?: number } = {}): number {
    const up = options.healthyForMs;
    if (up !== undefined && up >= this.#opts.upMs) return 0;
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
