/**
 * Unit tests for src/wire/frame.ts: length-prefixed framing over fake byte
 * sources and sinks.
 */

import assert from "node:assert/strict";
import {
  type ByteSink,
  type ByteSource,
  encodeFrame,
  encodeJsonFrame,
  FramePool,
  FrameReader,
  FrameTooLargeError,
  FrameWriter,
  HEADER_BYTES,
  MAX_FRAME,
  TruncatedFrameError,
  writeAll,
  WriteTimeoutError,
} from "../../src/wire/frame.ts";
import { concat } from "./support.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A frame built by hand: 4-byte big-endian `announced` (default: body length), then body. */
function frameOf(body: Uint8Array | string, announced?: number): Uint8Array {
  const b = typeof body === "string" ? encoder.encode(body) : body;
  const out = new Uint8Array(HEADER_BYTES + b.length);
  new DataView(out.buffer).setUint32(0, announced ?? b.length);
  out.set(b, HEADER_BYTES);
  return out;
}

/**
 * A ByteSource that hands out predefined chunks, at most `maxPerRead` bytes
 * per read, and records how many reads and bytes it served.
 */
class FakeSource implements ByteSource {
  reads = 0;
  delivered = 0;
  #chunks: Uint8Array[];
  #maxPerRead: number;

  constructor(chunks: Uint8Array[], maxPerRead = Infinity) {
    this.#chunks = chunks.map((c) => c.slice());
    this.#maxPerRead = maxPerRead;
  }

  /** Chunks not yet (fully) handed out. */
  get remainingChunks(): number {
    return this.#chunks.length;
  }

  read(p: Uint8Array): Promise<number | null> {
    this.reads++;
    const chunk = this.#chunks[0];
    if (!chunk) return Promise.resolve(null);
    const n = Math.min(p.length, chunk.length, this.#maxPerRead);
    p.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    this.delivered += n;
    return Promise.resolve(n);
  }
}

/** A sink that accepts at most `maxPerWrite` bytes per call and yields between calls. */
class FakeSink implements ByteSink {
  written: number[] = [];
  calls = 0;
  failAfterCalls = Infinity;
  #maxPerWrite: number;

  constructor(maxPerWrite = Infinity) {
    this.#maxPerWrite = maxPerWrite;
  }

  get bytes(): Uint8Array {
    return Uint8Array.from(this.written);
  }

