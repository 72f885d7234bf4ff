/**
 * No tenant starves another at fs.sock: clients that pipeline reads and
 * never read the answers stall only themselves (fs's memory stays bounded,
 * a good client is answered at once, fs is never restarted), and slow
 * senders of large frames delay only themselves.
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import { MAX_FRAME, writeAll } from "../../src/wire/frame.ts";
import { socketPath } from "../../src/runtime/config.ts";
import {
  decodeFrames,
  issue,
  memoryMb,
  rawFrame,
  socketFixtureArgs,
  startNode,
} from "../helpers.ts";
import { expectOk, svcStatus } from "./support.ts";
import type { Response } from "../../src/wire/envelope.ts";

/** fs's RSS must stay below this in the flood (it reached 800 MB before the budgets). */
const RSS_CEILING_MB = 150;

/** A good client's median fs.list latency while the flood runs. */
const GOOD_MEDIAN_CEILING_MS = 100;

/**
 * A good client's worst fs.list latency while the flood runs: the issue's
 * bound. The burst of 250 new connections is accepted 8 at a time and their
 * large reads take turns (one per timer tick past the first few), with fs's
 * sockets polled at every turn, so small requests are answered between them:
 * the worst was 8.1-30.0 ms in five runs, against 27.3-107.6 ms in nine runs
 * before (one failed); before the budgets no answer came within 5 s, and
 * before the turns the burst held the event loop for 150-400 ms.
 */
const GOOD_WORST_CEILING_MS = 100;

/**
 * The worst fs.health on a fresh connection while a flood holds: what issue 10
 * asks of it is that fs is never restarted, and the supervisor's health call
 * waits 2 s (three misses before a kill). A fresh connection waits in the
 * listening socket's queue behind the flood's 250, which are accepted 8 a
 * turn, so it waits more than the good client's open one: 70-171 ms in five
 * runs (12-42 ms before the accepts took turns, when the open connection
 * waited instead). Before the budgets no answer came within 5 s.
 */
const HEALTH_CEILING_MS = 1000;

/**
 * A good client's worst 18 KB request latency among slow senders (it was
 * over 3 s): stalled senders are cut off after 250 ms when others wait.
 */
const SLOW_SENDER_CEILING_MS = 1000;

/** How long the good client keeps asking while the flood holds. */
const FLOOD_MS = 3000;

/** Opens `n` connections and sends each `bytes` (not reading anything back). */
async function flood(path: string, n: number, bytes: Uint8Array): Promise<Deno.UnixConn[]> {
  const conns: Deno.UnixConn[] = [];
  for (let i = 0; i < n; i++) {
    const c = await Deno.connect({ transport: "unix", path });
    conns.push(c);
    writeAll(c, bytes).catch(() => {});
  }
  return conns;
}

/** A flood of `n` clients sending `bytes` and never reading, in a process of its own. */
interface Flooder {
  /** Resolves once every connection is open and its bytes are sent. */
  ready: Promise<void>;
  /** Kills the process and waits for it. */
  stop(): Promise<void>;
}

/** Starts tests/fixtures/flooder.ts against `path`. */
function startFlooder(path: string, n: number, bytes: Uint8Array): Flooder {
  const child = new Deno.Command(Deno.execPath(), {
    args: socketFixtureArgs("flooder.ts", path, String(n)),
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  const sent = writer.write(bytes).then(() => writer.close());
  const ready = (async () => {
    await sent;
    const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("ready")) {
      const { value, done } = await out.read();
      if (done) throw new Error("the flooder exited before it was ready");
      text += value;
    }
    out.releaseLock();
  })();
  return {
    ready,
    stop: async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.status;
      await child.stdout.cancel().catch(() => {});
    },
  };
}

/** Closes connections the test opened (some may already be closed by the server). */
function closeAll(conns: Deno.UnixConn[]): void {
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
}

/** One unread-reads flood: `conns` connections, each sending `reads` reads of `size` bytes of `content`. */
interface Flood {
  label: string;
  content: Uint8Array;
  size: number;
  conns: number;
  reads: number;
  /** The good client's worst fs.list latency allowed. */
  worstMs: number;
}

Deno.test({
  name: "clients that pipeline reads and never read the answers stall only themselves",
  // The floods' writes may still be pending when their connections are closed.
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  // 64 KiB of text: each answer carries it twice (data and data_b64), about 150 KB,
  // copied out of the pooled frame buffer.
  await unreadReadsFlood({
    label: "unread-reads flood",
    content: new TextEncoder().encode("0123456789abcdef".repeat(4096)),
    size: 64 * 1024,
    conns: 250,
    reads: 40,
    worstMs: GOOD_WORST_CEILING_MS,
  });
});

