/**
 * One delegation tree cannot use up what the node shares between tenants:
 * fs's open handles count against every ancestor below the root token, and
 * so do identity's live revocations, whose last part is kept for the
 * operator's revoke.
 */

import assert from "node:assert/strict";
import { stateFiles } from "../../src/runtime/config.ts";
import {
  MAX_LIVE_REVOCATIONS,
  MAX_REVOCATIONS_PER_CALLER,
  OPERATOR_RESERVED_REVOCATIONS,
} from "../../src/identity/service.ts";
import { DEFAULT_HANDLE_LIMITS } from "../../src/fs/handles.ts";
import { REGISTRY_LIMITS } from "../../src/registry/service.ts";
import { issue, startNode, tempLayout } from "../helpers.ts";
import { expectError, expectOk, randomCapId } from "./support.ts";

Deno.test("one delegation tree cannot fill fs's handle table", async () => {
  const node = await startNode();
  try {
    await Deno.writeTextFile(`${node.exportRoot}/f.txt`, "shared file\n");
    const file = `${node.exportRoot}/f.txt`;
    // L may delegate; its children each open as many handles as one capability may.
    const L = await issue(node, {
      service: "*",
      rights: ["identity.issue", "fs.open", "fs.read"],
      ttl_seconds: 600,
    });
    const { perCapability, perTree } = DEFAULT_HANDLE_LIMITS;
    const children = Math.ceil(perTree / perCapability) + 1;
    const fs = await node.client("fs");
    let opened = 0;
    let refused: { child: number; res: unknown } | undefined;
    for (let c = 0; c < children && !refused; c++) {
      const child = await issue(node, { service: "fs", rights: ["fs.open", "fs.read"] }, L.token);
      for (let i = 0; i < perCapability; i++) {
        const r = await fs.request("fs.open", { path: file }, { token: child.token });
        if (!r.ok) {
          refused = { child: c, res: r };
          expectError(
            r,
            "RESOURCE_EXHAUSTED",
            new RegExp(`delegation tree of capability ${L.cap_id} already has ${perTree} open`),
          );
          break;
        }
        opened++;
      }
    }
    assert(refused, `one tree opened ${opened} handles through ${children} children`);
    assert.equal(opened, perTree);
    assert(perTree * 8 <= DEFAULT_HANDLE_LIMITS.total, "the tree limit is well below the node's");
    // An unrelated token, and the operator, still open files.
    const other = await issue(node, { service: "fs", rights: ["fs.open"], ttl_seconds: 600 });
    expectOk(await fs.request("fs.open", { path: file }, { token: other.token }));
    expectOk(await fs.request("fs.open", { path: file }, { token: node.operatorToken() }));
  } finally {
    await node.stop();
  }
});

Deno.test("one delegation tree cannot fill the registry", async () => {
  const node = await startNode();
  try {
    const L = await issue(node, {
      service: "*",
      rights: ["identity.issue", "registry.register"],
      ttl_seconds: 600,
    });
    const { perOwner, perTree } = REGISTRY_LIMITS;
    const reg = await node.client("registry");
    const register = (service: string, token: string) =>
      reg.request("registry.register", { service, endpoint: "unix:///run/x.sock" }, { token });
    let made = 0;
    let refused = false;
    for (let c = 0; c <= perTree / perOwner && !refused; c++) {
      const child = await issue(
        node,
        { service: "registry", rights: ["registry.register"] },
        L.token,
      );
      for (let i = 0; i < perOwner; i++) {
        const r = await register(`t${c}-${i}`, child.token);
        if (!r.ok) {
          expectError(
            r,
            "RESOURCE_EXHAUSTED",
            new RegExp(`delegation tree of capability ${L.cap_id} already registered ${perTree}`),
          );
          refused = true;
          break;
        }
        made++;
      }
    }
    assert(refused, `one tree registered ${made} services`);
    assert.equal(made, perTree);
    // Another tenant, and the operator, still register.
    const other = await issue(node, { service: "registry", rights: ["registry.register"] });
    expectOk(await register("other", other.token));
    expectOk(await register("ops", node.operatorToken()));
  } finally {
    await node.stop();
  }
});

