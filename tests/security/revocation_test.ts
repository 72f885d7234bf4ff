/**
 * Revocation: no one but identity can change what fs considers revoked (no
 * revoke/unrevoke or push method at fs; forged or replayed lines in the list
 * file change nothing), a revocation is in effect at fs for the very next
 * request after identity's answer, and a revocation survives a kill -9 of identity, of fs,
 * and a restart of the whole node on the same state dir, also once the list
 * file has been compacted.
 */

import assert from "node:assert/strict";
import { runtimeFiles, socketPath, stateFiles } from "../../src/runtime/config.ts";
import { Client } from "../../src/server/client.ts";
import { generateSigningKey } from "../../src/token/keys.ts";
import { LIST_CHUNK, ownListEntries, signRevocationList } from "../../src/token/revocation_set.ts";
import { issue, type Node, startNode, tempLayout, waitFor } from "../helpers.ts";
import { COMPACT_IDLE_LINES } from "../../src/identity/service.ts";
import {
  assertRefusedAfterRestart,
  claimsOf,
  expectError,
  expectOk,
  footerKid,
  killAndAwaitRestart,
  requestRetrying,
  revokeMany,
  svcStatus,
} from "./support.ts";

Deno.test("what fs holds revoked comes only from identity's signed list, in effect at once", async (t) => {
  const node = await startNode();
  try {
    const root = node.exportRoot;
    const victim = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
    const list = (token: string) => node.request("fs", "fs.list", { path: root }, token);
    const listFile = runtimeFiles(node.layout).revocations;
    // Lines written into the list file as an attacker with write access to it would.
    const plant = (line: string) => Deno.writeTextFileSync(listFile, line + "\n", { append: true });
    const fsPid = (await svcStatus(node, "fs")).pid;
    // identity's own, genuine list from before any revocation (for the replay step).
    const oldList = (await Deno.readTextFile(listFile)).trim();
    expectOk(await list(victim.token));

    await t.step("fs has no revoke, unrevoke or push method", async () => {
      for (const method of ["fs.revoke", "fs.unrevoke", "fs.sync"]) {
        expectError(
          await node.request("fs", method, { cap_id: victim.cap_id, signed: oldList }),
          "INVALID_ARGUMENT",
          new RegExp(`^method: unknown method ${method.replace(".", "\\.")}; fs offers `),
        );
        // Not even with a token that could revoke at identity.
        expectError(
          await node.request("fs", method, { cap_id: victim.cap_id }, node.operatorToken()),
          "INVALID_ARGUMENT",
          /unknown method/,
        );
      }
      expectError(
        await node.request("fs", "identity.revoke", { cap_id: victim.cap_id }),
        "INVALID_ARGUMENT",
        /identity\.revoke is not served here \(this is fs\.sock\)/,
      );
      expectError(
        await node.request("identity", "identity.unrevoke", { cap_id: victim.cap_id }),
        "INVALID_ARGUMENT",
        /unknown method identity\.unrevoke/,
      );
      expectOk(await list(victim.token));
    });

    await t.step("garbage lines in the list file revoke nothing", async () => {
      for (const line of ["garbage", "v4.public.AAAA.BBBB", "v4.local.xyz", "x".repeat(5000)]) {
        plant(line);
      }
      expectOk(await list(victim.token));
    });

    await t.step("a list signed by a foreign key revokes nothing", async () => {
      const foreign = await generateSigningKey();
      const entry = { cap_id: victim.cap_id, exp: victim.expires + 60 };
      plant(await signRevocationList(foreign, "identity@test", [entry]));
      // The same forgery claiming the node's key id.
      const kid = footerKid(node.operatorToken());
      const lying = await signRevocationList({ ...foreign, kid }, "identity@test", [entry]);
      assert.equal(footerKid(lying), kid);
      plant(lying);
      // The token that was not revoked still works.
      expectOk(await list(victim.token));
    });

    await t.step("a genuine capability token in place of a list revokes nothing", async () => {
      // Signed by the node's key, but not a revocation list: refused by its type.
      plant(victim.token);
      plant(node.operatorToken());
      expectOk(await list(victim.token));
    });

    await t.step("a real revocation is in effect at fs for the next request", async () => {
      // Many times over, each checked at fs the moment identity answers.
      for (let i = 0; i < 20; i++) {
        const t = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
        expectOk(await list(t.token));
        expectOk(
          await node.request(
            "identity",
            "identity.revoke",
            { cap_id: t.cap_id },
            node.operatorToken(),
          ),
        );
        expectError(await list(t.token), "UNAUTHENTICATED", /has been revoked/, "revoked");
      }
      const r = expectOk<{ status: string }>(
        await node.request(
          "identity",
          "identity.revoke",
          { cap_id: victim.cap_id },
          node.operatorToken(),
        ),
      );
      assert.equal(r.status, "revoked");
      expectError(
        await list(victim.token),
        "UNAUTHENTICATED",
        new RegExp(`capability ${victim.cap_id} has been revoked`),
        "revoked",
      );
    });

    await t.step("replaying identity's older (empty) list does not unrevoke", async () => {
      plant(oldList);
      expectError(await list(victim.token), "UNAUTHENTICATED", /revoked/, "revoked");
      // Nor does its current list again.
      const now = (await Deno.readTextFile(listFile)).trim().split("\n").at(-1)!;
      plant(now);
      expectError(await list(victim.token), "UNAUTHENTICATED", /revoked/, "revoked");
    });

    await t.step("fs survived all of it (same pid, Healthy)", async () => {
      const s = await svcStatus(node, "fs");
      assert.equal(s.state, "Healthy");
      assert.equal(s.pid, fsPid);
    });
  } finally {
    await node.stop();
  }
});

