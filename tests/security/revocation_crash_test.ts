/**
 * Group commit against a crash: identity is killed with SIGKILL while eight
 * callers revoke tokens as fast as they are answered (batches in flight,
 * list lines being appended, fsyncs under way). Every revocation that was
 * acknowledged must be refused by the restarted identity and by fs, and
 * again by an fs started afresh (which reads the list file the new identity
 * wrote from its log); a revocation cut off by the crash may have been made
 * or not, but identity and the new fs must then agree on it; and nothing
 * that was never revoked is refused.
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import { issue, startNode, waitFor } from "../helpers.ts";
import { expectOk, killAndAwaitRestart, requestRetrying, svcStatus } from "./support.ts";

const CALLERS = 8;
/** Acknowledged revocations before the kill: enough for many batches to have gone out. */
const ACKED_BEFORE_KILL = 120;
const VICTIMS = 400;

Deno.test("kill -9 of identity amid a stream of revocations: every acknowledged one holds", async () => {
  const node = await startNode();
  const callers: Client[] = [];
  try {
    const op = node.operatorToken();
    const root = node.exportRoot;
    const victims: Awaited<ReturnType<typeof issue>>[] = [];
    for (let i = 0; i < VICTIMS; i++) {
      victims.push(await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root }));
    }
    const sock = (s: string) => `${node.layout.runtimeDir}/${s}.sock`;
    for (let i = 0; i < CALLERS; i++) callers.push(await Client.connect(sock("identity")));
    const identity = await svcStatus(node, "identity");
    assert(identity.pid !== null);

    const acked = new Set<string>();
    /** Sent, but the answer never came (the connection died with identity). */
    const cutOff = new Set<string>();
    let next = 0;
    let killed = false;
    await Promise.all(callers.map(async (c) => {
      while (next < VICTIMS) {
        const v = victims[next++];
        let res;
        try {
          res = await c.request("identity.revoke", { cap_id: v.cap_id }, { token: op });
        } catch {
          cutOff.add(v.cap_id);
          return;
        }
        assert.ok(res.ok, JSON.stringify(res));
        acked.add(v.cap_id);
        if (!killed && acked.size >= ACKED_BEFORE_KILL) {
          killed = true;
          Deno.kill(identity.pid!, "SIGKILL");
        }
      }
    }));
    assert.ok(killed, `only ${acked.size} revocations were acknowledged`);
    assert.ok(cutOff.size > 0, "no revocation was under way when identity was killed");
    const sent = next;
    assert.ok(sent < VICTIMS, "the callers ran out of tokens before identity died");

    await waitFor("identity Healthy again with a new pid", async () => {
      const s = await svcStatus(node, "identity");
      return s.state === "Healthy" && s.pid !== null && s.pid !== identity.pid;
    }, 15_000);
    await node.childPids();

    // Each check on a connection of its own: fs cuts off one that keeps presenting revoked tokens.
    const fsAccepts = async (token: string) => {
      const fs = await Client.connect(sock("fs"));
      try {
        const res = await fs.request("fs.list", { path: root }, { token });
        if (!res.ok) {
          assert.equal(res.error.name, "UNAUTHENTICATED", JSON.stringify(res));
          assert.match(res.error.message, /has been revoked/);
        }
        return res.ok;
      } finally {
        await fs.close();
      }
    };
    const identityValid = async (token: string) =>
      expectOk<{ valid: boolean }>(
        await requestRetrying(node, "identity", "identity.introspect", { token }),
      ).valid;

    const check = async (when: string) => {
      for (const v of victims.slice(0, sent)) {
        const valid = await identityValid(v.token);
        const accepted = await fsAccepts(v.token);
        if (acked.has(v.cap_id)) {
          assert.equal(valid, false, `${when}: identity honours ${v.cap_id}, revoked and acked`);
          assert.equal(accepted, false, `${when}: fs honours ${v.cap_id}, revoked and acked`);
        } else {
          // Cut off by the crash: made or not, identity and fs say the same.
          assert.equal(accepted, valid, `${when}: fs and identity disagree on ${v.cap_id}`);
        }
      }
      // Never revoked: still honoured.
      for (const v of victims.slice(sent)) {
        assert.equal(await fsAccepts(v.token), true, `${when}: fs refuses ${v.cap_id}`);
        assert.equal(await identityValid(v.token), true, `${when}: identity refuses ${v.cap_id}`);
      }
    };
    // The running fs: its set only adds, so a cut-off revocation whose list line it read
    // before identity died stays refused there even if identity's log never had it. Only
    // the acked and the never-sent are judged against it.
    for (const v of victims.slice(0, sent)) {
      if (acked.has(v.cap_id)) {
        assert.equal(await fsAccepts(v.token), false, `fs honours ${v.cap_id}, revoked and acked`);
      }
    }
    for (const v of victims.slice(sent)) assert.equal(await fsAccepts(v.token), true);
    // A new fs reads the list file the new identity wrote from its log: all agree.
    await killAndAwaitRestart(node, "fs");
    await check("after fs restarted");
  } finally {
    for (const c of callers) await c.close().catch(() => {});
    await node.stop();
  }
});
