/**
 * Every acknowledgement is true: after identity.revoke answers ok (the first
 * call or a concurrent repeat, by the token's id or its parent's) fs and the
 * registry refuse the token on connections already open; a token issued
 * while the key rotates is accepted at once everywhere; revoking an id
 * identity never issued (or an expired one) is NOT_FOUND; revoking the root
 * capability needs confirm_root; strata-ctl never turns an empty token into
 * the operator's.
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import type { Response } from "../../src/wire/envelope.ts";
import { type ServiceName, socketPath } from "../../src/runtime/config.ts";
import { generateSigningKey } from "../../src/token/keys.ts";
import { signV4Public } from "../../src/token/paseto.ts";
import { issue, type Node, startNode } from "../helpers.ts";
import {
  expectError,
  expectOk,
  fsClaims,
  killAndAwaitRestart,
  randomCapId,
  requestRetrying,
  runCtl,
} from "./support.ts";

/** Fresh persistent connections to the services a test talks to. */
async function connections(node: Node, services: ServiceName[]): Promise<Client[]> {
  return await Promise.all(services.map((s) => Client.connect(socketPath(node.layout, s))));
}

/** What presenting `token` to fs and to the registry answers. */
function present(fs: Client, reg: Client, root: string, token: string): Promise<Response[]> {
  return Promise.all([
    fs.request("fs.list", { path: root }, { token }),
    reg.request("registry.deregister", { service: "acks-probe" }, { token }),
  ]);
}

/** A token good at fs and at the registry, optionally issued from `parent`. */
async function probeToken(node: Node, parent?: string) {
  return await issue(node, {
    service: "*",
    rights: ["fs.list", "registry.register", "identity.issue"],
    path_prefix: node.exportRoot,
  }, parent);
}

Deno.test("an ok from identity.revoke, first or repeat, means fs and the registry refuse", async () => {
  const node = await startNode();
  const [idA, idB] = await connections(node, ["identity", "identity"]);
  try {
    const op = node.operatorToken();
    const root = node.exportRoot;
    const TRIALS = 30;
    for (let trial = 0; trial < TRIALS; trial++) {
      // Odd trials revoke the parent of the token presented.
      const viaParent = trial % 2 === 1;
      const parent = viaParent ? await probeToken(node) : undefined;
      const victim = await probeToken(node, parent?.token);
      const revoked = parent ?? victim;
      // Connections opened (and the token verified and cached) before the revoke.
      const [fs, reg] = await connections(node, ["fs", "registry"]);
      try {
        for (const r of await present(fs, reg, root, victim.token)) expectOk(r);
        // Two concurrent revokes of the same cap_id on two connections; the
        // instant either answers ok, present the token on the open connections.
        const probes: Promise<Response[]>[] = [];
        const answers = await Promise.all(
          [idA, idB].map((c) =>
            c.request("identity.revoke", { cap_id: revoked.cap_id }, { token: op }).then((r) => {
              if (r.ok) probes.push(present(fs, reg, root, victim.token));
              return r;
            })
          ),
        );
        const results = answers.map((r) => expectOk<{ already?: boolean }>(r));
        assert.equal(
          results.filter((r) => r.already === true).length,
          1,
          `trial ${trial}: one of the two answers says already`,
        );
        assert.equal(probes.length, 2);
        for (const [i, p] of (await Promise.all(probes)).entries()) {
          for (const r of p) {
            assert.equal(r.ok, false, `trial ${trial} (via parent: ${viaParent}), answer ${i}`);
            expectError(r, "UNAUTHENTICATED", /revoked/, "revoked");
          }
        }
      } finally {
        await Promise.all([fs.close(), reg.close()]);
      }
    }
  } finally {
    await Promise.all([idA.close(), idB.close()]);
    await node.stop();
  }
});

Deno.test("a token issued while the key rotates is accepted by fs and the registry at once", async () => {
  const node = await startNode();
  const [rot, iss, fs, reg] = await connections(node, ["identity", "identity", "fs", "registry"]);
  try {
    const op = node.operatorToken();
    const root = node.exportRoot;
    const foreign = await generateSigningKey();
    const stranger = await signV4Public(foreign, fsClaims(node));
    for (let trial = 0; trial < 20; trial++) {
      // An unknown kid just now: each service has checked identity.pub a moment ago.
      for (const r of await present(fs, reg, root, stranger)) {
        expectError(r, "UNAUTHENTICATED", /./, "unknown_key");
      }
      const rotated = rot.request("identity.rotate_key", {}, { token: op });
      // Issue while the rotation runs; present each token the instant it is handed out.
      const checks = await Promise.all(Array.from({ length: 8 }, async () => {
        const r = await iss.request("identity.issue", {
          service: "*",
          rights: ["fs.list", "registry.register"],
          path_prefix: root,
        }, { token: op });
        const { token } = expectOk<{ token: string }>(r);
        return await present(fs, reg, root, token);
      }));
      expectOk(await rotated);
      for (const pair of checks) for (const r of pair) expectOk(r);
      // And after the rotation, a token signed by the new key, first use.
      const after = expectOk<{ token: string }>(
        await iss.request("identity.issue", { service: "fs", rights: ["fs.list"] }, { token: op }),
      );
      expectOk(await fs.request("fs.list", { path: root }, { token: after.token }));
    }
  } finally {
    await Promise.all([rot, iss, fs, reg].map((c) => c.close()));
    await node.stop();
  }
});

