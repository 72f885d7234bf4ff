/**
 * The library entry for programs, against a real node: docs/library.md's
 * program run with exactly the Deno flags that page lists (and refused
 * without one of them), and `Strata.connect()`'s typed calls.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { existsSync } from "node:fs";
import { Strata } from "../../src/mod.ts";
import { RemoteError } from "../../src/server/client.ts";
import { StrataError } from "../../src/wire/errors.ts";
import { issue, REPO_ROOT, startNode } from "../helpers.ts";

/** The first fenced block of `lang` after `heading` in docs/library.md. */
function block(heading: string, lang: string): string {
  const text = Deno.readTextFileSync(join(REPO_ROOT, "docs/library.md"));
  const at = text.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `docs/library.md has no heading ${heading}`);
  const m = new RegExp("\\n```" + lang + "\\n([\\s\\S]*?)\\n```").exec(text.slice(at));
  assert.ok(m, `docs/library.md: no ${lang} block under ${heading}`);
  return m[1];
}

Deno.test("docs/library.md's program runs with exactly the flags the page lists", async (t) => {
  const node = await startNode();
  const dir = await Deno.makeTempDir({ prefix: "strata-lib-" });
  Deno.mkdirSync(`${node.exportRoot}/reports`);
  Deno.writeTextFileSync(`${node.exportRoot}/notes.txt`, "hello\n");
  try {
    Deno.writeTextFileSync(
      `${dir}/list_files.ts`,
      block("## A program", "ts").replace(
        `"../src/mod.ts"`,
        JSON.stringify(`${REPO_ROOT}/src/mod.ts`),
      ),
    );
    const shell = block("## The Deno flags it needs", "sh")
      .replace(/^RT=.*$/m, `RT=${node.layout.runtimeDir}`)
      .replace(/^ST=.*$/m, `ST=${node.layout.stateDir}`)
      .replace(/ \/tmp$/m, ` ${node.exportRoot}`);
    const run = async (script: string, env: Record<string, string> = {}) => {
      const out = await new Deno.Command("bash", {
        args: ["-c", script],
        cwd: dir,
        clearEnv: true,
        env: {
          PATH: `${dirname(Deno.execPath())}:/usr/bin:/bin`,
          HOME: Deno.env.get("HOME") ?? "/root",
          ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
          NO_COLOR: "1",
          // The test node is not in /run/strata: say where it is, as the page says.
          STRATA_RUNTIME_DIR: node.layout.runtimeDir,
          STRATA_STATE_DIR: node.layout.stateDir,
          ...env,
        },
        stdin: "null",
      }).output();
      const dec = new TextDecoder();
      return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    };

    await t.step("with the operator token", async () => {
      const r = await run(shell);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "notes.txt  6 B\nreports/\n");
    });

    await t.step("with STRATA_TOKEN: that token's rights", async () => {
      const fsList = await issue(node, { service: "fs", actions: ["list"] });
      const r = await run(shell, { STRATA_TOKEN: fsList.token });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "notes.txt  6 B\nreports/\n");
      const openOnly = await issue(node, { service: "fs", actions: ["open"] });
      const refused = await run(shell, { STRATA_TOKEN: openOnly.token });
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /RemoteError: token: lacks the right fs\.list/);
    });

    await t.step("each flag is needed: without fs.sock in --allow-net it is refused", async () => {
      const r = await run(shell.replace(",unix:$RT/fs.sock", ""));
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /cannot connect to [^:]*\/fs\.sock: this program is not permitted to use that socket/,
      );
    });
  } finally {
    await node.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Strata.connect: finds the node, presents the token, typed calls, clear errors", async (t) => {
  const node = await startNode();
  Deno.writeTextFileSync(`${node.exportRoot}/a.txt`, "strata\n");
  const big = new Uint8Array(2 * 1024 * 1024 + 7).map((_, i) => i % 251);
  Deno.writeFileSync(`${node.exportRoot}/big.bin`, big);
  const where = { runtimeDir: node.layout.runtimeDir, stateDir: node.layout.stateDir };
  try {
    await t.step("operator token from the state dir: fs, identity, supervisor", async () => {
      const strata = await Strata.connect(where);
      try {
        assert.ok(strata.hasToken);
        const status = await strata.supervisor.status();
        assert.equal(status.services.healthy, status.services.total);
        const names = (await strata.fs.list(node.exportRoot)).entries.map((e) => e.name);
        assert.deepEqual(names, ["a.txt", "big.bin"]);
        assert.equal(await strata.fs.readText(`${node.exportRoot}/a.txt`), "strata\n");
        assert.deepEqual(await strata.fs.readFile(`${node.exportRoot}/big.bin`), big);
        const issued = await strata.identity.issue({
          service: "fs",
          actions: ["list"],
          sub: "lib",
        });
        const seen = await strata.identity.introspect(issued.token);
        assert.equal(seen.valid, true);
        assert.equal(seen.claims?.sub, "lib");
        const listed = await strata.identity.list({ sub: "lib" });
        assert.deepEqual(listed.capabilities.map((c) => c.cap_id), [issued.cap_id]);
        const revoked = await strata.identity.revoke(issued.cap_id);
        assert.equal(revoked.status, "revoked");
        assert.equal((await strata.identity.introspect(issued.token)).valid, false);
      } finally {
        await strata.close();
      }
    });

    await t.step("a given token: only its rights; a refusal is a RemoteError", async () => {
      const listOnly = await issue(node, { service: "fs", actions: ["list"] });
      const strata = await Strata.connect({ ...where, token: listOnly.token });
      try {
        assert.equal((await strata.fs.list(node.exportRoot)).entries.length, 2);
        const err = await strata.fs.readText(`${node.exportRoot}/a.txt`).catch((e) => e);
        assert.ok(err instanceof RemoteError, String(err));
        assert.equal(err.errorName, "PERMISSION_DENIED");
      } finally {
        await strata.close();
      }
    });

    await t.step("no node there, or an empty token: says so", async () => {
      const none = await Strata.connect({ runtimeDir: `${node.exportRoot}/nowhere` }).catch((e) =>
        e
      );
      assert.ok(none instanceof StrataError && none.errorName === "UNAVAILABLE", String(none));
      assert.equal(none.details?.reason, "not_running", JSON.stringify(none.details));
      // and with no runtime dir given and no supervisor where one may run: the same reason
      // (unless this machine runs one in /run/strata, which would be found)
      if (!existsSync("/run/strata/supervisor.sock")) {
        const saved = ["STRATA_RUNTIME_DIR", "XDG_RUNTIME_DIR", "USER"].map((k) =>
          [k, Deno.env.get(k)] as const
        );
        Deno.env.delete("STRATA_RUNTIME_DIR");
        Deno.env.set("XDG_RUNTIME_DIR", `${node.exportRoot}/nowhere`);
        Deno.env.set("USER", `nobody-${crypto.randomUUID().slice(0, 8)}`);
        try {
          const nowhere = await Strata.connect().catch((e) => e);
          assert.match(String(nowhere), /no Strata supervisor is running: looked in/);
          assert.deepEqual(nowhere.details, { reason: "not_running" });
        } finally {
          for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
        }
      }
      const empty = await Strata.connect({ ...where, token: " " }).catch((e) => e);
      assert.ok(empty instanceof StrataError && empty.errorName === "INVALID_ARGUMENT");
      assert.match(empty.message, /token: empty/);
    });
  } finally {
    await node.stop();
  }
});
