/**
 * Revocations reach fs and the registry only through
 * the list file, read before each request. Every identity.revoke that
 * answers ok must be in effect at the very next request while identity
 * replaces the file under the readers (a key rotation, an idle compaction)
 * and other batches are being appended: the token is refused at fs and at
 * the registry, and the registry entry it registered is gone for a public
 * registry.resolve.
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import { runtimeFiles, type ServiceName, socketPath } from "../../src/runtime/config.ts";
import { COMPACT_IDLE_MS } from "../../src/identity/service.ts";
import { issue, startNode } from "../helpers.ts";
import { expectError, expectOk } from "./support.ts";

Deno.test("revokes answered while the list file is replaced are in effect at fs and the registry at once", async () => {
  const node = await startNode();
  const open = (s: ServiceName) => Client.connect(socketPath(node.layout, s));
  const clients: Client[] = [];
  try {
    const op = node.operatorToken();
    const root = node.exportRoot;
    const listFile = runtimeFiles(node.layout).revocations;
    const rotator = await open("identity");
    clients.push(rotator);
    let rotating = true;
    let rotations = 0;
    // Replaces the list file again and again while the workers revoke.
    const rotate = (async () => {
      while (rotating) {
        expectOk(await rotator.request("identity.rotate_key", {}, { token: op }));
        rotations++;
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    const inodes = new Set<number>();
    const worker = async (w: number) => {
      const [id, fs, reg] = await Promise.all([open("identity"), open("fs"), open("registry")]);
      clients.push(id, fs, reg);
      for (let i = 0; i < 25; i++) {
        const v = await issue(node, {
          service: "*",
          rights: ["fs.list", "registry.register"],
          path_prefix: root,
        });
        const name = `review-${w}-${i}`;
        expectOk(
          await reg.request("registry.register", {
            service: name,
            endpoint: `unix:///tmp/${name}.sock`,
            api_v: 1,
          }, { token: v.token }),
        );
        expectOk(await fs.request("fs.list", { path: root }, { token: v.token }));
        expectOk(await id.request("identity.revoke", { cap_id: v.cap_id }, { token: op }));
        const [l, d, r] = await Promise.all([
          fs.request("fs.list", { path: root }, { token: v.token }),
          reg.request("registry.deregister", { service: name }, { token: v.token }),
          reg.request("registry.resolve", { service: name }),
        ]);
        expectError(l, "UNAUTHENTICATED", /revoked/, "revoked");
        expectError(d, "UNAUTHENTICATED", /revoked/, "revoked");
        expectError(r, "NOT_FOUND", /not registered/);
        inodes.add(Deno.statSync(listFile).ino!);
        // now and then go quiet long enough for an idle compaction
        if (i % 8 === 7) await new Promise((res) => setTimeout(res, COMPACT_IDLE_MS + 50));
      }
    };
    await Promise.all([0, 1, 2, 3].map(worker));
    rotating = false;
    await rotate;
    assert.ok(rotations >= 3, `${rotations} rotations`);
    console.log(`${rotations} rotations, ${inodes.size} list files seen`);
    assert.ok(inodes.size >= 3, `the list file was replaced ${inodes.size} times`);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await node.stop();
  }
});