Deno.test("revoking an id identity never issued, or an expired one, is NOT_FOUND", async (t) => {
  const node = await startNode();
  try {
    const root = node.exportRoot;
    const live = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
    const revoke = (params: Record<string, unknown>) =>
      node.request("identity", "identity.revoke", params, node.operatorToken());

    await t.step("a random id, and a live id with one digit changed", async () => {
      const typo = live.cap_id.slice(0, 31) + (live.cap_id[31] === "0" ? "1" : "0");
      for (const capId of [randomCapId(), typo]) {
        expectError(
          await revoke({ cap_id: capId }),
          "NOT_FOUND",
          new RegExp(`^params\\.cap_id: ${capId} was never issued by this node's identity`),
          "never_issued",
        );
      }
      // The real token stays live, and nothing was recorded.
      expectOk(await node.request("fs", "fs.list", { path: root }, live.token));
    });

    await t.step("strata-ctl token revoke of a never-issued id fails and says so", async () => {
      const r = await runCtl(node, ["token", "revoke", randomCapId()]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /was never issued by this node's identity/);
      assert.doesNotMatch(r.stdout, /revoked/);
    });

    await t.step("an expired token, by cap_id and by token", async () => {
      const short = await issue(node, { service: "fs", rights: ["fs.list"], ttl_seconds: 1 });
      // Waits for the real identity process's clock to pass the token's expiry
      // (ttl_seconds has a 1 s minimum, and an expired token has no event).
      await new Promise((r) => setTimeout(r, 2100));
      expectError(await revoke({ cap_id: short.cap_id }), "NOT_FOUND", /expired at/, "expired");
      expectError(await revoke({ token: short.token }), "NOT_FOUND", /expired at/, "expired");
    });

    await t.step("ids issued before a restart of identity are still known", async () => {
      await killAndAwaitRestart(node, "identity");
      const r = await requestRetrying(
        node,
        "identity",
        "identity.revoke",
        { cap_id: live.cap_id },
        node.operatorToken(),
      );
      assert.equal(expectOk<{ already?: boolean }>(r).already, undefined);
      expectError(
        await requestRetrying(node, "fs", "fs.list", { path: root }, live.token),
        "UNAUTHENTICATED",
        /revoked/,
      );
    });
  } finally {
    await node.stop();
  }
});

Deno.test("revoking the root operator capability needs confirm_root", async () => {
  const node = await startNode();
  try {
    const op = node.operatorToken();
    const child = await issue(node, { service: "fs", rights: ["fs.list"] });
    const opCap = expectOk<{ claims: { jti: string } }>(
      await node.request("identity", "identity.introspect", { token: op }),
    ).claims.jti;
    for (
      const params of [{ cap_id: opCap }, { token: op }, { cap_id: opCap, confirm_root: false }]
    ) {
      expectError(
        await node.request("identity", "identity.revoke", params, op),
        "INVALID_ARGUMENT",
        /^params\.confirm_root: .* root operator capability; revoking it revokes every token/,
        "confirm_root",
      );
    }
    const plain = await runCtl(node, ["token", "revoke", opCap]);
    assert.equal(plain.code, 1, plain.stdout + plain.stderr);
    assert.match(plain.stderr, /revokes every token .*--force/s);
    // Nothing was revoked.
    expectOk(await node.request("fs", "fs.list", { path: node.exportRoot }, child.token));
    assert.equal(node.operatorToken(), op);
    // --force says so explicitly.
    const forced = await runCtl(node, ["token", "revoke", "--force", opCap]);
    assert.equal(forced.code, 0, forced.stdout + forced.stderr);
    expectError(
      await node.request("fs", "fs.list", { path: node.exportRoot }, child.token),
      "UNAUTHENTICATED",
      /revoked/,
    );
    assert.notEqual(node.operatorToken(), op);
  } finally {
    await node.stop();
  }
});

Deno.test("strata-ctl: an empty STRATA_TOKEN or -token is a usage error, not the operator token", async () => {
  const node = await startNode();
  try {
    const ls = ["fs", "ls", node.exportRoot];
    const raw = ["fs.list", JSON.stringify({ path: node.exportRoot })];
    // Commands that send no token refuse an empty one too (they exited 0).
    for (const args of [ls, raw, ["status"], ["svc", "list"]]) {
      for (const empty of ["", " "]) {
        const env = await runCtl(node, args, { STRATA_TOKEN: empty });
        assert.equal(env.code, 2, env.stdout + env.stderr);
        assert.match(env.stderr, /STRATA_TOKEN is set but empty/);
        assert.equal(env.stdout, "");
        const flag = await runCtl(node, ["-token", empty, ...args]);
        assert.equal(flag.code, 2, flag.stdout + flag.stderr);
        assert.match(flag.stderr, /-token is empty/);
        assert.equal(flag.stdout, "");
      }
      // No token at all: the operator token, as before.
      const none = await runCtl(node, args);
      assert.equal(none.code, 0, none.stdout + none.stderr);
    }
  } finally {
    await node.stop();
  }
});
