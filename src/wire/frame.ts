/**
 * Length-prefixed JSON framing: a 4-byte big-endian length, then that many
 * bytes of UTF-8 JSON, at most {@link MAX_FRAME} bytes.
 *
 * The reader never concatenates per frame: small frames are sliced out of one
 * reusable buffer, large ones are read straight into a buffer of their size.
 * The writer puts header and body in one buffer so a frame is one write.
 * @module
 */

/** The largest frame body, in bytes (1 MiB). */
export const MAX_FRAME = 1024 * 1024;

/** Bytes in the length header. */
export const HEADER_BYTES = 4;

const READ_CHUNK = 16 * 1024;
const encoder = new TextEncoder();

/** Something frames can be read from (a Deno.Conn, a pipe, a test double). */
export interface ByteSource {
  read(p: Uint8Array): Promise<number | null>;
}

/** Something frames can be written to. */
export interface ByteSink {
  write(p: Uint8Array): Promise<number>;
}

/** A peer announced (or a sender tried to build) a frame over the size cap. */
export class FrameTooLargeError extends Error {
  /** The announced or encoded body size. */
  readonly size: number;
  constructor(size: number, max: number) {
    super(`frame of ${size} bytes exceeds the ${max}-byte limit`);
    this.name = "FrameTooLargeError";
    this.size = size;
  }
}

/** The stream ended in the middle of a frame. */
export class TruncatedFrameError extends Error {
  constructor(have: number, want: number) {
    super(`connection closed after ${have} of ${want} bytes of a frame`);
    this.name = "TruncatedFrameError";
  }
}

/** Options for {@link FrameReader}. */
export interface FrameReaderOptions {
  /** The largest accepted body; defaults to {@link MAX_FRAME}. */
  maxFrame?: number;
}

/** Options for one {@link FrameReader.next} call. */
export interface NextOptions {
  /**
   * For a body larger than the reader's own buffer: called with a number of
   * bytes before they are taken from the stream, a chunk at a time as the
   * body arrives (the calls add up to its length), e.g. to wait for room in a
   * memory budget. A slow sender so holds only about what it has sent.
   */
  reserve?: (bytes: number) => Promise<void> | void;
}

/** The size of the reader's own buffer: bodies up to this size need no allocation. */
export const SMALL_FRAME = READ_CHUNK;

/**
 * Reads frames one after another from a byte stream.
 *
 * `next()` resolves to the body of the next frame (a view that stays valid
 * only until the following `next()` call), or null at a clean end of stream.
 */
export class FrameReader {
  #source: ByteSource;
  #buf = new Uint8Array(READ_CHUNK);
  /**
   * A client's buffer for bodies larger than #buf, kept while large bodies
   * follow one another (a stream of large reads then allocates nothing per
   * answer: a new buffer for each cost the client half its CPU time per 720
   * KiB read) and let go at the first small one.
   */
  #large?: Uint8Array;
  #start = 0;
  #end = 0;
  #max: number;

  constructor(source: ByteSource, options: FrameReaderOptions = {}) {
    this.#source = source;
    this.#max = options.maxFrame ?? MAX_FRAME;
  }