Deno.test("revocation survives kill -9 of identity, of fs, and a full restart", async (t) => {
  const temp = await tempLayout();
  let node: Node | undefined;
  try {
    node = await startNode({ temp });
    const root = temp.exportRoot;
    const revoked = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
    const kept = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
    const operatorBefore = node.operatorToken();
    const list = (n: Node, token: string) =>
      requestRetrying(n, "fs", "fs.list", { path: root }, token);
    const introspect = async (n: Node, token: string) =>
      expectOk<{ valid: boolean; reason?: string }>(
        await requestRetrying(n, "identity", "identity.introspect", { token }),
      );
    const refusedEverywhere = async (n: Node, token: string, capId: string) => {
      expectError(
        await list(n, token),
        "UNAUTHENTICATED",
        new RegExp(`capability ${capId} has been revoked`),
        "revoked",
      );
      const i = await introspect(n, token);
      assert.equal(i.valid, false);
      assert.equal(i.reason, "revoked");
    };

    expectOk(
      await node.request(
        "identity",
        "identity.revoke",
        { cap_id: revoked.cap_id },
        node.operatorToken(),
      ),
    );
    await refusedEverywhere(node, revoked.token, revoked.cap_id);
    expectOk(await list(node, kept.token));
    const log = await Deno.readTextFile(stateFiles(temp.layout).revocationLog);
    assert(log.includes(revoked.cap_id), "the revocation is in the durable log");

    await t.step("(a) kill -9 identity: still refused at fs and identity", async () => {
      const n = node!;
      await killAndAwaitRestart(n, "identity");
      await refusedEverywhere(n, revoked.token, revoked.cap_id);
      expectOk(await list(n, kept.token));
      assert.equal((await introspect(n, kept.token)).valid, true);
    });

    await t.step(
      "(b) kill -9 fs: still refused; a revocation made while fs is down holds too",
      async () => {
        const n = node!;
        await killAndAwaitRestart(n, "fs");
        await refusedEverywhere(n, revoked.token, revoked.cap_id);
        expectOk(await list(n, kept.token));

        // Revoke a third token right after fs is killed, before it is back.
        const late = await issue(n, { service: "fs", rights: ["fs.list"], path_prefix: root });
        expectOk(await list(n, late.token));
        const before = await svcStatus(n, "fs");
        Deno.kill(before.pid!, "SIGKILL");
        expectOk(
          await requestRetrying(
            n,
            "identity",
            "identity.revoke",
            { cap_id: late.cap_id },
            n.operatorToken(),
          ),
        );
        await waitFor("fs Healthy again", async () => {
          const s = await svcStatus(n, "fs");
          return s.state === "Healthy" && s.pid !== before.pid;
        }, 15_000);
        await n.childPids();
        // Revoked while fs was down: the new fs read it from the list file.
        expectError(await list(n, late.token), "UNAUTHENTICATED", /has been revoked/, "revoked");
        await refusedEverywhere(n, revoked.token, revoked.cap_id);
        expectOk(await list(n, kept.token));
      },
    );

    await t.step("(c) stop the node, start a new one on the same layout", async () => {
      await node!.stop();
      node = undefined;
      node = await startNode({ temp });
      const n = node;
      await refusedEverywhere(n, revoked.token, revoked.cap_id);
      // Keys persist: the token issued before the restart still works.
      expectOk(await list(n, kept.token));
      assert.equal((await introspect(n, kept.token)).valid, true);
      // The operator token persists too (it was still valid).
      assert.equal(n.operatorToken(), operatorBefore);
    });
  } finally {
    await node?.stop();
    await temp.cleanup();
  }
});

