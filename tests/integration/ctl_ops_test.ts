/**
 * strata-ctl for every day, against a real supervisor: advice that names
 * the command to run (`svc start fs`, where the launcher looked for the
 * supervisor), `fs cat | head` ending quietly, help examples that work,
 * vault-style single-dash options, `status` exit codes, `svc status` and
 * `logs`; each in human and --json form, with exit codes.
 */

import assert from "node:assert/strict";
import { ctlCommand, ctlEnv, expectExit } from "../ctl_support.ts";
import { devTmpLayout, REPO_ROOT, startNode } from "../helpers.ts";

Deno.test("strata-ctl: advice, pipes, examples and options that stay true", async (t) => {
  const node = await startNode();
  const root = node.exportRoot;
  Deno.writeTextFileSync(`${root}/hello.txt`, "hello strata\n");
  const big = new Uint8Array(4 * 1024 * 1024).fill(0x61);
  Deno.writeFileSync(`${root}/big.txt`, big);
  try {
    await t.step("a stopped service: the advice is `strata-ctl svc start fs`", async () => {
      await expectExit(node, ["svc", "stop", "fs"], 0);
      try {
        const r = await expectExit(node, ["fs", "ls", root], 2);
        assert.match(
          r.stderr,
          /^strata-ctl: cannot reach fs: .*Start it with `strata-ctl svc start fs`/,
        );
        assert.doesNotMatch(r.stderr, /deno task start/);
        const json = JSON.parse((await expectExit(node, ["fs", "ls", root, "--json"], 2)).stdout);
        assert.equal(json.name, "UNAVAILABLE");
        assert.match(json.message, /strata-ctl svc start fs/);
        const raw = await expectExit(node, ["fs.list", JSON.stringify({ path: root })], 2);
        assert.match(raw.stderr, /strata-ctl svc start fs/);
      } finally {
        await expectExit(node, ["svc", "start", "fs"], 0);
        await node.childPids();
      }
    });

    await t.step("status exits 3 while the node is degraded, 0 once all is Healthy", async () => {
      await expectExit(node, ["svc", "stop", "fs"], 0);
      try {
        const human = await expectExit(node, ["status"], 3);
        assert.match(
          human.stdout,
          /\nservices {2}2 of 3 healthy\nsee which with `strata-ctl svc list`\n$/,
        );
        assert.equal(human.stderr, "");
        const json = JSON.parse((await expectExit(node, ["status", "--json"], 3)).stdout);
        assert.deepEqual(json.services, { total: 3, healthy: 2 });
      } finally {
        await expectExit(node, ["svc", "start", "fs"], 0);
        await node.childPids();
      }
      await expectExit(node, ["status"], 0);
      await expectExit(node, ["status", "--json"], 0);
    });

    await t.step("token inspect says cap_id in its text and its JSON", async () => {
      const issued = JSON.parse(
        (await expectExit(node, [
          "token",
          "issue",
          "--service",
          "fs",
          "--actions",
          "list",
          "--json",
        ], 0))
          .stdout,
      );
      const text = await expectExit(node, ["token", "inspect", issued.token], 0);
      assert.ok(text.stdout.includes(`\ncap_id   ${issued.cap_id}\n`), text.stdout);
      const json = JSON.parse(
        (await expectExit(node, ["token", "inspect", issued.token, "--json"], 0)).stdout,
      );
      assert.equal(json.cap_id, issued.cap_id);
      assert.equal(json.valid, true);
      assert.equal(json.claims.jti, issued.cap_id);
      const bad = JSON.parse(
        (await expectExit(node, ["token", "inspect", "v4.public.nope", "--json"], 1)).stdout,
      );
      assert.deepEqual(bad, { valid: false, reason: "malformed" });
    });

    await t.step("fs cat FILE | head: ends quietly with exit 0, like cat", async () => {
      for (
        const args of [["fs", "cat", `${root}/big.txt`], ["fs", "get", `${root}/big.txt`, "-"]]
      ) {
        const { cmd, args: argv } = ctlCommand(node, args);
        const child = new Deno.Command(cmd, {
          args: argv,
          clearEnv: true,
          env: ctlEnv(),
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        // Like head: read one chunk, then go away.
        const reader = child.stdout.getReader();
        const first = await reader.read();
        assert.ok(first.value && first.value.length > 0);
        await reader.cancel();
        const stderr = new TextDecoder().decode(
          new Uint8Array(await new Response(child.stderr).arrayBuffer()),
        );
        const status = await child.status;
        assert.equal(stderr, "", args.join(" "));
        assert.equal(status.code, 0, args.join(" "));
      }
    });

    await t.step(
      "the help's first token issue example mints a token that runs fs cat",
      async () => {
        const help = await expectExit(node, ["token", "issue", "--help"], 0);
        const example = /\nExamples?:\n {2}(strata-ctl token issue [^\n]+)\n/.exec(help.stdout)
          ?.[1];
        assert.ok(example, help.stdout);
        const words = example.split(" ").slice(1).map((w) => w === "/srv/data" ? root : w);
        const token = JSON.parse((await expectExit(node, [...words, "--json"], 0)).stdout).token;
        const cat = await expectExit(node, ["-token", token, "fs", "cat", `${root}/hello.txt`], 0);
        assert.equal(cat.stdout, "hello strata\n");
      },
    );

    await t.step("vault-style single-dash options work for every long option", async () => {
      const r = await expectExit(node, [
        "token",
        "issue",
        "-service",
        "fs",
        "-actions",
        "list,open,read",
        "-path-prefix",
        root,
        "-ttl",
        "15m",
        "-rate=50rps",
        "-json",
      ], 0);
      const issued = JSON.parse(r.stdout);
      const seen = JSON.parse(
        (await expectExit(node, ["token", "inspect", issued.token, "-json"], 0)).stdout,
      );
      assert.equal(seen.claims.constraints.path_prefix, root);
      assert.equal(seen.claims.constraints.rate_limit, "50rps");
      assert.ok(Date.parse(seen.claims.exp) - Date.parse(seen.claims.iat) === 15 * 60_000);
      // one-letter flags still cluster and a mistyped long one still gets a suggestion
      const quiet = await expectExit(node, [
        "token",
        "issue",
        "-service",
        "fs",
        "-actions",
        "list",
        "-q",
      ], 0);
      assert.match(quiet.stdout, /^v4\.public\.\S+\n$/);
      const typo = await expectExit(node, ["token", "issue", "-service", "fs", "-tll", "1h"], 2);
      assert.equal(
        typo.stderr,
        "strata-ctl: unknown option --tll for token issue; did you mean --ttl?\n",
      );
      const drained = await expectExit(node, ["svc", "restart", "registry", "-drain", "1s"], 0);
      assert.match(drained.stdout, /^restarted registry: Healthy/);
      await node.childPids();
    });
  } finally {
    await node.stop();
  }
});

/** Runs `deno task -q ctl ARGS` as a user would, with `env` only. */
async function taskCtl(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "ctl", ...args],
    cwd: REPO_ROOT,
    clearEnv: true,
    env: { ...ctlEnv(), ...env },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("deno task ctl finds a supervisor in any fallback runtime dir, or says where it looked", async () => {
  // The supervisor runs in /tmp/strata-$USER (started without XDG_RUNTIME_DIR);
  // ctl runs with an XDG_RUNTIME_DIR, whose strata folder holds nothing.
  const temp = await devTmpLayout(true);
  const user = temp.layout.runtimeDir.slice("/tmp/strata-".length);
  const xdg = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-xdg-" });
  const env = { USER: user, XDG_RUNTIME_DIR: xdg, STRATA_STATE_DIR: temp.layout.stateDir };
  const node = await startNode({ temp });
  try {
    const found = await taskCtl(["status", "--json"], env);
    assert.equal(found.code, 0, found.stderr);
    assert.equal(JSON.parse(found.stdout).node_id, "test");
  } finally {
    await node.stop();
  }
  try {
    const r = await taskCtl(["status"], env);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^strata-ctl: the supervisor is not running \(/);
    for (const dir of ["/run/strata", `${xdg}/strata`, temp.layout.runtimeDir]) {
      assert.ok(r.stderr.includes(`${dir} (no supervisor.sock)`), `${dir} in ${r.stderr}`);
    }
    assert.match(r.stderr, /--runtime-dir/);
  } finally {
    await temp.cleanup();
    await Deno.remove(xdg, { recursive: true });
  }
});