/** Appends revocation log lines as identity writes them (the test acts as the node's owner). */
async function seedRevocations(
  path: string,
  count: number,
  by: string,
  byTree?: string[],
): Promise<void> {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const at = new Date().toISOString();
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    lines.push(
      JSON.stringify({
        cap_id: randomCapId(),
        exp,
        at,
        by,
        ...(byTree ? { by_tree: byTree } : {}),
      }),
    );
  }
  await Deno.writeTextFile(path, lines.join("\n") + "\n", { append: true });
}

Deno.test("a delegated tree shares one revocation quota and leaves room for the operator", async (t) => {
  const temp = await tempLayout();
  let node = await startNode({ temp });
  try {
    const revokers = ["identity.issue", "identity.revoke", "fs.list"];
    const L = await issue(node, { service: "*", rights: revokers, ttl_seconds: 600 });
    const C = await issue(node, { service: "*", rights: revokers, ttl_seconds: 300 }, L.token);
    const D = await issue(node, { service: "*", rights: revokers, ttl_seconds: 300 }, L.token);
    const victim = await issue(node, { service: "fs", rights: ["fs.list"] }, D.token);
    const revoke = async (token: string, victim: string) =>
      await node.request("identity", "identity.revoke", { token: victim }, token);

    await t.step("C's revocations count against L's tree: D is refused", async () => {
      // C has used the whole tree's quota (as identity logged it); restart on that log.
      await node.stop();
      await seedRevocations(
        stateFiles(temp.layout).revocationLog,
        MAX_REVOCATIONS_PER_CALLER,
        C.cap_id,
        [L.cap_id, C.cap_id],
      );
      node = await startNode({ temp });
      expectError(
        await revoke(D.token, victim.token),
        "RESOURCE_EXHAUSTED",
        new RegExp(`delegation tree of capability ${L.cap_id} already has \\d+ live revocations`),
      );
      // The operator is not held to any tree's quota.
      expectOk(await revoke(node.operatorToken(), victim.token));
    });

    await t.step("live revocations made through identity.revoke count for the tree", async () => {
      // A fresh tree: M revokes once itself; its child's revocation counts for M too.
      const M = await issue(node, { service: "*", rights: revokers, ttl_seconds: 600 });
      const N = await issue(node, { service: "*", rights: revokers, ttl_seconds: 300 }, M.token);
      const v = await issue(node, { service: "fs", rights: ["fs.list"] }, N.token);
      expectOk(await revoke(N.token, v.token));
      const log = await Deno.readTextFile(stateFiles(temp.layout).revocationLog);
      const line = log.trim().split("\n").map((l) => JSON.parse(l)).find((e) =>
        e.cap_id === v.cap_id
      );
      assert.deepEqual(line?.by_tree, [M.cap_id, N.cap_id], JSON.stringify(line));
    });

    await t.step("delegated trees fill their share: the operator still revokes", async () => {
      await node.stop();
      const room = MAX_LIVE_REVOCATIONS - OPERATOR_RESERVED_REVOCATIONS;
      // Many trees, each within its quota, together reach the delegated share.
      const perTree = MAX_REVOCATIONS_PER_CALLER - 1;
      for (let done = MAX_REVOCATIONS_PER_CALLER + 2; done < room; done += perTree) {
        const tree = randomCapId();
        await seedRevocations(
          stateFiles(temp.layout).revocationLog,
          Math.min(perTree, room - done),
          tree,
          [
            tree,
          ],
        );
      }
      node = await startNode({ temp });
      // E is a fresh tree with its whole quota: it is refused for lack of room...
      const E = await issue(node, { service: "*", rights: revokers, ttl_seconds: 600 });
      const mine = await issue(node, { service: "fs", rights: ["fs.list"] }, E.token);
      expectError(
        await revoke(E.token, mine.token),
        "RESOURCE_EXHAUSTED",
        /revocations are live, the most identity keeps for delegated tokens/,
      );
      // ...and the operator's revoke goes through.
      expectOk(await revoke(node.operatorToken(), mine.token));
      expectError(
        await node.request("fs", "fs.list", { path: node.exportRoot }, mine.token),
        "UNAUTHENTICATED",
        /revoked/,
        "revoked",
      );
    });
  } finally {
    await node.stop();
    await temp.cleanup();
  }
});
