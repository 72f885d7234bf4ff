/**
 * Time, injected: modules that read the time or wait (audit, caches, rate
 * limits, registry leases, trust) take a {@link Clock}, so programs pass
 * {@link systemClock} and unit tests pass a {@link ManualClock} and advance it
 * instead of sleeping.
 * @module
 */

/** A cancel function for a callback scheduled with {@link Clock.after}. */
export type Cancel = () => void;

/** A source of time and of delayed callbacks. */
export interface Clock {
  /** Wall-clock milliseconds since the epoch (like Date.now()). */
  now(): number;
  /** Monotonic milliseconds for measuring intervals (like performance.now()). */
  monotonic(): number;
  /** Runs `fn` once after `ms`; the timer never keeps the process alive. */
  after(ms: number, fn: () => void): Cancel;
}

/** The real clock: Date.now, performance.now and unref'd timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  after(ms: number, fn: () => void): Cancel {
    const t = setTimeout(fn, ms);
    Deno.unrefTimer(t);
    return () => clearTimeout(t);
  },
};

/** A clock that moves only when told to: callbacks due run inside {@link ManualClock.advance}. */
export class ManualClock implements Clock {
  #now: number;
  #mono = 0;
  #seq = 0;
  #timers = new Map<number, { at: number; fn: () => void }>();

  /** Starts at `startMs` wall-clock time (default: the real time now). */
  constructor(startMs: number = Date.now()) {
    this.#now = startMs;
  }

  /** The clock's wall-clock time. */
  now(): number {
    return this.#now;
  }

  /** The clock's monotonic time (0 at construction). */
  monotonic(): number {
    return this.#mono;
  }

  /** Schedules `fn` for when the clock has been advanced by `ms`. */
  after(ms: number, fn: () => void): Cancel {
    const id = this.#seq++;
    this.#timers.set(id, { at: this.#mono + Math.max(0, ms), fn });
    return () => this.#timers.delete(id);
  }

  /** Callbacks scheduled and not yet run. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, running each callback that falls due, in time order. */
  advance(ms: number): void {
    const end = this.#mono + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const t of this.#timers) if (t[1].at <= end && (!next || t[1].at < next[1].at)) next = t;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now += next[1].at - this.#mono;
      this.#mono = next[1].at;
      next[1].fn();
    }
    this.#now += end - this.#mono;
    this.#mono = end;
  }
}
