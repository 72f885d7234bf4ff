/**
 * Group commit of identity.revoke over real sockets: callers that revoke
 * one at a time each, on 8 connections, end up in shared batches (one
 * signed line of the list file each) rather than two groups taking turns,
 * every ack still means fs refuses the token, and a lone caller after the
 * burst is not held back waiting for the others.
 */

import assert from "node:assert/strict";
import { runtimeFiles } from "../../src/runtime/config.ts";
import { Client } from "../../src/server/client.ts";
import { issue, startNode } from "../helpers.ts";

const CONNECTIONS = 8;
const ROUNDS = 10;
/** Batches for CONNECTIONS * ROUNDS revocations: shared ones, not two groups taking turns. */
const BOUND = (CONNECTIONS * ROUNDS) / 5;

Deno.test("identity.revoke: 8 callers one at a time share batches; each ack means fs refuses", async () => {
  const node = await startNode();
  const clients: Client[] = [];
  try {
    const op = node.operatorToken();
    const root = node.exportRoot;
    const path = runtimeFiles(node.layout).revocations;
    const lines = () => Deno.readTextFileSync(path).split("\n").filter((l) => l !== "").length;
    const victims: Awaited<ReturnType<typeof issue>>[] = [];
    for (let i = 0; i < 3 * CONNECTIONS * ROUNDS + 1; i++) {
      victims.push(await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root }));
    }
    const sock = (s: string) => `${node.layout.runtimeDir}/${s}.sock`;
    for (let i = 0; i < CONNECTIONS; i++) clients.push(await Client.connect(sock("identity")));
    // Each check on a connection of its own: fs cuts off one that keeps presenting revoked tokens.
    const fsRefuses = async (token: string) => {
      const fs = await Client.connect(sock("fs"));
      try {
        return !(await fs.request("fs.list", { path: root }, { token })).ok;
      } finally {
        await fs.close();
      }
    };
    // One burst: each caller revokes ROUNDS tokens back to back; the list lines it added.
    let next = 0;
    const burst = async () => {
      const before = lines();
      await Promise.all(
        clients.map(async (c) => {
          for (let r = 0; r < ROUNDS; r++) {
            const v = victims[next++];
            const res = await c.request("identity.revoke", { cap_id: v.cap_id }, { token: op });
            assert.ok(res.ok, JSON.stringify(res));
          }
        }),
      );
      return lines() - before;
    };
    // Two groups of four taking turns make about 20 batches; shared ones about 10 (11-14
    // here). A batch waits at most GATHER_MS for the callers answered before it, so a moment
    // when the machine is slower than that splits batches (19 seen once in CI): the best of
    // three bursts is judged. Two groups taking turns fail all three (ce2c2ac: 19-27 each).
    const seen: number[] = [];
    while (seen.length < 3 && !seen.some((b) => b <= BOUND)) seen.push(await burst());
    assert.ok(
      seen.some((b) => b <= BOUND),
      `${CONNECTIONS * ROUNDS} revocations took ${
        seen.join(", ")
      } batches (at most ${BOUND} expected)`,
    );
    // Every ack meant durable and in effect: fs refuses each of them.
    for (const v of victims.slice(0, next)) {
      assert.ok(await fsRefuses(v.token), `${v.cap_id} still accepted by fs after its ack`);
    }

    // A lone caller after the burst waits for no one.
    const lone = victims[next++];
    const t0 = performance.now();
    const res = await clients[0].request("identity.revoke", { cap_id: lone.cap_id }, { token: op });
    const took = performance.now() - t0;
    assert.ok(res.ok, JSON.stringify(res));
    assert.ok(took < 500, `a lone revoke took ${took.toFixed(0)} ms`);
    assert.ok(await fsRefuses(lone.token));
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    await node.stop();
  }
});