Deno.test({
  name:
    "clients that never read large answers (written from the pooled buffer) stall only themselves",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  // 720 KiB of binary: each answer is a 0.96 MB frame, written from its pooled 1 MiB buffer.
  await unreadReadsFlood({
    label: "unread 720 KiB reads flood",
    // Not UTF-8 (0xff never is), so the answer carries data_b64 alone.
    content: new Uint8Array(720 * 1024).fill(0xff),
    size: 720 * 1024,
    conns: 60,
    reads: 8,
    // The flood's reads queue for the server's response budget; the good
    // client's listing takes from the room kept for small responses instead
    // of waiting in that line (before it did, its worst here was 343-507 ms;
    // 5 s without answer before the budgets).
    worstMs: GOOD_WORST_CEILING_MS,
  });
});

async function unreadReadsFlood(f: Flood): Promise<void> {
  const node = await startNode();
  const path = socketPath(node.layout, "fs");
  try {
    const root = node.exportRoot;
    await Deno.writeFile(`${root}/big.txt`, f.content);
    const tok = await issue(node, {
      service: "fs",
      rights: ["fs.open", "fs.read", "fs.list"],
      path_prefix: root,
    });
    const fs = await node.client("fs");
    const { handle } = expectOk<{ handle: string }>(
      await fs.request("fs.open", { path: `${root}/big.txt` }, { token: tok.token }),
    );
    const before = await svcStatus(node, "fs");
    const fsPid = before.pid!;
    const read = rawFrame(JSON.stringify({
      v: 1,
      req_id: "r",
      method: "fs.read",
      auth: { token: tok.token },
      params: { handle, size: f.size },
    }));
    const burst = new Uint8Array(read.length * f.reads);
    for (let i = 0; i < f.reads; i++) burst.set(read, i * read.length);

    const good = await Client.connect(path);
    const latencies: number[] = [];
    // When each fs.list was sent, and when the flood was all sent: where the worst fell.
    const sentAt: number[] = [];
    let floodAt = NaN;
    let worstHealthMs = 0;
    let peakRss = 0;
    let stop = false;
    const sample = () => (peakRss = Math.max(peakRss, memoryMb(fsPid).rss));
    const watching = (async () => {
      while (!stop) {
        // The good client's fs.list on its own connection...
        let t0 = performance.now();
        expectOk(
          await good.request("fs.list", { path: root }, { token: tok.token, timeoutMs: 5000 }),
        );
        latencies.push(performance.now() - t0);
        sentAt.push(t0);
        // ...and a health check on a fresh one, as the supervisor makes it.
        t0 = performance.now();
        const c = await Client.connect(path, { connectTimeoutMs: 5000 });
        try {
          await c.call("fs.health", undefined, { timeoutMs: 5000 });
        } finally {
          await c.close();
        }
        worstHealthMs = Math.max(worstHealthMs, performance.now() - t0);
        sample();
        // The sampling interval of the real fs process's health and memory.
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    // `conns` connections × `reads` unread reads, from another process.
    const flooder = startFlooder(path, f.conns, burst);
    try {
      await flooder.ready;
      floodAt = performance.now();
      // How long the real flooder process floods the real fs: the measured period.
      await new Promise((r) => setTimeout(r, FLOOD_MS));
    } finally {
      stop = true;
      await watching.finally(() => good.close());
      await flooder.stop();
    }
    sample();
    const sorted = [...latencies].sort((a, b) => a - b);
    const worstMs = sorted.at(-1)!;
    const medianMs = sorted[Math.floor(sorted.length / 2)];
    const worstAt = sentAt[latencies.indexOf(worstMs)] - floodAt;
    console.log(
      `${f.label}: fs peak RSS ${peakRss} MB; good client's fs.list over ` +
        `${latencies.length} requests: median ${medianMs.toFixed(1)} ms, worst ` +
        `${worstMs.toFixed(1)} ms (sent ${worstAt.toFixed(0)} ms after the flood was all sent); ` +
        `worst fresh-connection fs.health ${worstHealthMs.toFixed(1)} ms`,
    );
    assert(latencies.length >= 10, `the good client got only ${latencies.length} answers`);
    assert(peakRss < RSS_CEILING_MB, `fs reached ${peakRss} MB RSS`);
    assert(medianMs < GOOD_MEDIAN_CEILING_MS, `good fs.list median ${medianMs.toFixed(1)} ms`);
    assert(worstMs < f.worstMs, `a good fs.list took ${worstMs.toFixed(1)} ms`);
    assert(
      worstHealthMs < Math.max(f.worstMs, HEALTH_CEILING_MS),
      `fs.health took ${worstHealthMs.toFixed(1)} ms`,
    );
    const after = await svcStatus(node, "fs");
    assert.equal(after.pid, fsPid, "fs was restarted");
    assert.equal(after.restarts, before.restarts);
    assert.equal(after.state, "Healthy");
  } finally {
    await node.stop();
  }
}

/** Sends one frame on `conn` and reads until one whole answer frame is back. */
async function exchange(conn: Deno.UnixConn, frame: Uint8Array): Promise<Response> {
  let off = 0;
  while (off < frame.length) off += await conn.write(frame.subarray(off));
  const parts: number[] = [];
  const buf = new Uint8Array(64 * 1024);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("fs closed the good client's connection");
    parts.push(...buf.subarray(0, n));
    const frames = decodeFrames(new Uint8Array(parts));
    if (frames.length > 0) return frames[0] as Response;
  }
}

/** Sends `frame` on a fresh connection `times` times; the worst time to a whole answer, in ms. */
async function worstOf(path: string, frame: Uint8Array, times: number): Promise<number> {
  let worst = 0;
  for (let i = 0; i < times; i++) {
    const conn = await Deno.connect({ transport: "unix", path });
    try {
      const t0 = performance.now();
      const answer = exchange(conn, frame);
      answer.catch(() => {}); // settles after the race when it is lost
      let timer: ReturnType<typeof setTimeout> | undefined;
      const r = await Promise.race([
        answer,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("no answer within 3 s")), 3000);
        }),
      ]).finally(() => clearTimeout(timer));
      worst = Math.max(worst, performance.now() - t0);
      expectOk(r);
    } finally {
      conn.close();
    }
    // Spaces the samples of the real fs process's latency.
    await new Promise((r) => setTimeout(r, 100));
  }
  return worst;
}

