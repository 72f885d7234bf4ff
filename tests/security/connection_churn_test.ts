/**
 * A local client that opens and closes connections as fast as it can: each
 * closed connection must leave nothing behind in the service. Its writer's
 * timer used to hold it, its socket object and its buffers for the 10 s
 * write timeout after the close, so a burst grew the heap by about 1 KB a
 * connection (5,000: +4.6 MB still there seconds later), and a few clients
 * looping for 10 s drove identity to 85 MB and its answers down to a few
 * hundred a second.
 */

import assert from "node:assert/strict";
import { socketPath } from "../../src/runtime/config.ts";
import { callOnce } from "../../src/server/client.ts";
import { rawFrame, socketFixtureArgs, startNode, waitFor } from "../helpers.ts";

const BURST = 5000;

Deno.test("a burst of 5,000 short connections to identity.sock leaves its heap where it was", async () => {
  const node = await startNode();
  try {
    const path = socketPath(node.layout, "identity");
    // Watched over one connection opened before the burst.
    const heapMb = async () => {
      const r = await node.request("identity", "identity.health");
      assert.ok(r.ok, JSON.stringify(r));
      return (r.result as { memory: { heap_used: number } }).memory.heap_used / 1048576;
    };
    // The heap as it settles after the start (the idle collection runs once it is quiet).
    await new Promise((r) => setTimeout(r, 2500));
    const before = await heapMb();
    // Each connection: one request, its answer, then closed by the client.
    const frame = rawFrame(JSON.stringify({ v: 1, req_id: "c", method: "identity.health" }));
    const buf = new Uint8Array(4096);
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < BURST / 4; i++) {
        const conn = await Deno.connect({ transport: "unix", path });
        await conn.write(frame);
        assert.ok((await conn.read(buf))! > 0);
        conn.close();
      }
    }));
    // Within 5 s (half the write timeout that held them), the heap is back where it was.
    let grown = Infinity;
    await waitFor("identity's heap back after the burst", async () => {
      grown = await heapMb() - before;
      return grown < 2;
    }, 5000).catch(() => {});
    assert.ok(
      grown < 2,
      `identity's heap still ${grown.toFixed(1)} MB over its size before the burst`,
    );
  } finally {
    await node.stop();
  }
});

/**
 * A client of the socket group that connects and closes in a loop fills
 * fs.sock's listening queue faster than fs accepts, and the kernel refuses
 * connects at once (EAGAIN) while it lasts. The supervisor's health calls
 * failed so, and after three in a row it killed fs, cutting every open
 * connection: 63 of 68 fresh health calls failed over 15 s of two such
 * flooders, and fs was restarted. A client now tries such a connect again
 * until its connect timeout, as a blocking connect would wait for room.
 */
Deno.test({
  name: "a connect-and-close flood at fs.sock leaves fs running and reachable",
  sanitizeResources: false,
  async fn() {
    const node = await startNode();
    const flooders: Deno.ChildProcess[] = [];
    try {
      const path = socketPath(node.layout, "fs");
      const supervisor = await node.client("supervisor");
      const fsStatus = () =>
        supervisor.call<{ pid: number; memory: unknown }>("supervisor.svc.status", { name: "fs" });
      const fsPid = async () => (await fsStatus()).pid;
      const pid = await fsPid();
      const open = await node.client("fs");
      for (let i = 0; i < 2; i++) {
        const child = new Deno.Command(Deno.execPath(), {
          args: socketFixtureArgs("churner.ts", path, "4"),
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        flooders.push(child);
        const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        assert.match((await lines.read()).value ?? "", /ready/);
        lines.releaseLock();
      }
      // The flood fills the queue: a connect is refused at once (EAGAIN).
      await waitFor("fs.sock's listening queue full", async () => {
        try {
          (await Deno.connect({ transport: "unix", path })).close();
          return false;
        } catch (err) {
          return err instanceof Deno.errors.WouldBlock;
        }
      }, 5000);
      const fresh: number[] = [];
      const answered: number[] = [];
      let memoryKnown = 0;
      const rounds = 24;
      for (let i = 0; i < rounds; i++) {
        // What the supervisor's health calls see: svc.status asks fs for its memory.
        if ((await fsStatus()).memory !== null) memoryKnown++;
        // A new client: its connect waits for room in the queue (up to 2 s).
        let t = performance.now();
        await callOnce(path, "fs.health", {}, { timeoutMs: 2000, connectTimeoutMs: 2000 });
        fresh.push(performance.now() - t);
        // A client connected before the flood.
        t = performance.now();
        await open.call("fs.health", {}, { timeoutMs: 2000 });
        answered.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 250));
      }
      console.log(
        `fresh fs.health worst ${Math.max(...fresh).toFixed(1)} ms, ` +
          `open ${Math.max(...answered).toFixed(1)} ms; fs's memory known ${memoryKnown}/${rounds}`,
      );
      // (svc.status asks with a 1 s timeout: two slow ones on a loaded machine are let pass;
      // before this change about three in four failed at once.)
      assert.ok(memoryKnown >= rounds - 2, "the supervisor's health calls did not reach fs");
      assert.ok(Math.max(...answered) < 100, `an open connection waited ${answered}`);
      assert.equal(await fsPid(), pid, "fs was restarted during the flood");
    } finally {
      for (const f of flooders) {
        try {
          f.kill("SIGKILL");
        } catch { /* gone */ }
        await f.status;
        await f.stdout.cancel().catch(() => {});
      }
      await node.stop();
    }
  },
});