  async write(p: Uint8Array): Promise<number> {
    this.calls++;
    // Give other queued writers every chance to interleave.
    await Promise.resolve();
    await Promise.resolve();
    if (this.calls > this.failAfterCalls) throw new Error("sink broke");
    const n = Math.min(p.length, this.#maxPerWrite);
    for (let i = 0; i < n; i++) this.written.push(p[i]);
    return n;
  }
}

function text(body: Uint8Array | null): string | null {
  return body === null ? null : decoder.decode(body);
}

Deno.test("FrameReader: a frame fed one byte per read is reassembled", async () => {
  // given two frames delivered one byte at a time
  const source = new FakeSource([concat(frameOf('{"a":1}'), frameOf('{"b":22}'))], 1);
  const reader = new FrameReader(source);
  // when both frames are read
  const first = text(await reader.next());
  const second = text(await reader.next());
  const end = await reader.next();
  // then each body is intact and the stream ends cleanly
  assert.equal(first, '{"a":1}');
  assert.equal(second, '{"b":22}');
  assert.equal(end, null);
  assert.equal(source.delivered, 4 + 7 + 4 + 8);
});

Deno.test("FrameReader: several frames in one read come out one by one without re-reading", async () => {
  // given three frames (one empty) arriving in a single chunk
  const source = new FakeSource([concat(frameOf("one"), frameOf(""), frameOf("three"))]);
  const reader = new FrameReader(source);
  // when they are read
  const bodies = [text(await reader.next()), text(await reader.next()), text(await reader.next())];
  // then all three come from the one read, with nothing left buffered
  assert.deepEqual(bodies, ["one", "", "three"]);
  assert.equal(source.reads, 1);
  assert.equal(reader.buffered, 0);
  assert.equal(await reader.next(), null);
});

Deno.test("FrameReader: once every frame is returned, the next is read into the whole buffer", async () => {
  // given 40 frames of 900 bytes, one per read, as a client sending one request at a time does
  const bodies = Array.from({ length: 40 }, (_, i) => String(i % 10).repeat(900));
  const source = new FakeSource(bodies.map((b) => frameOf(b)));
  const reader = new FrameReader(source);
  // when they are read one after another
  const got: (string | null)[] = [];
  for (let i = 0; i < bodies.length; i++) got.push(text(await reader.next()));
  // then each took one read: none was split by the end of the reader's buffer
  assert.deepEqual(got, bodies);
  assert.equal(source.reads, bodies.length);
});

Deno.test("FrameReader: an oversize announced length throws before any body byte is read", async () => {
  // given a header announcing MAX_FRAME + 1 bytes, delivered alone, with a body behind it
  const header = frameOf("", MAX_FRAME + 1);
  const body = new Uint8Array(1024).fill(0x41);
  const source = new FakeSource([header, body]);
  const reader = new FrameReader(source);
  // when the frame is read
  const err = await reader.next().then(() => undefined, (e) => e);
  // then it is refused with the announced size, and the body was never asked for
  assert.ok(err instanceof FrameTooLargeError, `got ${err}`);
  assert.equal(err.size, MAX_FRAME + 1);
  assert.equal(source.reads, 1);
  assert.equal(source.delivered, HEADER_BYTES);
  assert.equal(source.remainingChunks, 1);
});

Deno.test("FrameReader: a frame of exactly MAX_FRAME bytes is accepted", async () => {
  // given a body of exactly the limit, arriving in odd-sized pieces
  const body = new Uint8Array(MAX_FRAME);
  for (let i = 0; i < body.length; i++) body[i] = i % 251;
  const source = new FakeSource([frameOf(body)], 70_001);
  // when it is read
  const got = await new FrameReader(source).next();
  // then every byte is there
  assert.ok(got);
  assert.equal(got.length, MAX_FRAME);
  assert.deepEqual(got, body);
});

Deno.test("FrameReader: maxFrame option lowers the limit", async () => {
  // given a reader limited to 10 bytes and an 11-byte frame
  const reader = new FrameReader(new FakeSource([frameOf("x".repeat(11))]), { maxFrame: 10 });
  // when it is read, then it is too large
  await assert.rejects(reader.next(), (e: unknown) => e instanceof FrameTooLargeError);
  // and a 10-byte frame on a fresh reader is fine
  const ok = new FrameReader(new FakeSource([frameOf("y".repeat(10))]), { maxFrame: 10 });
  assert.equal(text(await ok.next()), "y".repeat(10));
});

Deno.test("FrameReader: a stream cut inside the header is a TruncatedFrameError", async () => {
  // given two header bytes and then the end of the stream
  const reader = new FrameReader(new FakeSource([new Uint8Array([0, 0])]));
  // when read, then it is truncated (not a clean end)
  await assert.rejects(reader.next(), TruncatedFrameError);
});

Deno.test("FrameReader: a stream cut inside a small body is a TruncatedFrameError", async () => {
  // given a header for 10 bytes followed by only 4
  const cut = frameOf("0123456789").subarray(0, HEADER_BYTES + 4);
  const reader = new FrameReader(new FakeSource([cut]));
  // when read, then it is truncated
  await assert.rejects(reader.next(), /after 4 of 10 bytes/);
});

Deno.test("FrameReader: a stream cut inside a large body is a TruncatedFrameError", async () => {
  // given a 200 000-byte frame of which only 150 000 body bytes arrive
  const full = frameOf(new Uint8Array(200_000).fill(7));
  const reader = new FrameReader(new FakeSource([full.subarray(0, HEADER_BYTES + 150_000)]));
  // when read, then it is truncated
  const err = await reader.next().then(() => undefined, (e) => e);
  assert.ok(err instanceof TruncatedFrameError, `got ${err}`);
  assert.match(err.message, /150000 of 200000/);
});

Deno.test("FrameReader: an empty stream ends cleanly with null", async () => {
  // given no bytes at all, when read, then null
  assert.equal(await new FrameReader(new FakeSource([])).next(), null);
});

Deno.test("FrameReader: bodies larger than 64 KiB are read correctly, before and after small frames", async () => {
  // given a small frame, a 300 000-byte frame, a frame of exactly 64 KiB and another small one,
  // arriving in uneven chunks that straddle frame boundaries
  const large = new Uint8Array(300_000);
  for (let i = 0; i < large.length; i++) large[i] = (i * 31 + (i >> 8)) & 0xff;
  const exact = new Uint8Array(64 * 1024).fill(0x5a);
  const stream = concat(frameOf("head"), frameOf(large), frameOf(exact), frameOf("tail"));
  const chunks: Uint8Array[] = [];
  for (let off = 0, n = 1; off < stream.length; off += n, n = (n * 7 + 13) % 90_000 + 1) {
    chunks.push(stream.subarray(off, Math.min(stream.length, off + n)));
  }
  const reader = new FrameReader(new FakeSource(chunks));
  // when all four are read
  const a = text(await reader.next());
  const b = (await reader.next())!.slice();
  const c = (await reader.next())!.slice();
  const d = text(await reader.next());
  // then each is byte-for-byte what was sent
  assert.equal(a, "head");
  assert.deepEqual(b, large);
  assert.deepEqual(c, exact);
  assert.equal(d, "tail");
  assert.equal(await reader.next(), null);
});

Deno.test("encodeJsonFrame: the header is the big-endian UTF-8 byte length", () => {
  // given short ASCII and multi-byte JSON texts
  // when encoded
  const small = encodeJsonFrame('{"a":1}');
  const mid = encodeJsonFrame(JSON.stringify("x".repeat(298)));
  const utf8 = encodeJsonFrame('"é€😀"');
  // then the headers count bytes, not characters
  assert.deepEqual([...small.subarray(0, 4)], [0, 0, 0, 7]);
  assert.equal(decoder.decode(small.subarray(4)), '{"a":1}');
  assert.deepEqual([...mid.subarray(0, 4)], [0, 0, 1, 44]); // 300 bytes
  assert.deepEqual([...utf8.subarray(0, 4)], [0, 0, 0, 11]); // 2 + 2 + 3 + 4
  assert.equal(utf8.length, 4 + 11);
  const frame3 = encodeJsonFrame("a".repeat(0x012345));
  assert.deepEqual([...frame3.subarray(0, 4)], [0x00, 0x01, 0x23, 0x45]);
});

Deno.test("encodeFrame: encodes a value as its JSON text in one frame", () => {
  // given a value, when encoded, then the body is its JSON
  const f = encodeFrame({ v: 1, req_id: "r", ok: true, result: { n: "ü" } });
  const len = new DataView(f.buffer, f.byteOffset).getUint32(0);
  assert.equal(len, f.length - 4);
  assert.deepEqual(JSON.parse(decoder.decode(f.subarray(4))), {
    v: 1,
    req_id: "r",
    ok: true,
    result: { n: "ü" },
  });
});

Deno.test("encodeJsonFrame: ASCII text of exactly MAX_FRAME bytes fits; one more byte does not", () => {
  // given texts of MAX_FRAME and MAX_FRAME + 1 ASCII bytes
  const fits = encodeJsonFrame("a".repeat(MAX_FRAME));
  // then the first encodes with the full length in its header
  assert.equal(fits.length, MAX_FRAME + 4);
  assert.deepEqual([...fits.subarray(0, 4)], [0x00, 0x10, 0x00, 0x00]);
  // and the second is refused with its size
  assert.throws(
    () => encodeJsonFrame("a".repeat(MAX_FRAME + 1)),
    (e: unknown) => e instanceof FrameTooLargeError && e.size === MAX_FRAME + 1,
  );
});

Deno.test("encodeJsonFrame: multi-byte UTF-8 is measured in bytes near the 1 MiB limit", () => {
  // given "€" (3 bytes) repeated to just under the limit, topped up with one ASCII byte
  const euros = "€".repeat(Math.floor(MAX_FRAME / 3)); // 1 048 575 bytes
  // when encoded with one more ASCII byte, it fits exactly
  const exact = encodeJsonFrame(euros + "a");
  assert.equal(exact.length, 4 + MAX_FRAME);
  // and 4-byte characters that add up to exactly the limit fit too
  assert.equal(encodeJsonFrame("😀".repeat(MAX_FRAME / 4)).length, 4 + MAX_FRAME);
  // but a two-byte character past the limit is refused
  assert.throws(() => encodeJsonFrame(euros + "é"), FrameTooLargeError);
  // and so is a three-byte one after MAX_FRAME - 1 ASCII bytes
  assert.throws(() => encodeJsonFrame("a".repeat(MAX_FRAME - 1) + "€"), FrameTooLargeError);
  // while the same text with a custom, larger limit is accepted
  assert.equal(
    encodeJsonFrame("a".repeat(MAX_FRAME - 1) + "€", { maxFrame: MAX_FRAME + 2 }).length,
    4 + MAX_FRAME + 2,
  );
});

Deno.test("encodeJsonFrame: the error reports the encoded size, above the limit", () => {
  // given text whose last character (3 bytes) overflows the limit: MAX_FRAME + 2 bytes in all
  const json = "a".repeat(MAX_FRAME - 1) + "€";
  // when encoded
  const err = (() => {
    try {
      encodeJsonFrame(json);
    } catch (e) {
      return e;
    }
  })();
  // then FrameTooLargeError says a size over the limit (its size is "the encoded body size")
  assert.ok(err instanceof FrameTooLargeError);
  assert.ok(err.size > MAX_FRAME, `reported size ${err.size} is not above ${MAX_FRAME}`);
});

Deno.test("writeAll: loops over short writes until every byte is written", async () => {
  // given a sink that takes 3 bytes per call
  const sink = new FakeSink(3);
  const bytes = encoder.encode("0123456789");
  // when everything is written
  await writeAll(sink, bytes);
  // then it took four calls and nothing was lost
  assert.equal(sink.calls, 4);
  assert.equal(decoder.decode(sink.bytes), "0123456789");
});

Deno.test("FrameWriter: concurrent writes never interleave, and keep their order", async () => {
  // given a sink with short writes that yields between calls, and three frames
  const sink = new FakeSink(5);
  const writer = new FrameWriter(sink);
  const frames = [encodeFrame({ n: "first-frame" }), encodeFrame({ n: "second" }), encodeFrame({})];
  // when all three are written without waiting for each other
  await Promise.all(frames.map((f) => writer.write(f)));
  // then the sink holds them back to back, whole and in order
  assert.deepEqual(sink.bytes, concat(...frames));
  const reader = new FrameReader(new FakeSource([sink.bytes]));
  assert.equal(text(await reader.next()), '{"n":"first-frame"}');
  assert.equal(text(await reader.next()), '{"n":"second"}');
  assert.equal(text(await reader.next()), "{}");
});

Deno.test("FrameWriter: a failed write fails that call and every later one", async () => {
  // given a sink that breaks on its second call
  const sink = new FakeSink();
  sink.failAfterCalls = 1;
  const writer = new FrameWriter(sink);
  // when three frames are written
  const results = await Promise.allSettled([
    writer.write(encodeFrame({ a: 1 })),
    writer.write(encodeFrame({ b: 2 })),
    writer.write(encodeFrame({ c: 3 })),
  ]);
  // then the first succeeds and the other two fail, the third without touching the sink
  assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected", "rejected"]);
  assert.equal(sink.calls, 2);
  await assert.rejects(writer.write(encodeFrame({ d: 4 })), /sink broke/);
});

Deno.test("encodeJsonFrame: JSON given in parts encodes exactly like the joined text", () => {
  // given a text split into parts, including empty and multi-byte ones
  const parts = [
    '{"v":1,"req_id":"r","ok":true,"result":',
    '{"data":"',
    "",
    "h\u00e9llo ✓😀",
    '"}',
    "}",
  ];
  // when encoded from the parts and from the joined string
  const fromParts = encodeJsonFrame(parts);
  const joined = encodeJsonFrame(parts.join(""));
  // then the frames are byte-for-byte the same
  assert.deepEqual(fromParts, joined);
  assert.deepEqual(JSON.parse(decoder.decode(fromParts.subarray(4))).result, { data: "héllo ✓😀" });
});

Deno.test("encodeJsonFrame: a frame holds exactly its bytes, with multi-byte text in any part", () => {
  // given ASCII text, and parts whose multi-byte characters come before ASCII ones
  for (
    const parts of [['{"a":"b"}'], ['"\u00e9', 'a"'], ['"a', "\u00e9", '"'], ['"\ud800', 'b"']]
  ) {
    // when encoded
    const frame = encodeJsonFrame(parts);
    const want = encoder.encode(parts.join(""));
    // then the header and body are the joined text's UTF-8, and an ASCII frame's buffer is its own size
    assert.deepEqual(frame, frameOf(want));
    if (want.length === parts.join("").length) assert.equal(frame.buffer.byteLength, frame.length);
  }
});

Deno.test("encodeJsonFrame: parts that together exceed the limit are refused", () => {
  const half = "a".repeat(MAX_FRAME / 2);
  assert.equal(encodeJsonFrame([half, half]).length, 4 + MAX_FRAME);
  assert.throws(() => encodeJsonFrame([half, half, "b"]), FrameTooLargeError);
  assert.throws(() => encodeJsonFrame(["x".repeat(10), "y"], { maxFrame: 10 }), FrameTooLargeError);
});

Deno.test("FramePool: large frames are built in a pooled buffer, which is reused once given back", () => {
  // given a pool and a text over 64 KiB
  const pool = new FramePool();
  const text = JSON.stringify("z".repeat(100_000));
  // when encoded with the pool, then the frame lives in a full-size pooled buffer
  const first = encodeJsonFrame(text, { pool });
  assert.equal(first.buffer.byteLength, HEADER_BYTES + MAX_FRAME + 1);
  assert.deepEqual(first, encodeJsonFrame(text));
  // when given back, the next large frame takes the same buffer
  pool.give(first);
  const second = encodeJsonFrame(text, { pool });
  assert.equal(second.buffer, first.buffer);
  // while small frames never use the pool
  const small = encodeJsonFrame('{"a":1}', { pool });
  assert.equal(small.buffer.byteLength < 1024, true);
});

Deno.test("FramePool: a frame refused as too large gives its pooled buffer back", () => {
  // given a pooled buffer that has been used and returned
  const pool = new FramePool();
  const ok = encodeJsonFrame("q".repeat(200_000), { pool });
  pool.give(ok);
  // when a too-large text is encoded with the pool
  assert.throws(() => encodeJsonFrame("q".repeat(MAX_FRAME + 1), { pool }), FrameTooLargeError);
  // then the buffer is back in the pool for the next frame
  assert.equal(encodeJsonFrame("q".repeat(200_000), { pool }).buffer, ok.buffer);
});

Deno.test("FramePool: keeps at most `keep` buffers, and ignores buffers it did not make", () => {
  const pool = new FramePool(2);
  const bufs = [pool.take(), pool.take(), pool.take()];
  for (const b of bufs) pool.give(b);
  pool.give(new Uint8Array(10));
  const again = [pool.take(), pool.take(), pool.take()];
  // two of the three come back from the pool, the third is new
  assert.equal(again.filter((b) => bufs.some((x) => x.buffer === b.buffer)).length, 2);
  assert.ok(again.every((b) => b.length === HEADER_BYTES + MAX_FRAME + 1));
});

Deno.test("FramePool: lets its buffers go once idle, and keeps them while in use", async () => {
  // given a pool that lets go after 300 ms idle, holding a buffer
  const pool = new FramePool(4, { idleMs: 300 });
  const a = pool.take();
  pool.give(a);
  assert.equal(pool.held, 1);
  // when large frames keep being built, then the buffer stays
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 20));
    pool.give(pool.take());
  }
  assert.equal(pool.held, 1);
  // when nothing takes a buffer for longer than idleMs, then none is held
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(pool.held, 0);
  // and the next large frame gets a fresh buffer
  assert.notEqual(pool.take().buffer, a.buffer);
});