Deno.test("the list file is compacted: one signed line, expired entries gone, every live one still refused by a restarted fs", async () => {
  const node = await startNode();
  try {
    const root = node.exportRoot;
    const op = node.operatorToken();
    const path = runtimeFiles(node.layout).revocations;
    const revoke = async (capId: string) =>
      expectOk(await node.request("identity", "identity.revoke", { cap_id: capId }, op));
    const short = await issue(node, { service: "fs", rights: ["fs.list"], ttl_seconds: 1 });
    await revoke(short.cap_id);
    await waitFor("the short token to expire", () => Date.now() > short.expires * 1000 + 50, 5000);
    // One at a time: each revocation is its own batch, so its own line.
    const victims = [];
    for (let i = 0; i < COMPACT_IDLE_LINES + 8; i++) {
      const v = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
      await revoke(v.cap_id);
      victims.push(v);
    }
    const lines = () => Deno.readTextFileSync(path).split("\n").filter((l) => l !== "");
    await waitFor("the list file compacted to one line", () => lines().length === 1, 10_000);
    const { typ, revoked_packed } = claimsOf(lines()[0]) as {
      typ: string;
      revoked_packed: string;
    };
    assert.equal(typ, "strata.revocations");
    assert.equal(typeof revoked_packed, "string", "written whole, the entries are packed");
    const ids = new Set(idsOf(lines()[0]));
    for (const v of victims) assert(ids.has(v.cap_id), `${v.cap_id} kept in the compacted list`);
    assert(!ids.has(short.cap_id), "the expired token's entry is dropped");

    await killAndAwaitRestart(node, "fs");
    for (const v of victims) {
      expectError(
        await requestRetrying(node, "fs", "fs.list", { path: root }, v.token),
        "UNAUTHENTICATED",
        new RegExp(`capability ${v.cap_id} has been revoked`),
        "revoked",
      );
    }
  } finally {
    await node.stop();
  }
});

/** When the last of `tokens` expires (ms since the epoch). */
function lastExpiry(tokens: { expires: number }[]): number {
  return Math.max(...tokens.map((t) => t.expires)) * 1000;
}

/** The list file's lines, and the ids of a line. */
function listLines(node: Node): string[] {
  return Deno.readTextFileSync(runtimeFiles(node.layout).revocations).split("\n").filter((l) =>
    l !== ""
  );
}
function idsOf(line: string): string[] {
  return ownListEntries(line).map((e) => e.cap_id);
}

Deno.test("a compaction writes full lines again as they were (never one changed in place) and signs only what is new; a restarted fs still refuses every revoked token", async () => {
  const node = await startNode();
  try {
    const path = runtimeFiles(node.layout).revocations;
    const lines = () => listLines(node);
    const victims = await revokeMany(node, LIST_CHUNK + 100);
    await waitFor(
      "the list compacted to a full line and the rest",
      () => lines().length === 2,
      10_000,
    );
    const [full, rest] = lines();
    assert.equal(idsOf(full).length, LIST_CHUNK);
    assert.equal(idsOf(rest).length, 100);
    // One revocation at a time: enough lines for an idle compaction.
    for (let i = 0; i < COMPACT_IDLE_LINES + 4; i++) victims.push(...await revokeMany(node, 1));
    await waitFor("compacted again", () => lines().length === 2 && lines()[1] !== rest, 10_000);
    assert.equal(lines()[0], full, "the full line is written again byte for byte, not signed anew");
    assert.equal(idsOf(lines()[1]).length, 100 + COMPACT_IDLE_LINES + 4);
    // A byte of the full line changed in place (same file): never copied on.
    const f = Deno.openSync(path, { write: true });
    f.seekSync(200, Deno.SeekMode.Start);
    f.writeSync(new TextEncoder().encode(full[200] === "A" ? "B" : "A"));
    f.close();
    const second = lines()[1];
    for (let i = 0; i < COMPACT_IDLE_LINES + 4; i++) victims.push(...await revokeMany(node, 1));
    await waitFor(
      "compacted a third time",
      () => lines().length === 2 && lines()[1] !== second,
      10_000,
    );
    assert.equal(idsOf(lines()[0]).length, LIST_CHUNK);
    await assertRefusedAfterRestart(node, victims);
  } finally {
    await node.stop();
  }
});

