/**
 * Gives memory back after a burst. V8 collects garbage only when it
 * allocates, so the buffers of a burst of large reads, and the heap pages
 * a burst of requests grew, stay resident for as long as the service is
 * idle afterwards. Once a second this looks at the heap: when it has
 * grown since the last collection and has stopped changing (no requests
 * are being served), it runs one full collection, which frees those
 * buffers (large ones go straight back to the kernel: see SERVICE_ENV) and
 * the empty pages. Under load it does nothing: V8's own collections run.
 * Needs V8's --expose-gc (SERVICE_V8_FLAGS); without it, it does nothing.
 * @module
 */

/** How often the heap is looked at (ms). */
const TICK_MS = 1000;

/** Growth of heap plus external memory since the last collection that is worth one (bytes). */
const GROWN_BYTES = 2 * 1024 * 1024;

/** A heap whose use moved less than this in a tick is idle (bytes). */
const QUIET_BYTES = 256 * 1024;

/** What is read from the heap: Deno.memoryUsage() in a service. */
export interface HeapFigures {
  heapUsed: number;
  heapTotal: number;
  external: number;
}

/** Settings, for tests. */
export interface IdleCollectorOptions {
  tickMs?: number;
  grownBytes?: number;
  quietBytes?: number;
  /** Reads the heap; defaults to Deno.memoryUsage. */
  read?: () => HeapFigures;
  /** Runs a full collection; defaults to V8's exposed gc(). */
  collect?: () => void;
}

/** The collector's state: one {@link IdleCollector.tick} per period. */
export class IdleCollector {
  #o: Required<Omit<IdleCollectorOptions, "collect">> & { collect?: () => void };
  #floor: number;
  #lastUsed: number;
  /** Full collections run so far. */
  collections = 0;

  constructor(options: IdleCollectorOptions = {}) {
    const gc = (globalThis as { gc?: (options?: Record<string, string>) => void }).gc;
    this.#o = {
      tickMs: TICK_MS,
      grownBytes: GROWN_BYTES,
      quietBytes: QUIET_BYTES,
      read: () => Deno.memoryUsage(),
      ...options,
      // "last-resort": V8's memory-reducing collection, which also compacts
      // the old generation so its emptied pages can go.
      collect: options.collect ??
        (typeof gc === "function"
          ? () => gc({ type: "major", execution: "sync", flavor: "last-resort" })
          : undefined),
    };
    const m = this.#o.read();
    this.#floor = m.heapTotal + m.external;
    this.#lastUsed = m.heapUsed;
  }

  /** Looks at the heap once; collects when it grew and went quiet. True when it collected. */
  tick(): boolean {
    if (!this.#o.collect) return false;
    const m = this.#o.read();
    const quiet = Math.abs(m.heapUsed - this.#lastUsed) < this.#o.quietBytes;
    this.#lastUsed = m.heapUsed;
    const held = m.heapTotal + m.external;
    // A smaller heap (V8 collected by itself) is the new floor.
    if (held < this.#floor) this.#floor = held;
    if (!quiet || held - this.#floor < this.#o.grownBytes) return false;
    this.#o.collect();
    this.collections++;
    const after = this.#o.read();
    this.#floor = after.heapTotal + after.external;
    this.#lastUsed = after.heapUsed;
    return true;
  }

  /** Ticks every tickMs on an unref'd timer (it never keeps the process up); returns the stop. */
  start(): () => void {
    const timer = setInterval(() => this.tick(), this.#o.tickMs);
    Deno.unrefTimer(timer);
    return () => clearInterval(timer);
  }
}