/** A sink whose writes complete only when released. */
class GatedSink implements ByteSink {
  received = 0;
  #waiting: (() => void)[] = [];

  write(p: Uint8Array): Promise<number> {
    return new Promise((resolve) => {
      this.#waiting.push(() => {
        this.received += p.length;
        resolve(p.length);
      });
    });
  }

  /** Completes every write waiting now. */
  release(): void {
    const w = this.#waiting;
    this.#waiting = [];
    for (const f of w) f();
  }

  get waiting(): number {
    return this.#waiting.length;
  }
}

async function ticks(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve();
}

Deno.test("FrameWriter: pendingBytes counts queued and in-progress bytes; busySince marks a write in progress", async () => {
  // given a writer on a sink that holds each write until released
  const sink = new GatedSink();
  const writer = new FrameWriter(sink);
  assert.equal(writer.busySince, 0);
  // when two frames are queued
  const a = writer.write(new Uint8Array(10));
  const b = writer.write(new Uint8Array(20));
  await ticks();
  // then both count as pending and a write is in progress
  assert.equal(writer.pendingBytes, 30);
  assert.ok(writer.busySince > 0);
  assert.equal(sink.waiting, 1, "only one write at a time reaches the sink");
  // when the sink takes them, the counters go back to zero
  sink.release();
  await a;
  assert.equal(writer.pendingBytes, 20);
  await ticks();
  sink.release();
  await b;
  assert.equal(writer.pendingBytes, 0);
  assert.equal(writer.busySince, 0);
  assert.equal(sink.received, 30);
});