Deno.test("a full line whose entries have mostly expired is packed again with only its live ones", async () => {
  const node = await startNode();
  try {
    const lines = () => listLines(node);
    // Packed by expiry: the full line holds the 600 short-lived and 400 of the rest. They live
    // 5 s, room for a loaded machine to revoke all 1,124 and compact first (with 2 s, a full
    // `deno task test` once saw them expire before that, and the list compact to one line).
    const short = await revokeMany(node, 600, 5);
    const long = await revokeMany(node, LIST_CHUNK - 500);
    await waitFor(
      "the list compacted to a full line and the rest",
      () => lines().length === 2,
      10_000,
    );
    assert.equal(idsOf(lines()[0]).length, LIST_CHUNK);
    await waitFor("the short tokens to expire", () => Date.now() > lastExpiry(short) + 200, 10_000);
    const more = [];
    for (let i = 0; i < COMPACT_IDLE_LINES + 4; i++) more.push(...await revokeMany(node, 1));
    await waitFor("compacted again, to one line", () => lines().length === 1, 10_000);
    const ids = new Set(idsOf(lines()[0]));
    assert.equal(ids.size, long.length + more.length);
    for (const v of [...long, ...more]) assert(ids.has(v.cap_id), `${v.cap_id} kept`);
    for (const v of short) assert(!ids.has(v.cap_id), `${v.cap_id} expired, dropped`);
    await assertRefusedAfterRestart(node, [...long, ...more]);
  } finally {
    await node.stop();
  }
});

Deno.test("a compaction that could not replace the file leaves the kept lines where they are: the next one still writes them again byte for byte", async () => {
  const node = await startNode();
  const tmp = runtimeFiles(node.layout).revocationsTmp;
  try {
    const lines = () => listLines(node);
    // Two full lines: the first of tokens that expire in 15 s (room for a loaded
    // machine to write both lines first), the second of long-lived ones.
    const short = await revokeMany(node, LIST_CHUNK, 15);
    await waitFor("the short ones compacted to one full line", () => lines().length === 1, 10_000);
    const long = await revokeMany(node, LIST_CHUNK);
    await waitFor("compacted to two full lines", () => lines().length === 2, 10_000);
    const [first, second] = lines();
    assert.deepEqual(new Set(idsOf(first)), new Set(short.map((v) => v.cap_id)));
    assert.equal(idsOf(second).length, LIST_CHUNK);
    // Each expiry is whole seconds from its issue: a machine that took more than a second
    // to issue them all made some outlive a wait counted from the first (CI kept 47 on).
    await waitFor("the short tokens to expire", () => Date.now() > lastExpiry(short) + 200, 20_000);
    // The first line is wholly expired: the second moves to the front. A
    // directory where identity writes the new file makes that compaction fail.
    Deno.mkdirSync(tmp);
    const more = [];
    for (let i = 0; i < COMPACT_IDLE_LINES + 4; i++) more.push(...await revokeMany(node, 1));
    await waitFor(
      "a compaction tried (its replaced-line is in the file) and failed",
      () => lines().includes("strata:list-replaced"),
      10_000,
    );
    assert.ok(lines()[1] === second, "the file was not replaced");
    Deno.removeSync(tmp);
    for (let i = 0; i < COMPACT_IDLE_LINES + 4; i++) more.push(...await revokeMany(node, 1));
    await waitFor("compacted", () => lines().length === 2, 10_000);
    assert.ok(lines()[0] === second, "the long-lived full line is written again as it was");
    assert.equal(idsOf(lines()[1]).length, more.length);
    await assertRefusedAfterRestart(node, [...long, ...more]);
  } finally {
    try {
      Deno.removeSync(tmp);
    } catch { /* removed by the test */ }
    await node.stop();
  }
});

