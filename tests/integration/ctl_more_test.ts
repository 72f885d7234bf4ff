/**
 * strata-ctl for every day, part two, against a real supervisor: `token
 * list` (what identity issued, the operator's view and a delegated token's
 * tree, kept across a restart), in human and --json form, with exit codes.
 */

import assert from "node:assert/strict";
import { expectExit } from "../ctl_support.ts";
import { stateFiles } from "../../src/runtime/config.ts";
import { issue, startNode } from "../helpers.ts";

interface Listed {
  cap_id: string;
  sub: string;
  service: string;
  rights: string[];
  path_prefix?: string;
  parent?: string;
  chain: string[];
  revoked: boolean;
  revoked_via?: string;
}

Deno.test("strata-ctl token list: the operator sees all, a delegated token its own tree", async (t) => {
  const node = await startNode();
  try {
    const op = node.operatorToken();
    const opCap = await node.request("identity", "identity.introspect", { token: op });
    assert.ok(opCap.ok);
    const opId = (opCap.result as { claims: { jti: string } }).claims.jti;
    const a = await issue(node, {
      service: "*",
      rights: ["identity.issue", "identity.list", "identity.revoke", "fs.list", "fs.open"],
      sub: "team-a",
    });
    const b = await issue(node, {
      service: "fs",
      actions: ["list"],
      path_prefix: node.exportRoot,
      sub: "team-a-ci",
    }, a.token);
    const other = await issue(node, { service: "fs", actions: ["list", "open"], sub: "other" });
    const noRight = await issue(node, { service: "identity", actions: ["issue"] }, a.token);
    const list = async (args: string[], token?: string) =>
      JSON.parse(
        (await expectExit(node, [...(token ? ["-token", token] : []), "token", "list", ...args], 0))
          .stdout,
      ) as { capabilities: Listed[]; total: number };

    await t.step("operator: every live capability, newest first, with its fields", async () => {
      const r = await list(["--json"]);
      const ids = r.capabilities.map((c) => c.cap_id);
      assert.deepEqual(ids, [noRight.cap_id, other.cap_id, b.cap_id, a.cap_id, opId]);
      const bRow = r.capabilities[2];
      assert.equal(bRow.sub, "team-a-ci");
      assert.equal(bRow.service, "fs");
      assert.deepEqual(bRow.rights, ["fs.list"]);
      assert.equal(bRow.path_prefix, node.exportRoot);
      assert.equal(bRow.parent, a.cap_id);
      assert.deepEqual(bRow.chain, [opId, a.cap_id]);
      assert.equal(bRow.revoked, false);
      const human = await expectExit(node, ["token", "list"], 0);
      const lines = human.stdout.trimEnd().split("\n");
      assert.match(
        lines[0],
        /^CAP_ID +SUBJECT +SERVICE +RIGHTS +PREFIX +EXPIRES +PARENT +STATE$/,
      );
      assert.equal(lines.length, 6);
      assert.ok(lines[3].startsWith(`${b.cap_id}  team-a-ci  fs`), lines[2]);
      assert.match(lines[3], / in 59m \d+s +[0-9a-f]{32} +live$/);
      assert.match(lines[5], new RegExp(`^${opId}  operator +\\* +\\(every right\\)`));
      const fsOnly = await list(["--service", "fs", "--json"]);
      assert.deepEqual(fsOnly.capabilities.map((c) => c.cap_id), [other.cap_id, b.cap_id]);
      const one = await list(["-n", "1", "--json"]);
      assert.equal(one.capabilities.length, 1);
      assert.equal(one.total, 5);
    });

    await t.step(
      "a delegated token sees its own capability and those delegated from it",
      async () => {
        const r = await list(["--json"], a.token);
        assert.deepEqual(r.capabilities.map((c) => c.cap_id), [noRight.cap_id, b.cap_id, a.cap_id]);
        // b lacks identity.list: refused, exit 1, naming the right
        const denied = await expectExit(node, ["-token", b.token, "token", "list"], 1);
        assert.match(denied.stderr, /identity\.list|issued for service fs/);
        const refused = await expectExit(node, ["-token", noRight.token, "token", "list"], 1);
        assert.match(refused.stderr, /lacks the right identity\.list/);
      },
    );

    await t.step(
      "revoked: itself or through an ancestor; --revoked and --live filter",
      async () => {
        await expectExit(node, ["token", "revoke", a.cap_id], 0);
        const r = await list(["--json"]);
        const byId = new Map(r.capabilities.map((c) => [c.cap_id, c]));
        assert.equal(byId.get(a.cap_id)!.revoked, true);
        assert.equal(byId.get(a.cap_id)!.revoked_via, undefined);
        assert.equal(byId.get(b.cap_id)!.revoked, true);
        assert.equal(byId.get(b.cap_id)!.revoked_via, a.cap_id);
        assert.equal(byId.get(other.cap_id)!.revoked, false);
        const revoked = await list(["--revoked", "--json"]);
        assert.deepEqual(revoked.capabilities.map((c) => c.cap_id), [
          noRight.cap_id,
          b.cap_id,
          a.cap_id,
        ]);
        const live = await list(["--live", "--json"]);
        assert.deepEqual(live.capabilities.map((c) => c.cap_id), [other.cap_id, opId]);
        const human = await expectExit(node, ["token", "list", "--revoked"], 0);
        assert.match(human.stdout, new RegExp(`revoked \\(via ${a.cap_id.slice(0, 8)}\\)`));
        const both = await expectExit(node, ["token", "list", "--revoked", "--live"], 2);
        assert.match(both.stderr, /exclude each other/);
      },
    );

    await t.step("kept across a restart of identity, in a 0600 file", async () => {
      const st = stateFiles(node.layout);
      assert.equal(Deno.statSync(st.issuedLog).mode! & 0o777, 0o600);
      await expectExit(node, ["svc", "restart", "identity"], 0);
      const r = await list(["--json"]);
      assert.deepEqual(r.capabilities.map((c) => c.cap_id), [
        noRight.cap_id,
        other.cap_id,
        b.cap_id,
        a.cap_id,
        opId,
      ]);
    });
  } finally {
    await node.stop();
  }
});