Deno.test("FrameWriter: the written callback runs after a complete write, not after a failure", async () => {
  // given a sink that fails its second call
  const sink = new FakeSink();
  sink.failAfterCalls = 1;
  const writer = new FrameWriter(sink);
  const done: string[] = [];
  // when two frames are written with callbacks
  await writer.write(encodeFrame({ a: 1 }), () => done.push("a"));
  await writer.write(encodeFrame({ b: 2 }), () => done.push("b")).catch(() => {});
  // then only the successful one reported being written
  assert.deepEqual(done, ["a"]);
});

Deno.test("FrameWriter: a write the peer does not take within timeoutMs fails, and so does every later one", async () => {
  // given a sink that never completes a write, and a 20 ms timeout
  const sink = new GatedSink();
  const writer = new FrameWriter(sink, { timeoutMs: 20 });
  // when a frame is written
  await assert.rejects(writer.write(encodeFrame({ a: 1 })), WriteTimeoutError);
  // then the writer is no longer busy, and later writes fail at once without reaching the sink
  assert.equal(writer.busySince, 0);
  await assert.rejects(writer.write(encodeFrame({ b: 2 })), WriteTimeoutError);
  assert.equal(sink.waiting, 1);
  sink.release();
});

Deno.test("FrameWriter: each frame gets its whole timeout from its own start, across writes that share the watch", async () => {
  // given a 60 ms timeout and a first frame the peer takes after 40 ms
  const sink = new GatedSink();
  const writer = new FrameWriter(sink, { timeoutMs: 60 });
  const first = writer.write(encodeFrame({ a: 1 }));
  await new Promise((r) => setTimeout(r, 40));
  sink.release();
  await first;
  // when a second frame is never taken
  const t0 = performance.now();
  const second = writer.write(encodeFrame({ b: 2 })).then(() => "written", (e) => e);
  // then it is still pending when the first frame's deadline passes (20 ms later)
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(sink.waiting, 1);
  assert.equal(await Promise.race([second, Promise.resolve("pending")]), "pending");
  // and it fails once its own 60 ms are up
  const err = await second;
  assert.ok(err instanceof WriteTimeoutError, String(err));
  const ms = performance.now() - t0;
  assert.ok(ms >= 59, `failed after ${ms.toFixed(1)} ms`);
  sink.release();
});

