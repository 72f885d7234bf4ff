/**
 * A memory budget shared by every connection of a server: bytes are taken
 * before a large request body is read or a large response is made, and
 * given back once it is done with, so no mix of clients can make a service
 * hold more than the budget at once. Waiters are served first come, first
 * served.
 * @module
 */

/** A pool of bytes that callers take from and give back to. */
export class ByteBudget {
  #total: number;
  #free: number;
  #waiting: { n: number; go: () => void }[] = [];

  constructor(total: number) {
    this.#total = total;
    this.#free = total;
  }

  /** Bytes not taken. */
  get free(): number {
    return this.#free;
  }

  /**
   * Takes `n` bytes (at most the whole budget, so one large request can
   * always proceed alone), waiting until they are free. Returns the amount
   * taken, which is what must be given back. Aborting `signal` withdraws a
   * waiting take (it rejects with the signal's reason), so a caller that is
   * cut off while it waits does not keep its place, nor what it took before.
   */
  take(n: number, signal?: AbortSignal): number | Promise<number> {
    const now = this.tryTake(n);
    if (now !== undefined) return now;
    const want = Math.min(Math.max(0, n), this.#total);
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const abort = () => {
        const i = this.#waiting.indexOf(waiter);
        if (i < 0) return;
        this.#waiting.splice(i, 1);
        this.give(0); // those behind it may fit now
        reject(signal!.reason);
      };
      const waiter = {
        n: want,
        go: () => {
          signal?.removeEventListener("abort", abort);
          resolve(want);
        },
      };
      signal?.addEventListener("abort", abort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  /**
   * Takes `n` bytes (at most the whole budget) only if that needs no wait:
   * nobody waits and they are free. Returns the amount taken, or undefined
   * (and takes nothing, and joins no line) when they are not.
   */
  tryTake(n: number): number | undefined {
    const want = Math.min(Math.max(0, n), this.#total);
    if (this.#waiting.length > 0 || this.#free < want) return undefined;
    this.#free -= want;
    return want;
  }

  /** Callers waiting for bytes. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Counts `n` more bytes as taken (or `-n` as given back) at once, without
   * waiting: for bytes that already exist, such as a response larger than
   * its estimate. `free` may go below zero; later takes then wait.
   */
  charge(n: number): void {
    if (n < 0) this.give(-n);
    else this.#free -= n;
  }

  /** Gives back what take() returned. */
  give(n: number): void {
    this.#free += n;
    while (this.#waiting.length > 0 && this.#free >= this.#waiting[0].n) {
      const w = this.#waiting.shift()!;
      this.#free -= w.n;
      w.go();
    }
  }
}
