/**
 * Key rotation: only the operator may rotate; tokens signed before keep
 * working, tokens signed after (new kid) work at fs without restarting it,
 * and revocations signed with the new key still reach fs.
 */

import assert from "node:assert/strict";
import { stateFiles } from "../../src/runtime/config.ts";
import { expectExit } from "../ctl_support.ts";
import { issue, startNode } from "../helpers.ts";
import { expectError, expectOk, footerKid, svcStatus } from "./support.ts";

interface Rotated {
  kid: string;
  previous: string;
  previous_valid_until: string;
}

Deno.test("key rotation: operator only, old and new tokens verify at fs", async (t) => {
  const node = await startNode();
  try {
    const root = node.exportRoot;
    const list = (token: string) => node.request("fs", "fs.list", { path: root }, token);
    const rotate = (token?: string) => node.request("identity", "identity.rotate_key", {}, token);
    const before = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
    const oldKid = footerKid(before.token);
    const fsPid = (await svcStatus(node, "fs")).pid;
    expectOk(await list(before.token));

    await t.step("rotate_key without a token, or with a token lacking the right", async () => {
      expectError(await rotate(), "UNAUTHENTICATED", /rotate_key needs a capability/, "no_token");
      const issuer = await issue(node, { service: "identity", rights: ["identity.issue"] });
      expectError(
        await rotate(issuer.token),
        "PERMISSION_DENIED",
        /lacks the right identity\.rotate_key/,
        "missing_right",
      );
    });

    await t.step("a non-operator token holding identity.rotate_key is refused", async () => {
      const holder = await issue(node, {
        service: "identity",
        rights: ["identity.rotate_key"],
        sub: "alice",
      });
      expectError(
        await rotate(holder.token),
        "PERMISSION_DENIED",
        /only the operator token may rotate the key/,
      );
      assert.equal(
        footerKid((await issue(node, { service: "fs", rights: ["fs.list"] })).token),
        oldKid,
      );
    });

    await t.step("a delegated service-* token holding identity.rotate_key is refused", async () => {
      // Delegated by the operator, but not the operator token: its own
      // subject, a parent, a one-minute life.
      const delegated = await issue(node, {
        service: "*",
        rights: ["identity.rotate_key"],
        sub: "alice",
        ttl_seconds: 60,
      });
      expectError(
        await rotate(delegated.token),
        "PERMISSION_DENIED",
        /only the operator token may rotate the key/,
      );
    });

    let rotated: Rotated | undefined;
    let after = "";

    await t.step("the operator rotates the key", async () => {
      const kidNow = footerKid(node.operatorToken());
      rotated = expectOk<Rotated>(await rotate(node.operatorToken()));
      assert.equal(rotated.previous, kidNow);
      assert.notEqual(rotated.kid, kidNow);
      assert.match(rotated.kid, /^k4\.pid\./);
      // The operator token is kept (the old key keeps verifying it): a second
      // root token would stay valid beside it.
      assert.equal(footerKid(node.operatorToken()), kidNow);
      expectOk(
        await node.request("identity", "identity.introspect", { token: node.operatorToken() }),
      );
    });

    await t.step("a token issued before rotation still works at fs", async () => {
      expectOk(await list(before.token));
      const i = expectOk<{ valid: boolean }>(
        await node.request("identity", "identity.introspect", { token: before.token }),
      );
      assert.equal(i.valid, true);
    });

    await t.step("a token issued after rotation (new kid) works at fs, no restart", async () => {
      const t2 = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
      after = t2.token;
      assert.equal(footerKid(after), rotated!.kid);
      assert.notEqual(footerKid(after), oldKid);
      expectOk(await list(after));
      assert.equal((await svcStatus(node, "fs")).pid, fsPid, "fs was not restarted");
    });

    await t.step("revocations signed with the new key still reach fs", async () => {
      for (const token of [before.token, after]) {
        const capId = (expectOk<{ claims: { jti: string } }>(
          await node.request("identity", "identity.introspect", { token }),
        )).claims.jti;
        expectOk(
          await node.request(
            "identity",
            "identity.revoke",
            { cap_id: capId },
            node.operatorToken(),
          ),
        );
        expectError(await list(token), "UNAUTHENTICATED", /has been revoked/, "revoked");
      }
    });
  } finally {
    await node.stop();
  }
});

Deno.test("a token of a key identity no longer holds: unknown_key naming the key; strata-ctl says to get a new token", async () => {
  const node = await startNode();
  try {
    const root = node.exportRoot;
    const old = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
    const oldKid = footerKid(old.token);
    expectOk(await node.request("identity", "identity.rotate_key", {}, node.operatorToken()));
    // Identity drops a retired key once every token it signed has expired (its exp_bound):
    // the bound is set in the past here, with identity stopped, instead of waiting for it.
    const op = node.operatorToken();
    const svc = (verb: string) =>
      node.request("supervisor", `supervisor.svc.${verb}`, { name: "identity" }, op);
    expectOk(await svc("stop"));
    const keysFile = stateFiles(node.layout).keys;
    const ring = JSON.parse(await Deno.readTextFile(keysFile));
    for (const k of ring.keys) if (k.kid === oldKid) k.exp_bound = "2020-01-01T00:00:00Z";
    await Deno.writeTextFile(keysFile, JSON.stringify(ring));
    expectOk(await svc("start"));
    const published = JSON.parse(
      await Deno.readTextFile(`${node.layout.runtimeDir}/identity.pub`),
    ) as { keys: { kid: string }[] };
    assert.ok(!published.keys.some((k) => k.kid === oldKid), "the old key was dropped");

    // Presented again to fs: refused for what is true, naming the key it was signed by.
    const r = await node.request("fs", "fs.list", { path: root }, old.token);
    const err = expectError(r, "UNAUTHENTICATED", /signed by a key this node does not know/);
    assert.equal(err.details?.reason, "unknown_key");
    assert.equal(err.message, `token: signed by a key this node does not know (${oldKid})`);
    // strata-ctl: the same line, and to get a new token (not to pass one, as it was given one).
    const ctlRun = await expectExit(node, ["-token", old.token, "fs", "ls", root], 1);
    assert.match(ctlRun.stderr, new RegExp(`does not know \\(${oldKid}\\); `));
    assert.match(ctlRun.stderr, /get a new token with `strata-ctl token issue`/);
    assert.doesNotMatch(ctlRun.stderr, /pass a token with -token/);
  } finally {
    await node.stop();
  }
});