Deno.test("FrameWriter: an idle writer's watch keeps no process alive (a write in progress does: see the timeout test)", async () => {
  // given a writer with a long timeout that wrote one frame and is idle
  const sink = new GatedSink();
  const writer = new FrameWriter(sink, { timeoutMs: 60_000 });
  const first = writer.write(encodeFrame({ a: 1 }));
  await ticks();
  sink.release();
  await first;
  assert.equal(writer.busySince, 0);
  // then a child Deno process doing the same exits at once (the watch is unref'd while idle)
  const code = `
    import { FrameWriter } from ${
    JSON.stringify(new URL("../../src/wire/frame.ts", import.meta.url).href)
  };
    const w = new FrameWriter({ write: (p) => Promise.resolve(p.length) }, { timeoutMs: 60000 });
    await w.write(new Uint8Array(8));
  `;
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", code],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.ok(performance.now() - t0 < 30_000, "the idle watch held the process");
});

Deno.test("FrameWriter.close: the watch timer goes at once, so a closed connection's writer is not held for the timeout", async () => {
  // given setTimeout and clearTimeout counted (the watch is the writer's only timer)
  const live = new Set<unknown>();
  const { setTimeout: set, clearTimeout: clear } = globalThis;
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    const id: ReturnType<typeof set> = set(() => {
      live.delete(id);
      fn();
    }, ms);
    live.add(id);
    return id;
  }) as typeof set;
  globalThis.clearTimeout = ((id?: ReturnType<typeof set>) => {
    live.delete(id);
    clear(id);
  }) as typeof clear;
  try {
    // and a writer with a long timeout that has written one frame, and one whose write is under way
    const sink = new GatedSink();
    const idle = new FrameWriter(sink, { timeoutMs: 60_000 });
    const first = idle.write(encodeFrame({ a: 1 }));
    await ticks();
    sink.release();
    await first;
    const busy = new FrameWriter(sink, { timeoutMs: 60_000 });
    const pending = busy.write(encodeFrame({ b: 2 }));
    const queued = busy.write(encodeFrame({ c: 3 }));
    await ticks();
    assert.equal(live.size, 2);
    // when both are closed
    idle.close();
    busy.close();
    // then the idle one's timer is gone at once, the queued frame fails, and so do later writes
    assert.equal(live.size, 1);
    await assert.rejects(queued);
    await assert.rejects(idle.write(encodeFrame({ d: 4 })));
    // and the busy one's timer goes once its write in progress settles
    sink.release();
    await pending;
    assert.equal(live.size, 0);
  } finally {
    globalThis.setTimeout = set;
    globalThis.clearTimeout = clear;
  }
});