  /** Bytes received but not yet returned as a frame. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /**
   * Returns the next frame body, or null when the stream ends between frames.
   * Throws FrameTooLargeError as soon as an oversize length is announced
   * (before any of its body is read) and TruncatedFrameError on a cut frame.
   */
  async next(options: NextOptions = {}): Promise<Uint8Array | null> {
    // Everything returned: read from the start of the buffer again, so the
    // next frame is not split by the buffer's end (one request at a time on a
    // connection, as clients mostly send, always finds the whole buffer free).
    if (this.#start === this.#end) this.#start = this.#end = 0;
    // (#fill only when bytes are missing: the body mostly came with its header.)
    if (this.buffered < HEADER_BYTES && !(await this.#fill(HEADER_BYTES))) {
      if (this.buffered === 0) return null;
      throw new TruncatedFrameError(this.buffered, HEADER_BYTES);
    }
    const b = this.#buf;
    const s = this.#start;
    const length = ((b[s] << 24) | (b[s + 1] << 16) | (b[s + 2] << 8) | b[s + 3]) >>> 0;
    if (length > this.#max) throw new FrameTooLargeError(length, this.#max);
    this.#start += HEADER_BYTES;
    if (length <= this.#buf.length) {
      // A small answer after large ones: the large buffer goes.
      this.#large = undefined;
      if (this.buffered < length && !(await this.#fill(length))) {
        throw new TruncatedFrameError(this.buffered, length);
      }
      const body = this.#buf.subarray(this.#start, this.#start + length);
      this.#start += length;
      return body;
    }
    return await this.#readLarge(length, options.reserve);
  }

  /** Ensures `n` bytes are buffered; false when the stream ended first. */
  async #fill(n: number): Promise<boolean> {
    if (this.#end - this.#start >= n) return true;
    if (this.#start + n > this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    while (this.#end - this.#start < n) {
      const got = await this.#source.read(this.#buf.subarray(this.#end));
      if (got === null) return false;
      this.#end += got;
    }
    return true;
  }

  /**
   * Reads a body larger than the shared buffer straight into its own buffer
   * (whose pages are only touched as bytes arrive). The rest of the body stays
   * in the socket until `reserve` has room for the next chunk of it.
   */
  async #readLarge(
    length: number,
    reserve?: (bytes: number) => Promise<void> | void,
  ): Promise<Uint8Array> {
    // Without a budget (a client's answers, read and decoded before the next
    // call), the last large body's buffer is used again when it is big enough.
    let body: Uint8Array;
    if (reserve) body = new Uint8Array(length);
    else {
      if (this.#large === undefined || this.#large.length < length) {
        this.#large = new Uint8Array(length);
      }
      body = this.#large.subarray(0, length);
    }
    let have = Math.min(this.#end - this.#start, length);
    let reserved = 0;
    if (reserve && have > 0) await reserve(have);
    reserved = have;
    body.set(this.#buf.subarray(this.#start, this.#start + have));
    this.#start = this.#end = 0;
    // Without a budget to wait for (a client's answers), every read may fill
    // the rest of the body: a socket read gives what has arrived, so a 1 MB
    // answer takes a few reads instead of one per READ_CHUNK.
    if (!reserve) reserved = length;
    while (have < length) {
      if (have === reserved) {
        const n = Math.min(READ_CHUNK, length - reserved);
        if (reserve) await reserve(n);
        reserved += n;
      }
      const got = await this.#source.read(body.subarray(have, reserved));
      if (got === null) throw new TruncatedFrameError(have, length);
      have += got;
    }
    return body;
  }
}

/** Large frames are built in pooled buffers of this size (header + cap + 1). */
const POOLED_FRAME_BYTES = HEADER_BYTES + MAX_FRAME + 1;

/** Frames larger than this are built in a pooled buffer when a pool is given. */
const POOL_MIN = 64 * 1024;

/** A pool unused this long (ms) lets its buffers go. */
const POOL_IDLE_MS = 1000;

/**
 * A few reusable buffers for large frames, so a stream of 1 MiB responses
 * does not leave a trail of 1 MiB allocations for the garbage collector.
 * Once no large frame has been built for `idleMs`, the buffers are let go,
 * so a burst of large reads does not pin `keep` MiB for the life of the
 * process.
 */
export class FramePool {
  #free: Uint8Array[] = [];
  #keep: number;
  #idleMs: number;
  #onRelease?: () => void;
  #lastTake = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * `onRelease` runs when the pool has let its buffers go: they are garbage
   * from then on, and their memory returns only once a collection runs (see
   * node/idle_gc.ts, which a quiet process would otherwise not run again).
   */
  constructor(keep = 4, options: { idleMs?: number; onRelease?: () => void } = {}) {
    this.#keep = keep;
    this.#idleMs = options.idleMs ?? POOL_IDLE_MS;
    this.#onRelease = options.onRelease;
  }

  /** Buffers held for reuse. */
  get held(): number {
    return this.#free.length;
  }

  /** A buffer of POOLED_FRAME_BYTES. */
  take(): Uint8Array {
    this.#lastTake = performance.now();
    return this.#free.pop() ?? new Uint8Array(POOLED_FRAME_BYTES);
  }

  /** Returns a frame built by take() once it has been written. */
  give(frame: Uint8Array): void {
    if (frame.buffer.byteLength === POOLED_FRAME_BYTES && this.#free.length < this.#keep) {
      this.#free.push(new Uint8Array(frame.buffer as ArrayBuffer));
      this.#scheduleRelease(this.#idleMs);
    }
  }

  /** Lets the buffers go once the pool has been idle for idleMs (an unref'd timer). */
  #scheduleRelease(delay: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const idle = performance.now() - this.#lastTake;
      if (idle < this.#idleMs) return this.#scheduleRelease(this.#idleMs - idle);
      const released = this.#free.length > 0;
      this.#free = [];
      if (released) this.#onRelease?.();
    }, delay);
    Deno.unrefTimer(this.#timer);
  }
}

/** Options for {@link encodeJsonFrame}. */
export interface EncodeOptions {
  /** The largest body; defaults to {@link MAX_FRAME}. */
  maxFrame?: number;
  /** Where large frames take their buffer from (give it back after writing). */
  pool?: FramePool;
}

/**
 * Encodes JSON text, given whole or in parts, as one frame: header and body
 * in a single buffer, the parts encoded one after another without joining
 * them first. Throws FrameTooLargeError when the body would exceed the cap.
 */
export function encodeJsonFrame(
  json: string | readonly string[],
  options: EncodeOptions = {},
): Uint8Array {
  const parts = typeof json === "string" ? [json] : json;
  const max = options.maxFrame ?? MAX_FRAME;
  let chars = 0;
  for (const p of parts) chars += p.length;
  // UTF-8 needs at most 3 bytes per UTF-16 code unit; one byte past the cap
  // is enough room to tell "fits" from "too large" without encoding twice.
  const room = Math.min(chars * 3, max + 1);
  const pooled = options.pool !== undefined && room > POOL_MIN && max <= MAX_FRAME;
  if (!pooled && chars <= max) {
    // JSON is mostly ASCII, one byte a character: a buffer of the exact size
    // first (a third of the worst case's allocation, and the frame holds no
    // more memory than its length, which the budgets count). Any other
    // character makes it too small, and the frame is made as below.
    const exact = new Uint8Array(HEADER_BYTES + chars);
    let at = HEADER_BYTES;
    let fits = true;
    for (const p of parts) {
      const { read, written } = encoder.encodeInto(p, exact.subarray(at));
      at += written;
      if (read < p.length) {
        fits = false;
        break;
      }
    }
    if (fits && at === HEADER_BYTES + chars) return withLength(exact, chars);
  }
  const out = pooled ? options.pool!.take() : new Uint8Array(HEADER_BYTES + room);
  const end = HEADER_BYTES + room;
  let off = HEADER_BYTES;
  for (const p of parts) {
    const { read, written } = encoder.encodeInto(p, out.subarray(off, end));
    off += written;
    if (read < p.length) {
      if (pooled) options.pool!.give(out);
      let bytes = 0;
      for (const q of parts) bytes += encoder.encode(q).length; // error path only
      throw new FrameTooLargeError(bytes, max);
    }
  }
  const n = off - HEADER_BYTES;
  if (n > max) {
    if (pooled) options.pool!.give(out);
    throw new FrameTooLargeError(n, max);
  }
  return withLength(out, n);
}

/** Writes the header of a body of `n` bytes into `out` and returns the frame. */
function withLength(out: Uint8Array, n: number): Uint8Array {
  out[0] = n >>> 24;
  out[1] = (n >>> 16) & 0xff;
  out[2] = (n >>> 8) & 0xff;
  out[3] = n & 0xff;
  return out.length === HEADER_BYTES + n ? out : out.subarray(0, HEADER_BYTES + n);
}

/** Encodes a value as JSON in one frame. */
export function encodeFrame(value: unknown, maxFrame: number = MAX_FRAME): Uint8Array {
  return encodeJsonFrame(JSON.stringify(value), { maxFrame });
}

/** Writes all of `bytes`, looping over short writes. */
export async function writeAll(sink: ByteSink, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) {
    off += await sink.write(off === 0 ? bytes : bytes.subarray(off));
  }
}

/** A write that did not complete in time: the peer is not reading. */
export class WriteTimeoutError extends Error {
  constructor(ms: number) {
    super(`peer did not take a frame within ${ms} ms`);
    this.name = "WriteTimeoutError";
  }
}

/** Options for {@link FrameWriter}. */
export interface FrameWriterOptions {
  /** Fail (and fail every later write) when one frame takes longer than this. */
  timeoutMs?: number;
}

/** Frames up to this size queued behind a write are joined into one write… */
const COALESCE_FRAME = READ_CHUNK;

/** …of at most this many bytes. */
const COALESCE_BYTES = 64 * 1024;

/** A frame waiting for (or in) its write, and how to settle its caller. */
interface QueuedFrame {
  frame: Uint8Array;
  written?: () => void;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Serialises writes to one sink so concurrent responses never interleave,
 * and tracks how much is waiting and since when a write has been stuck.
 * A failed or timed-out write fails that call and every later one.
 *
 * A frame written while the sink is idle reaches it at once, in the same
 * call (Deno's socket write then makes its syscall at once): a server that
 * answers several requests in one turn of the event loop sends each answer
 * as soon as it is made, so the peer works on it while the next is made,
 * instead of getting them all at the end of the turn. Frames written while
 * one is in progress wait in a queue, in order, and the small ones that
 * wait together go out in one write.
 *
 * The timeout is watched by one timer per writer, armed while writes go on
 * and moved on to the current write's deadline when it fires early, not by a
 * timer per frame: a Node-style timer for each response was the largest
 * single source of garbage in a busy server.
 */
export class FrameWriter {
  #sink: ByteSink;
  #error: unknown = undefined;
  #timeoutMs?: number;
  #pending = 0;
  #busySince = 0;
  #watch?: ReturnType<typeof setTimeout>;
  /** The frame being written, and those queued behind it. */
  #current?: QueuedFrame;
  #queue: QueuedFrame[] = [];

  constructor(sink: ByteSink, options: FrameWriterOptions = {}) {
    this.#sink = sink;
    this.#timeoutMs = options.timeoutMs;
  }

  /** Bytes queued or being written. */
  get pendingBytes(): number {
    return this.#pending;
  }

  /** When the write in progress started (performance.now()), or 0 when idle. */
  get busySince(): number {
    return this.#busySince;
  }

  /**
   * Queues one already-encoded frame (or, when the writer is idle, starts
   * writing it before returning). `written` runs once the frame is fully
   * written (not after a failure, when the sink may still hold the bytes).
   */
  write(frame: Uint8Array, written?: () => void): Promise<void> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise<void>((resolve, reject) => {
      const item: QueuedFrame = { frame, written, resolve, reject };
      this.#pending += frame.length;
      if (this.#current === undefined) this.#start(item);
      else this.#queue.push(item);
    });
  }

  /** Starts writing one frame. */
  #start(item: QueuedFrame): void {
    this.#current = item;
    this.#busySince = performance.now();
    if (this.#timeoutMs !== undefined) this.#arm(this.#timeoutMs);
    this.#send(item, 0);
  }

  /** Hands the sink the bytes of `item` from `off` on; loops over short writes. */
  #send(item: QueuedFrame, off: number): void {
    let wrote: Promise<number>;
    try {
      wrote = this.#sink.write(off === 0 ? item.frame : item.frame.subarray(off));
    } catch (err) {
      this.#fail(item, err);
      return;
    }
    wrote.then((n) => {
      if (this.#current !== item) return; // failed meanwhile (timed out)
      if (off + n < item.frame.length) this.#send(item, off + n);
      else this.#done(item);
    }, (err) => this.#fail(item, err));
  }

  /** One frame is fully written: settles it and starts the next. */
  #done(item: QueuedFrame): void {
    this.#current = undefined;
    this.#busySince = 0;
    this.#pending -= item.frame.length;
    try {
      item.written?.();
    } finally {
      item.resolve();
      const next = this.#takeQueued();
      if (next !== undefined) this.#start(next);
      // Closed meanwhile: nothing more will be written.
      else if (this.#error !== undefined) this.#unwatch();
      // Between writes the watch keeps no process alive.
      else if (this.#watch !== undefined) Deno.unrefTimer(this.#watch);
    }
  }

  /**
   * The next write: the first queued frame, joined with the small frames
   * queued behind it (answers a pipelining peer's requests got while a write
   * was in progress) into one write of at most {@link COALESCE_BYTES}.
   * Large frames (read results) are written as they are, never copied.
   */
  #takeQueued(): QueuedFrame | undefined {
    const first = this.#queue.shift();
    if (first === undefined || first.frame.length > COALESCE_FRAME) return first;
    let n = 0;
    let bytes = first.frame.length;
    for (const q of this.#queue) {
      if (q.frame.length > COALESCE_FRAME || bytes + q.frame.length > COALESCE_BYTES) break;
      bytes += q.frame.length;
      n++;
    }
    if (n === 0) return first;
    const items = [first, ...this.#queue.splice(0, n)];
    const frame = new Uint8Array(bytes);
    let off = 0;
    for (const q of items) {
      frame.set(q.frame, off);
      off += q.frame.length;
    }
    return {
      frame,
      written: () => {
        for (const q of items) q.written?.();
      },
      resolve: () => {
        for (const q of items) q.resolve();
      },
      reject: (err) => {
        for (const q of items) q.reject(err);
      },
    };
  }

  /** The write in progress failed: it and every queued one fail, and so will later ones. */
  #fail(item: QueuedFrame, err: unknown): void {
    if (this.#current !== item) return;
    this.#error = err;
    this.#current = undefined;
    this.#busySince = 0;
    const failed = [item, ...this.#queue];
    this.#queue = [];
    for (const f of failed) {
      this.#pending -= f.frame.length;
      f.reject(err);
    }
    this.#unwatch();
  }

  /**
   * The sink was closed: the frames queued fail, and so will later writes
   * (the one in progress settles as the sink's write does). The watch timer
   * goes at once: left armed, it would hold the writer, and through it the
   * connection, for up to the timeout after the close.
   */
  close(): void {
    const err = this.#error ?? new Error("frame writer: the connection is closed");
    this.#error = err;
    const queued = this.#queue;
    this.#queue = [];
    for (const f of queued) {
      this.#pending -= f.frame.length;
      f.reject(err);
    }
    if (this.#current === undefined) this.#unwatch();
  }

  /** Stops the watch timer for good (a failed or closed writer writes no more). */
  #unwatch(): void {
    clearTimeout(this.#watch);
    this.#watch = undefined;
  }

  /** Arms the watch timer, or holds the process for the one armed already. */
  #arm(ms: number): void {
    if (this.#watch !== undefined) Deno.refTimer(this.#watch);
    else this.#watch = setTimeout(() => this.#check(), ms);
  }

  /** Fails the write in progress once it is past its deadline; else waits for that deadline. */
  #check(): void {
    this.#watch = undefined;
    const current = this.#current;
    if (current === undefined) return; // idle: armed again by the next write
    const left = this.#busySince + this.#timeoutMs! - performance.now();
    if (left <= 0) this.#fail(current, new WriteTimeoutError(this.#timeoutMs!));
    else this.#arm(left);
  }
}
