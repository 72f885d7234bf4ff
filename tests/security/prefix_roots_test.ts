/**
 * A token whose path_prefix lies outside every export root reaches nothing,
 * and says why: fs names the roots (not the prefix the path lies inside),
 * and `strata-ctl token issue` warns on stderr when it mints such a token,
 * having asked the running fs for its roots (fs.roots). Real strata-ctl
 * processes against a real node.
 */

import assert from "node:assert/strict";
import { programCommand } from "../../src/runtime/command.ts";
import { type Node, REPO_ROOT, startNode } from "../helpers.ts";
import { expectError, expectOk } from "./support.ts";

/** Runs the real strata-ctl for `node`; returns its exit code and output. */
async function ctl(node: Node, args: string[]) {
  const { cmd, args: argv } = programCommand("ctl", node.layout, {
    kind: "dev",
    deno: Deno.execPath(),
    root: REPO_ROOT,
  }, { extra: args });
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "PATH", "DENO_DIR"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) env[name] = v;
  }
  const out = await new Deno.Command(cmd, { args: argv, clearEnv: true, env, stdin: "null" })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** `strata-ctl token issue` of an fs token with `prefix`, printing only the token. */
function issueArgs(prefix: string, rights = "fs.list"): string[] {
  return ["token", "issue", "--service", "fs", "--rights", rights, "--path-prefix", prefix, "-q"];
}

Deno.test("prefix outside the roots: the error names the roots, and token issue warns", async (t) => {
  const node = await startNode();
  try {
    const root = node.exportRoot;
    const roots = new RegExp(`outside the roots fs serves \\(${root}\\)`);

    await t.step("fs.roots answers the roots without a token", async () => {
      const r = expectOk<{ roots: string[] }>(await node.request("fs", "fs.roots"));
      assert.deepEqual(r.roots, [root]);
    });

    let token = "";
    await t.step("token issue warns of a prefix outside the roots, and still issues", async () => {
      const r = await ctl(node, issueArgs("/srv/data", "fs.list,fs.open"));
      assert.equal(r.code, 0, r.stderr);
      token = r.stdout.trim();
      assert.match(token, /^v4\.public\./);
      assert.match(r.stderr, /^strata-ctl: warning: --path-prefix \/srv\/data lies outside/);
      assert.match(r.stderr, roots);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    });

    await t.step("no warning for a prefix inside a root", async () => {
      for (const prefix of [root, `${root}/sub`, `${root}/`]) {
        const r = await ctl(node, issueArgs(prefix));
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stderr, "", prefix);
      }
      // A sibling of a root (/tmp/x-export vs /tmp/x/export) is outside it.
      const sibling = await ctl(node, issueArgs(`${root}-evil`));
      assert.match(sibling.stderr, roots);
    });

    await t.step("fs names the roots, not the prefix, as the reason", async () => {
      const reason = new RegExp(
        `^path: /srv/data is outside the exported roots \\(${root}\\); ` +
          "the token's path_prefix /srv/data lies outside them too",
      );
      expectError(
        await node.request("fs", "fs.list", { path: "/srv/data" }, token),
        "PERMISSION_DENIED",
        reason,
        "outside_prefix",
      );
      expectError(
        await node.request("fs", "fs.open", { path: "x.txt" }, token),
        "PERMISSION_DENIED",
        /outside the exported roots/,
        "outside_prefix",
      );
      const r = await ctl(node, ["-token", token, "fs", "ls", "/srv/data"]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /\/srv\/data is outside the exported roots/);
      assert.doesNotMatch(r.stderr, /outside the token's path_prefix/);
    });
  } finally {
    await node.stop();
  }
});