Deno.test("FrameReader.next: a large body is reserved a chunk at a time as it arrives", async () => {
  // given a 100 KiB body that arrives 1,000 bytes per read
  const body = new Uint8Array(100 * 1024).fill(0x61);
  const source = new FakeSource([frameOf(body)], 1000);
  const reader = new FrameReader(source);
  const calls: { n: number; delivered: number }[] = [];
  // when it is read with a reserve callback
  const got = await reader.next({
    reserve: (n) => void calls.push({ n, delivered: source.delivered }),
  });
  // then the body is whole, and the reservations add up to its length
  assert.equal(got!.length, body.length);
  assert.equal(calls.reduce((a, c) => a + c.n, 0), body.length);
  // and each reservation is for at most 16 KiB, made only once the bytes
  // reserved before it had arrived (a slow sender holds about what it sent)
  let reserved = 0;
  for (const c of calls) {
    assert(c.n <= 16 * 1024, `reserved ${c.n} at once`);
    assert(reserved <= c.delivered, `reserved ${reserved} before ${c.delivered} bytes arrived`);
    reserved += c.n;
  }
});

Deno.test("FrameReader.next: no more of a large body is read until its reservation resolves", async () => {
  // given a 64 KiB body whose second reservation never resolves
  const source = new FakeSource([frameOf(new Uint8Array(64 * 1024))]);
  const reader = new FrameReader(source);
  let calls = 0;
  const reading = reader.next({
    reserve: () => (++calls === 1 ? undefined : new Promise<void>(() => {})),
  });
  reading.catch(() => {});
  // Turns of the event loop (not time) until the reader asks for its second reservation.
  for (let i = 0; i < 1000 && calls < 2; i++) await new Promise((r) => setTimeout(r, 0));
  // then the reader has taken from the source only what the first reservation covers
  assert.equal(calls, 2);
  assert(source.delivered <= HEADER_BYTES + 16 * 1024, `read ${source.delivered} bytes`);
});