Deno.test({
  name: "slow senders of large frames delay only themselves",
  sanitizeOps: false,
  sanitizeResources: false,
}, async () => {
  const node = await startNode();
  const path = socketPath(node.layout, "fs");
  const slow: Deno.UnixConn[] = [];
  let trickle: ReturnType<typeof setInterval> | undefined;
  try {
    const root = node.exportRoot;
    const tok = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
    const before = await svcStatus(node, "fs");
    // 200 clients announce a 1 MiB frame and send it a byte at a time.
    const header = new Uint8Array(5);
    new DataView(header.buffer).setUint32(0, MAX_FRAME);
    header[4] = 0x7b; // "{"
    slow.push(...await flood(path, 200, header));
    trickle = setInterval(() => {
      for (const c of slow) c.write(new Uint8Array([0x20])).catch(() => {});
    }, 100);
    // Lets the real fs process take in the 200 trickling clients before measuring.
    await new Promise((r) => setTimeout(r, 500));
    // A good client's request of about 18 KB (JSON with whitespace), several times.
    const body = `{"v":1,"req_id":"good","method":"fs.list","auth":{"token":${
      JSON.stringify(tok.token)
    }},"params":{"path":${JSON.stringify(root)}}${" ".repeat(18_000)}}`;
    const trickleMs = await worstOf(path, rawFrame(body), 5);
    // Then 16 more send all of a 1 MiB frame but its last byte, and stop:
    // together they would hold the whole request budget.
    const almost = new Uint8Array(4 + MAX_FRAME - 1).fill(0x20);
    new DataView(almost.buffer).setUint32(0, MAX_FRAME);
    almost[4] = 0x7b;
    slow.push(...await flood(path, 16, almost));
    // Lets the real fs process read the 16 almost-whole frames before measuring.
    await new Promise((r) => setTimeout(r, 300));
    const stallMs = await worstOf(path, rawFrame(body), 5);
    const rss = memoryMb(before.pid!).rss;
    console.log(
      `slow senders: good client's worst 18 KB request ${trickleMs.toFixed(1)} ms among 200 ` +
        `byte-a-time senders, ${stallMs.toFixed(1)} ms with 16 more stalled 1 byte short; ` +
        `fs RSS ${rss} MB`,
    );
    assert(trickleMs < SLOW_SENDER_CEILING_MS, `the good request took ${trickleMs.toFixed(1)} ms`);
    assert(stallMs < SLOW_SENDER_CEILING_MS, `the good request took ${stallMs.toFixed(1)} ms`);
    const after = await svcStatus(node, "fs");
    assert.equal(after.pid, before.pid, "fs was restarted");
    assert.equal(after.restarts, before.restarts);
  } finally {
    clearInterval(trickle);
    closeAll(slow);
    await node.stop();
  }
});
