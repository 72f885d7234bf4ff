/**
 * Key rotation: only the operator may rotate; tokens signed before keep
 * working, tokens signed after (new kid) work at fs without restarting it,
 * and revocations signed with the new key still reach fs.
 */

import assert from "node:assert/strict";
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