Deno.test("FrameWriter: a frame written to an idle writer reaches the sink within the call; later ones queue behind it", () => {
  // given a writer on a sink that holds each write until released
  const sink = new GatedSink();
  const writer = new FrameWriter(sink, { timeoutMs: 60_000 });
  // when two frames are written, without waiting
  const a = writer.write(new Uint8Array(10));
  // then the first is at the sink at once (no turn of the event loop in between)
  assert.equal(sink.waiting, 1);
  const b = writer.write(new Uint8Array(20));
  // and the second waits for it
  assert.equal(sink.waiting, 1);
  assert.equal(writer.pendingBytes, 30);
  sink.release();
  return a.then(async () => {
    await ticks();
    assert.equal(sink.waiting, 1);
    sink.release();
    await b;
    assert.equal(sink.received, 30);
  });
});

Deno.test("FrameWriter: small frames queued behind a write go out together in one write; a large one is never copied", async () => {
  // given a writer on a gated sink that records what each write was given
  const given: Uint8Array[] = [];
  const gate = new GatedSink();
  const sink: ByteSink = {
    write(p) {
      given.push(p);
      return gate.write(p);
    },
  };
  const writer = new FrameWriter(sink);
  const done: string[] = [];
  // when a frame is in progress and three small ones and then a large one queue behind it
  const first = writer.write(encodeFrame({ n: 0 }));
  const small = [1, 2, 3].map((n) => writer.write(encodeFrame({ n }), () => done.push(`w${n}`)));
  const large = new Uint8Array(64 * 1024);
  const big = writer.write(large);
  gate.release();
  await first;
  await ticks();
  // then the three small ones reach the sink as one write, in order
  assert.equal(given.length, 2);
  assert.deepEqual(
    given[1],
    concat(encodeFrame({ n: 1 }), encodeFrame({ n: 2 }), encodeFrame({ n: 3 })),
  );
  gate.release();
  await Promise.all(small);
  assert.deepEqual(done, ["w1", "w2", "w3"]);
  // and the large one is written from its own buffer afterwards
  await ticks();
  assert.equal(given.length, 3);
  assert.equal(given[2], large);
  gate.release();
  await big;
  assert.equal(writer.pendingBytes, 0);
});