Deno.test("kept full lines through a list file replaced by hand and a key rotation: every revoked token still refused by a restarted fs", async () => {
  const node = await startNode();
  try {
    const path = runtimeFiles(node.layout).revocations;
    const lines = () => listLines(node);
    const victims = await revokeMany(node, LIST_CHUNK + 50);
    await waitFor("compacted to a full line and the rest", () => lines().length === 2, 10_000);
    const [full] = lines();
    // Replaced by hand with a list that revokes nothing: identity writes the
    // whole list again, its full line read back from the file it still holds.
    const inode = Deno.statSync(path).ino;
    Deno.writeTextFileSync(`${path}.planted`, "v4.public.nothing.here\n");
    Deno.renameSync(`${path}.planted`, path);
    await waitFor(
      "the list written whole again",
      () => Deno.statSync(path).ino !== inode && lines()[0]?.startsWith("v4.public.ey"),
      10_000,
    );
    assert.ok(lines()[0] === full, "the full line read back and written again as it was");
    victims.push(...await revokeMany(node, 20));
    // A rotation packs everything anew with the new key: no line of the old key stays.
    const op = node.operatorToken();
    const oldKid = footerKid(full);
    expectOk(await node.request("identity", "identity.rotate_key", {}, op));
    await waitFor("the list written with the new key", () => footerKid(lines()[0]) !== oldKid);
    for (const l of lines()) assert.notEqual(footerKid(l), oldKid);
    assert.equal(new Set(lines().flatMap(idsOf)).size, victims.length);
    await assertRefusedAfterRestart(node, victims);
  } finally {
    await node.stop();
  }
});

Deno.test("in effect for the next request at every service: concurrent revokes at fs, a registry entry gone at the next resolve", async (t) => {
  const node = await startNode();
  const clients: Client[] = [];
  const connect = async (service: "fs" | "identity") => {
    const c = await Client.connect(socketPath(node.layout, service));
    clients.push(c);
    return c;
  };
  try {
    const root = node.exportRoot;
    const list = (token: string) => node.request("fs", "fs.list", { path: root }, token);

    await t.step(
      "8 callers revoke while 8 others use fs: each next use after an ok is refused",
      async () => {
        const tokens: Awaited<ReturnType<typeof issue>>[] = [];
        for (let i = 0; i < 160; i++) {
          tokens.push(await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root }));
        }
        let stop = false;
        let uses = 0;
        // Users load fs with tokens of their own, never revoked (a token being
        // revoked is refused already once its line is written, before the ok).
        const users = Array.from({ length: 8 }, async () => {
          const fs = await connect("fs");
          const own = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
          while (!stop) {
            expectOk(await fs.request("fs.list", { path: root }, { token: own.token }));
            uses++;
          }
        });
        const revokers = Array.from({ length: 8 }, async (_, i) => {
          const [id, fs] = [await connect("identity"), await connect("fs")];
          for (let k = i; k < tokens.length; k += 8) {
            const t = tokens[k];
            expectOk(
              await id.request("identity.revoke", { cap_id: t.cap_id }, {
                token: node.operatorToken(),
              }),
            );
            // The very next request after the answer, on a connection of its own.
            expectError(
              await fs.request("fs.list", { path: root }, { token: t.token }),
              "UNAUTHENTICATED",
              /has been revoked/,
              "revoked",
            );
            expectOk(await fs.request("fs.list", { path: root }, { token: node.operatorToken() }));
          }
        });
        const settled = await Promise.allSettled(revokers);
        stop = true;
        settled.push(...await Promise.allSettled(users));
        for (const r of settled) if (r.status === "rejected") throw r.reason;
        assert.ok(uses > tokens.length, `fs was used ${uses} times`);
      },
    );

    await t.step("a registry entry of a revoked token is gone at the next resolve", async () => {
      const owner = await issue(node, { service: "registry", rights: ["registry.register"] });
      expectOk(
        await node.request("registry", "registry.register", {
          service: "my-svc",
          endpoint: "unix:///run/strata/my-svc.sock",
        }, owner.token),
      );
      expectOk(await node.request("registry", "registry.resolve", { service: "my-svc" }));
      expectOk(
        await node.request(
          "identity",
          "identity.revoke",
          { cap_id: owner.cap_id },
          node.operatorToken(),
        ),
      );
      // A public call (no token of its own) sees the revocation too.
      expectError(
        await node.request("registry", "registry.resolve", { service: "my-svc" }),
        "NOT_FOUND",
      );
      expectOk(await list(node.operatorToken()));
    });
  } finally {
    for (const c of clients) await c.close();
    await node.stop();
  }
});
