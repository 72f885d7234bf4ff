/**
 * Gives memory back after a burst. V8 collects garbage only when it
 * allocates, so the buffers of a burst of large reads, and the heap pages
 * a burst of requests grew, stay resident for as long as the service is
 * idle afterwards. Once a second this looks at the heap and at the CPU
 * time the process used: when the heap has grown since the last
 * collection and the process has gone quiet (no requests being served), it
 * runs one memory-reducing collection, which frees those buffers (and
 * malloc gives their memory back) and compacts the heap so its emptied
 * pages go too. Under load it does nothing: V8's own collections run.
 * Needs V8's --expose-gc (SERVICE_V8_FLAGS); without it, it does nothing.
 * @module
 */

/** How often the heap is looked at (ms): a collection follows the first quiet tick after a burst. */
export const IDLE_TICK_MS = 1000;

/** Growth of heap plus external memory since the last collection that is worth one (bytes). */
const GROWN_BYTES = 2 * 1024 * 1024;

/** A process that used less than this share of one core in a tick is quiet. */
const QUIET_CPU = 0.05;

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
  quietCpu?: number;
  /** Reads the heap; defaults to Deno.memoryUsage. */
  read?: () => HeapFigures;
  /** CPU time the process has used (user and system, µs); defaults to process.cpuUsage. */
  cpuMicros?: () => number;
  /** Runs a full collection; defaults to V8's exposed gc(). */
  collect?: () => void;
  /**
   * Also collect once at the first quiet tick, whatever the heap did: what
   * start-up left (module loading, the first reads of the lists) is mostly
   * garbage, and the heap pages it grew stay with an idle service otherwise.
   */
  settle?: boolean;
}

/** The collector's state: one {@link IdleCollector.tick} per period. */
export class IdleCollector {
  #o: Required<Omit<IdleCollectorOptions, "collect" | "settle">> & { collect?: () => void };
  /** Whether the start-up collection is still to come (see IdleCollectorOptions.settle). */
  #unsettled: boolean;
  #floor: number;
  #lastCpu: number;
  #lastTick: number;
  /** Full collections run so far. */
  collections = 0;

  constructor(options: IdleCollectorOptions = {}) {
    const gc = (globalThis as { gc?: (options?: Record<string, string>) => void }).gc;
    this.#o = {
      tickMs: IDLE_TICK_MS,
      grownBytes: GROWN_BYTES,
      quietCpu: QUIET_CPU,
      read: () => Deno.memoryUsage(),
      // The Node process object, looked up only when no other measure is given: a
      // service that passes its own never loads Deno's Node layer for it.
      cpuMicros: () => {
        const u = (globalThis as { process: { cpuUsage(): { user: number; system: number } } })
          .process.cpuUsage();
        return u.user + u.system;
      },
      ...options,
      // "last-resort": V8's memory-reducing collection, which also compacts
      // the old generation so its emptied pages can go.
      collect: options.collect ??
        (typeof gc === "function"
          ? () => gc({ type: "major", execution: "sync", flavor: "last-resort" })
          : undefined),
    };
    this.#unsettled = options.settle === true;
    const m = this.#o.read();
    this.#floor = m.heapTotal + m.external;
    this.#lastCpu = this.#o.cpuMicros();
    this.#lastTick = performance.now();
  }

  /**
   * Looks at the heap once; collects when it grew and the process used
   * under quietCpu of a core since the last tick. True when it collected.
   */
  tick(now: number = performance.now()): boolean {
    if (!this.#o.collect) return false;
    const cpu = this.#o.cpuMicros();
    const quiet = (cpu - this.#lastCpu) / 1000 < this.#o.quietCpu * (now - this.#lastTick);
    this.#lastCpu = cpu;
    this.#lastTick = now;
    const m = this.#o.read();
    const held = m.heapTotal + m.external;
    // A smaller heap (V8 collected by itself) is the new floor.
    if (held < this.#floor) this.#floor = held;
    if (!quiet || (held - this.#floor < this.#o.grownBytes && !this.#unsettled)) return false;
    this.#unsettled = false;
    this.#o.collect();
    this.collections++;
    const after = this.#o.read();
    this.#floor = after.heapTotal + after.external;
    // The collection's own CPU time is not load.
    this.#lastCpu = this.#o.cpuMicros();
    return true;
  }

  /**
   * Collects at the next quiet tick, grown or not: memory was let go that a
   * collection frees (the frame pool's buffers, dropped a second after a
   * burst of large reads). Without it, a collection run at the first quiet
   * tick, before the pool let go, counted those buffers in its floor, and
   * they stayed: fs held 4 MB more of them after a burst of 720 KiB reads.
   */
  collectWhenQuiet(): void {
    this.#unsettled = true;
  }

  /** Ticks every tickMs on an unref'd timer (it never keeps the process up); returns the stop. */
  start(): () => void {
    const timer = setInterval(() => this.tick(), this.#o.tickMs);
    Deno.unrefTimer(timer);
    return () => clearInterval(timer);
  }
}