Deno.test("FrameReader: a client's large bodies in a row are read whole in few reads, each one right", async () => {
  // given large bodies of decreasing, then larger, sizes, a small one, and a large one again,
  // each a different pattern, arriving in one chunk each
  const body = (n: number, seed: number) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (i * seed + (i >> 9)) & 0xff;
    return b;
  };
  const bodies = [
    body(700_000, 3),
    body(500_000, 5),
    body(900_000, 7),
    encoder.encode("small"),
    body(600_000, 11),
  ];
  const source = new FakeSource(bodies.map((b) => frameOf(b)));
  const reader = new FrameReader(source);
  // when each is read (and copied before the next call, as the view is valid until then)
  const got: Uint8Array[] = [];
  for (let i = 0; i < bodies.length; i++) got.push((await reader.next())!.slice());
  // then every body is byte for byte what was sent, whatever the one before left in the buffer
  for (let i = 0; i < bodies.length; i++) assert.deepEqual(got[i], bodies[i], `body ${i}`);
  // and a body that arrived whole took one read past its header's, not one per 16 KiB
  assert.ok(source.reads <= bodies.length * 2 + 1, `${source.reads} reads`);
  assert.equal(await reader.next(), null);
});

Deno.test("FramePool: letting its buffers go after being idle is told (once, and not when it held none)", async () => {
  let told = 0;
  const pool = new FramePool(4, { idleMs: 20, onRelease: () => told++ });
  pool.give(pool.take());
  assert.equal(pool.held, 1);
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(pool.held, 0);
  assert.equal(told, 1);
  // a buffer taken and not given back leaves nothing to let go
  pool.take();
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(told, 1);
});
