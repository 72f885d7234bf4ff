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
import { rawFrame, startNode, waitFor } from "../helpers.ts";

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
