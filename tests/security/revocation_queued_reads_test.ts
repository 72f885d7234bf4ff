/**
 * Protocol.md says revoking a capability closes its handles at once. fs
 * learns of a revocation when it reads the list file, before it judges a
 * request; a heavy read authorized before the revoke and waiting for its
 * turn is judged again once its turn comes, so it is refused after the ok
 * instead of reading on a handle that should be closed. Whether fs read
 * after the ok is told by fs's own audit line of each read (when it read),
 * not by when the client got the answer: a read made before the revoke can
 * reach a client busy with 60 connections tens of ms later on a loaded
 * machine (CI saw three such answers 20+ ms after the ok).
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import { socketPath, stateFiles } from "../../src/runtime/config.ts";
import type { Response } from "../../src/wire/envelope.ts";
import { issue, startNode } from "../helpers.ts";
import { expectOk } from "./support.ts";

Deno.test("heavy fs.reads queued before a revoke do not read on after identity.revoke answered ok", async () => {
  const node = await startNode();
  const clients: Client[] = [];
  try {
    const root = node.exportRoot;
    const op = node.operatorToken();
    Deno.writeFileSync(`${root}/big.bin`, new Uint8Array(64 * 1024).fill(7));
    const v = await issue(node, {
      service: "fs",
      rights: ["fs.open", "fs.read"],
      path_prefix: root,
    });
    const fs0 = await Client.connect(socketPath(node.layout, "fs"));
    const idc = await Client.connect(socketPath(node.layout, "identity"));
    clients.push(fs0, idc);
    const { handle } = expectOk<{ handle: string }>(
      await fs0.request("fs.open", { path: `${root}/big.bin` }, { token: v.token }),
    );
    const conns = await Promise.all(
      Array.from({ length: 60 }, () => Client.connect(socketPath(node.layout, "fs"))),
    );
    clients.push(...conns);
    let okAt = Infinity;
    const late: Response[] = [];
    const afterOk: Response[] = [];
    let first!: () => void;
    const started = new Promise<void>((r) => (first = r));
    // 120 reads of 32 KiB (heavy: they take turns), all sent before the revoke
    const reads = conns.flatMap((c) =>
      [0, 1].map(() =>
        c.request("fs.read", { handle, size: 32 * 1024 }, { token: v.token }).then((r) => {
          first();
          if (performance.now() > okAt) afterOk.push(r);
          if (performance.now() > okAt + 20) late.push(r);
          return r;
        })
      )
    );
    await started;
    expectOk(await idc.request("identity.revoke", { cap_id: v.cap_id }, { token: op }));
    okAt = performance.now();
    const okWall = Date.now();
    await Promise.all(reads);
    // fs writes its audit lines every 100 ms.
    await new Promise((r) => setTimeout(r, 300));
    const readsAfterOk = Deno.readTextFileSync(stateFiles(node.layout).audit).split("\n")
      .filter((line) => line.includes('"event":"fs.read"') && line.includes(v.cap_id))
      .map((line) => Date.parse(JSON.parse(line).ts))
      // The ok's time and the lines' are the same clock, in whole ms.
      .filter((ts) => ts > okWall);
    const readOk = late.filter((r) => r.ok).length;
    console.log(
      `${late.length} reads answered 20+ ms after the revoke's ok; ${readOk} of them read`,
    );
    // Reads still queued when the ok came are answered after it, refused.
    const refused = afterOk.filter((r) => !r.ok).length;
    console.log(`${afterOk.length} answered after the ok, ${refused} refused`);
    console.log(`fs's audit: ${readsAfterOk.length} reads of the capability after the ok`);
    assert.equal(
      readsAfterOk.length,
      0,
      `fs read on the revoked capability's handle ${readsAfterOk.length} times after the ok`,
    );
    assert.ok(refused > 0, "no read was still queued: the test proved nothing, rerun");
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await node.stop();
  }
});
