/**
 * strata-ctl's commands against a real supervisor: each command run as the
 * real ctl program (with its real permission flags), checking the human
 * output, the --json output and the exit code; fs get of a multi-MiB random
 * file (byte-identical, DEST appearing atomically, --force, Ctrl-C); refused
 * commands, usage errors, typo suggestions, colour on a terminal, completion,
 * and the raw form unchanged.
 */

import assert from "node:assert/strict";
import { ctl, ctlCommand, ctlEnv, ctlOnTerminal, expectExit, hasScript } from "../ctl_support.ts";
import { startNode, waitFor } from "../helpers.ts";

function randomFile(path: string, size: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let off = 0; off < size; off += 65536) {
    crypto.getRandomValues(data.subarray(off, Math.min(size, off + 65536)));
  }
  Deno.writeFileSync(path, data);
  return data;
}

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

const CAP_RE = /^[0-9a-f]{32}$/;

Deno.test("strata-ctl commands against a real supervisor", async (t) => {
  const node = await startNode();
  const dl = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-ctl-dl-" });
  const grant = { downloads: [dl], cwd: dl };
  const root = node.exportRoot;
  Deno.writeTextFileSync(`${root}/hello.txt`, "hello strata\n");
  Deno.mkdirSync(`${root}/sub`);
  try {
    await t.step("status: node, version, uptime, health; --json is the result", async () => {
      const human = await expectExit(node, ["status"], 0);
      assert.match(human.stdout, /^node {6}test\nversion {3}\d+\.\d+\.\d+\nuptime {4}\S+/);
      assert.match(human.stdout, /\nservices {2}3 of 3 healthy\n$/);
      assert.equal(human.stderr, "");
      const json = JSON.parse((await expectExit(node, ["status", "--json"], 0)).stdout);
      assert.equal(json.node_id, "test");
      assert.deepEqual(json.services, { total: 3, healthy: 3 });
    });

    await t.step("svc list: a table of every service, Healthy; --json the list", async () => {
      const human = await expectExit(node, ["svc", "list"], 0);
      const lines = human.stdout.trimEnd().split("\n");
      assert.match(lines[0], /^NAME +STATE +PID +RESTARTS +SINCE +LAST EXIT$/);
      for (const [i, name] of ["registry", "identity", "fs"].entries()) {
        assert.match(lines[i + 1], new RegExp(`^${name} +Healthy +\\d+ +0 +(.* ago|now) +-$`));
      }
      const stateCol = lines[0].indexOf("STATE");
      for (const l of lines.slice(1)) assert.equal(l.slice(stateCol, stateCol + 7), "Healthy");
      const json = JSON.parse((await expectExit(node, ["--json", "svc", "list"], 0)).stdout);
      assert.deepEqual(json.services.map((s: { name: string }) => s.name), [
        "registry",
        "identity",
        "fs",
      ]);
    });

    await t.step("registry list and resolve: endpoints as a table and as JSON", async () => {
      const list = await expectExit(node, ["registry", "list"], 0);
      assert.match(list.stdout, /^SERVICE +ENDPOINT +API +OWNER\n/);
      assert.match(
        list.stdout,
        new RegExp(`\nfs +unix://${node.layout.runtimeDir}/fs\\.sock +1 +supervisor\n`),
      );
      const json = JSON.parse((await expectExit(node, ["registry", "list", "--json"], 0)).stdout);
      assert.deepEqual(json.services.map((s: { service: string }) => s.service).sort(), [
        "fs",
        "identity",
        "registry",
      ]);
      const one = await expectExit(node, ["registry", "resolve", "fs"], 0);
      assert.equal(
        one.stdout,
        `service   fs\nendpoint  unix://${node.layout.runtimeDir}/fs.sock\napi       v1\n`,
      );
      const parsed = JSON.parse(
        (await expectExit(node, ["registry", "resolve", "fs", "--json"], 0)).stdout,
      );
      assert.equal(parsed.endpoint, `unix://${node.layout.runtimeDir}/fs.sock`);
      // One pointer to the listing: the registry's message names it, strata-ctl adds none.
      const missing = await expectExit(node, ["registry", "resolve", "nope"], 1);
      assert.equal(
        missing.stderr,
        "strata-ctl: service nope is not registered; registry.list " +
          "(`strata-ctl registry list`) shows what is\n",
      );
      const missingJson = JSON.parse(
        (await expectExit(node, ["registry", "resolve", "nope", "--json"], 1)).stdout,
      );
      assert.equal(missingJson.name, "NOT_FOUND");
      assert.equal(missingJson.hint, undefined, JSON.stringify(missingJson));
    });

    let token = "";
    let capId = "";
    await t.step(
      "token issue: the token and what it allows; -q only the token; --json the result",
      async () => {
        const args = [
          "token",
          "issue",
          "--service",
          "fs",
          "--rights",
          "fs.read,fs.list,fs.open",
          "--path-prefix",
          root,
          "--ttl",
          "1h",
          "--rate",
          "50rps",
        ];
        const human = await expectExit(node, args, 0);
        const lines = human.stdout.trimEnd().split("\n");
        assert.match(lines[0], /^token +v4\.public\./);
        assert.ok(lines.includes("rights   fs.list, fs.open, fs.read"), human.stdout);
        assert.ok(lines.includes(`prefix   ${root}`), human.stdout);
        assert.ok(lines.includes("rate     50rps"), human.stdout);
        assert.match(
          human.stdout,
          /\nexpires {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (59m \d+s|1h)\)\n/,
        );
        const quiet = await expectExit(node, [...args, "-q"], 0);
        assert.match(quiet.stdout, /^v4\.public\.[A-Za-z0-9_.-]+\n$/);
        const json = JSON.parse((await expectExit(node, [...args, "--json"], 0)).stdout);
        assert.match(json.token, /^v4\.public\./);
        assert.match(json.cap_id, CAP_RE);
        assert.ok(json.expires > Date.now() / 1000 + 3500);
        token = json.token;
        capId = json.cap_id;
      },
    );

    await t.step("token inspect: the given token, or the one ctl would use", async () => {
      const given = await expectExit(node, ["token", "inspect", token], 0);
      assert.match(given.stdout, /^valid {4}yes\n/);
      assert.ok(given.stdout.includes(`cap_id   ${capId}\n`));
      assert.ok(given.stdout.includes("service  fs\n"));
      assert.ok(given.stdout.includes(`prefix   ${root}\n`));
      assert.match(given.stdout, /\nparent {3}[0-9a-f]{32}\n/);
      assert.match(given.stdout, /\nsource {3}argument\n$/);
      const json = JSON.parse(
        (await expectExit(node, ["token", "inspect", token, "--json"], 0)).stdout,
      );
      assert.equal(json.valid, true);
      assert.equal(json.claims.jti, capId);
      assert.equal(json.claims.constraints.rate_limit, "50rps");
      const operator = await expectExit(node, ["token", "inspect"], 0);
      assert.ok(operator.stdout.includes("service  * (every service)\n"), operator.stdout);
      assert.ok(operator.stdout.includes("parent   - (a root token)\n"), operator.stdout);
      assert.match(operator.stdout, /\nsource {3}operator token\n$/);
      const viaEnv = await expectExit(node, ["token", "inspect"], 0, {
        env: { STRATA_TOKEN: token },
      });
      assert.match(viaEnv.stdout, /\nsource {3}STRATA_TOKEN\n$/);
      const garbage = await expectExit(node, ["token", "inspect", "v4.public.garbage"], 1);
      assert.match(garbage.stdout, /^valid {3}no \(malformed\)\nsource {2}argument\n$/);
    });

    await t.step("fs ls: type, size and name; --json the listing", async () => {
      const human = await expectExit(node, ["-token", token, "fs", "ls", root], 0);
      assert.equal(
        human.stdout,
        ["TYPE  SIZE  NAME", "file  13 B  hello.txt", "dir      -  sub/", ""].join("\n"),
      );
      const json = JSON.parse(
        (await expectExit(node, ["fs", "ls", root, "--json", "-token", token], 0)).stdout,
      );
      assert.deepEqual(json.entries.map((e: { name: string }) => e.name), ["hello.txt", "sub"]);
      // relative to the token's prefix
      const rel = await expectExit(node, ["-token", token, "fs", "ls", "."], 0);
      assert.match(rel.stdout, /hello\.txt/);
      const empty = await expectExit(node, ["-token", token, "fs", "ls", `${root}/sub`], 0);
      assert.equal(empty.stdout, `${root}/sub: empty\n`);
    });

    const bigPath = `${root}/big.bin`;
    const big = randomFile(bigPath, 24 * 1024 * 1024 + 4321);
    await t.step("fs cat: the file's bytes on stdout, binary-safe", async () => {
      const small = await expectExit(node, ["fs", "cat", `${root}/hello.txt`], 0);
      assert.equal(small.stdout, "hello strata\n");
      const r = await expectExit(node, ["-token", token, "fs", "cat", bigPath], 0);
      assert.equal(r.bytes.length, big.length);
      assert.deepEqual(r.bytes, big);
    });

    await t.step(
      "fs get: a multi-MiB file, byte-identical, DEST appearing only when complete",
      async () => {
        // while it downloads, watch the folder: DEST must never be seen half-written
        const { cmd, args } = ctlCommand(node, ["fs", "get", bigPath], grant);
        const child = new Deno.Command(cmd, {
          args,
          cwd: dl,
          clearEnv: true,
          env: ctlEnv(),
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const seen = new Set<string>();
        let partial = 0;
        let done = false;
        const output = child.output().finally(() => (done = true));
        while (!done) {
          for (const n of names(dl)) {
            seen.add(n);
            if (n === "big.bin") {
              try {
                if (Deno.statSync(`${dl}/big.bin`).size !== big.length) partial++;
              } catch { /* renamed away between readDir and stat: not seen */ }
            }
          }
          // Samples the folder a real strata-ctl process downloads into, as often as it can.
          await new Promise((r) => setTimeout(r, 2));
        }
        const out = await output;
        const stdout = new TextDecoder().decode(out.stdout);
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        assert.equal(partial, 0, "DEST was seen before it was complete");
        assert.match(stdout, new RegExp(`^saved ${dl}/big\\.bin \\(24\\.0 MiB in .*\\)\n$`));
        assert.deepEqual(names(dl), ["big.bin"]);
        assert.deepEqual(Deno.readFileSync(`${dl}/big.bin`), big);
        // the temporary file, if the watch caught it, lived beside DEST under a dot-name
        for (const n of seen) {
          assert.ok(n === "big.bin" || /^\.big\.bin\.[0-9a-f]{8}\.part$/.test(n), n);
        }
      },
    );

    await t.step("fs get: an existing DEST is kept unless --force; --json; DEST -", async () => {
      Deno.writeTextFileSync(`${dl}/hello.txt`, "old");
      const refused = await expectExit(node, ["fs", "get", `${root}/hello.txt`], 2, grant);
      assert.equal(
        refused.stderr,
        `strata-ctl: ${dl}/hello.txt already exists; use --force to replace it, or give another DEST\n`,
      );
      assert.equal(Deno.readTextFileSync(`${dl}/hello.txt`), "old");
      const forced = await expectExit(
        node,
        ["fs", "get", `${root}/hello.txt`, "--force", "--json"],
        0,
        grant,
      );
      const json = JSON.parse(forced.stdout);
      assert.equal(json.dest, `${dl}/hello.txt`);
      assert.equal(json.bytes, 13);
      assert.equal(Deno.readTextFileSync(`${dl}/hello.txt`), "hello strata\n");
      // a relative DEST and a folder DEST
      Deno.mkdirSync(`${dl}/in`);
      await expectExit(node, ["fs", "get", `${root}/hello.txt`, "copy.txt"], 0, grant);
      await expectExit(node, ["fs", "get", `${root}/hello.txt`, "in"], 0, grant);
      assert.equal(Deno.readTextFileSync(`${dl}/copy.txt`), "hello strata\n");
      assert.equal(Deno.readTextFileSync(`${dl}/in/hello.txt`), "hello strata\n");
      const toStdout = await expectExit(node, ["fs", "get", `${root}/hello.txt`, "-"], 0, grant);
      assert.equal(toStdout.stdout, "hello strata\n");
    });

    await t.step(
      "fs get: outside its write grant it says to cd there or use fs cat (exit 2)",
      async () => {
        const elsewhere = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-ctl-no-" });
        try {
          const r = await expectExit(
            node,
            ["fs", "get", `${root}/hello.txt`, `${elsewhere}/x.txt`],
            2,
            grant,
          );
          assert.match(
            r.stderr,
            new RegExp(
              `^strata-ctl: cannot write in ${elsewhere}: strata-ctl may write only in the folder it was started from \\(${dl}\\); cd ${elsewhere} and run it there, or use \`strata-ctl fs cat ${root}/hello.txt > ${elsewhere}/x.txt\`\n$`,
            ),
          );
          assert.deepEqual(names(elsewhere), []);
          // and with no grant at all, not even its own folder
          const none = await expectExit(node, ["fs", "get", `${root}/hello.txt`], 2, { cwd: dl });
          assert.match(none.stderr, /cannot write in .*fs cat/);
        } finally {
          await Deno.remove(elsewhere, { recursive: true });
        }
      },
    );

    await t.step(
      "fs get: a rate-limited token downloads slowly; Ctrl-C leaves nothing behind",
      async () => {
        const slow = JSON.parse(
          (await expectExit(node, [
            "token",
            "issue",
            "--service",
            "fs",
            "--actions",
            "open,read",
            "--rate",
            "2rps",
            "--json",
          ], 0)).stdout,
        ).token;
        const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-ctl-int-" });
        try {
          const { cmd, args } = ctlCommand(node, ["-token", slow, "fs", "get", bigPath], {
            downloads: [dir],
          });
          const child = new Deno.Command(cmd, {
            args,
            cwd: dir,
            clearEnv: true,
            env: ctlEnv(),
            stdout: "piped",
            stderr: "piped",
          }).spawn();
          await waitFor(
            "the temporary file",
            () => names(dir).some((n) => n.endsWith(".part")),
            10_000,
          );
          // Lets the real strata-ctl process get well into the download before it is interrupted.
          await new Promise((r) => setTimeout(r, 300));
          child.kill("SIGINT");
          const out = await child.output();
          assert.equal(out.code, 130, new TextDecoder().decode(out.stderr));
          assert.deepEqual(names(dir), []);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      },
    );

    await t.step("svc restart, stop and start: one line each; --json the entry", async () => {
      const before = JSON.parse((await expectExit(node, ["svc", "list", "--json"], 0)).stdout)
        .services.find((s: { name: string }) => s.name === "fs").pid;
      const restarted = await expectExit(node, ["svc", "restart", "fs", "--drain", "2s"], 0);
      const pid = Number(/^restarted fs: Healthy, pid (\d+)\n$/.exec(restarted.stdout)?.[1]);
      assert.ok(pid > 0 && pid !== before, restarted.stdout);
      const stopped = await expectExit(node, ["svc", "stop", "fs"], 0);
      assert.equal(stopped.stdout, "stopped fs: Stopped\n");
      const json = JSON.parse((await expectExit(node, ["svc", "start", "fs", "--json"], 0)).stdout);
      assert.equal(json.name, "fs");
      assert.equal(json.state, "Healthy");
      await node.childPids();
    });

    await t.step("refused commands exit 1 with the service's reason and what to try", async () => {
      const listOnly = (await expectExit(node, [
        "token",
        "issue",
        "--service",
        "fs",
        "--actions",
        "list",
        "-q",
      ], 0)).stdout.trim();
      const r = await expectExit(node, ["-token", listOnly, "fs", "cat", `${root}/hello.txt`], 1);
      assert.match(
        r.stderr,
        /^strata-ctl: .*fs\.open.*; see what your token allows with `strata-ctl token inspect`/,
      );
      assert.equal(r.stdout, "");
      const json = JSON.parse(
        (await expectExit(
          node,
          ["-token", listOnly, "fs", "cat", `${root}/hello.txt`, "--json"],
          1,
        )).stdout,
      );
      assert.equal(json.name, "PERMISSION_DENIED");
      assert.equal(json.details.reason, "missing_right");
      const outside = await expectExit(node, ["fs", "ls", "/etc"], 1);
      assert.match(outside.stderr, /outside the exported roots/);
      // No token at all: no STRATA_TOKEN, and a state dir without an operator token.
      const noState = ["--state-dir", `${root}/no-state`];
      const noToken = await expectExit(node, [...noState, "svc", "restart", "fs"], 1, { env: {} });
      assert.match(noToken.stderr, /needs a capability token.*; the operator token is used when/);
    });

    await t.step(
      "token revoke: by cap_id or by token; afterwards the token is refused",
      async () => {
        const revoked = await expectExit(node, ["token", "revoke", capId], 0);
        assert.match(
          revoked.stdout,
          new RegExp(`^revoked ${capId}; every service refuses it now\n$`),
        );
        const again = JSON.parse(
          (await expectExit(node, ["token", "revoke", capId, "--json"], 0)).stdout,
        );
        assert.equal(again.already, true);
        const refused = await expectExit(node, ["-token", token, "fs", "ls", root], 1);
        assert.match(refused.stderr, /revoked; get a new token with `strata-ctl token issue`\n$/);
        const inspect = await expectExit(node, ["token", "inspect", token], 1);
        assert.match(inspect.stdout, /^valid {4}no \(revoked\)\n/);
        const other = JSON.parse(
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
        const byToken = JSON.parse(
          (await expectExit(node, ["token", "revoke", other.token, "--json"], 0)).stdout,
        );
        assert.equal(byToken.cap_id, other.cap_id);
        assert.equal(byToken.status, "revoked");
      },
    );

    await t.step("usage errors exit 2 with the usage; --json prints {name: USAGE}", async () => {
      const r = await expectExit(node, ["svc", "start"], 2);
      assert.equal(
        r.stderr,
        "strata-ctl: svc start needs NAME; usage: strata-ctl svc start NAME\n",
      );
      assert.equal(r.stdout, "");
      const json = JSON.parse((await expectExit(node, ["svc", "start", "--json"], 2)).stdout);
      assert.deepEqual(json, {
        name: "USAGE",
        message: "svc start needs NAME",
        hint: "usage: strata-ctl svc start NAME",
      });
      const opt = await expectExit(node, ["fs", "get", "/x", "--froce"], 2);
      assert.equal(
        opt.stderr,
        "strata-ctl: unknown option --froce for fs get; did you mean --force?\n",
      );
      const ttl = await expectExit(node, [
        "token",
        "issue",
        "--service",
        "fs",
        "--actions",
        "read",
        "--ttl",
        "1y",
      ], 2);
      assert.match(
        ttl.stderr,
        /--ttl: cannot read "1y" as a duration; use e\.g\. 90s, 15m, 1h, 7d/,
      );
      // --ttl 0 is refused as what it is, no lifetime (identity takes 1s to 365d), not as an
      // unreadable or merely short duration, for a token and for an endorsement alike.
      const zero = await expectExit(node, [
        "token",
        "issue",
        "--service",
        "fs",
        "--actions",
        "read",
        "--ttl",
        "0",
      ], 2);
      assert.equal(
        zero.stderr,
        "strata-ctl: --ttl: 0 is no lifetime; a token lives 1s to 365d, none for ever; " +
          "leave --ttl out for 1h, or give e.g. 90s or 7d\n",
      );
      const endorse = await expectExit(node, ["cluster", "join", "a", "--ttl", "0"], 2);
      assert.equal(
        endorse.stderr,
        "strata-ctl: --ttl: 0 is no lifetime; an endorsement holds at least 1s, none for ever, " +
          "and nodes refuse it once it has expired; leave --ttl out for 30d, or give e.g. " +
          "12h or 90d\n",
      );
      const short = await expectExit(node, ["cluster", "endorse", "a", "--ttl", "500ms"], 2);
      assert.match(short.stderr, /^strata-ctl: --ttl: 500ms is shorter than a second; /);
    });

    await t.step("a mistyped command suggests the nearest one", async () => {
      const top = await expectExit(node, ["stauts"], 2);
      assert.equal(top.stderr, "strata-ctl: unknown command stauts; did you mean status?\n");
      const sub = await expectExit(node, ["svc", "lsit"], 2);
      assert.equal(sub.stderr, "strata-ctl: unknown command svc lsit; did you mean svc list?\n");
      const svc = await expectExit(node, ["svc", "restart", "fss"], 2);
      assert.match(svc.stderr, /no service fss; did you mean fs\?/);
    });

    await t.step(
      "--help on every command, with an example; the overview lists commands and methods",
      async () => {
        const all = await expectExit(node, ["--help"], 0);
        assert.match(all.stdout, /\n {2}fs get PATH \[DEST\] +download a file/);
        assert.match(all.stdout, /\n {2}supervisor\.svc\.list +state, pid/);
        for (
          const words of [
            ["status"],
            ["svc"],
            ["svc", "list"],
            ["svc", "stop"],
            ["token", "issue"],
            ["token", "inspect"],
            ["fs", "get"],
            ["registry", "resolve"],
            ["completion"],
          ]
        ) {
          const r = await expectExit(node, [...words, "--help"], 0);
          assert.match(r.stdout, new RegExp(`^strata-ctl ${words.join(" ")}: `), words.join(" "));
          assert.match(r.stdout, /\nExamples?:\n {2}/, words.join(" "));
        }
        const help = await expectExit(node, ["help", "fs", "get"], 0);
        assert.match(help.stdout, /^strata-ctl fs get: /);
      },
    );

    await t.step("completion bash: a script bash accepts", async () => {
      const r = await expectExit(node, ["completion", "bash"], 0);
      assert.match(r.stdout, /\ncomplete -F _strata_ctl strata-ctl\n$/);
      const check = await new Deno.Command("bash", { args: ["-n", "-c", r.stdout] }).output();
      assert.ok(check.success, new TextDecoder().decode(check.stderr));
      for (const shell of ["zsh", "fish"]) {
        assert.match((await expectExit(node, ["completion", shell], 0)).stdout, /strata-ctl/);
      }
    });

    await t.step(
      "the raw form is unchanged: the envelope as 2-space JSON, exit 0 or 1",
      async () => {
        const ok = await expectExit(node, ["supervisor.status"], 0);
        assert.match(
          ok.stdout,
          /^\{\n {2}"v": 1,\n {2}"req_id": "[^"]+",\n {2}"ok": true,\n {2}"result": \{/,
        );
        const refused = await expectExit(node, [
          "--token",
          "v4.public.x",
          "fs.list",
          JSON.stringify({ path: root }),
        ], 1);
        const env = JSON.parse(refused.stdout);
        assert.equal(env.ok, false);
        assert.equal(env.error.name, "UNAUTHENTICATED");
        // Sent as given: the server answers, and ctl adds the nearest method it knows.
        const bad = await expectExit(node, ["fs.lsit"], 1);
        assert.match(
          JSON.parse(bad.stdout).error.message,
          /^method: unknown method fs\.lsit; fs offers /,
        );
        assert.match(bad.stderr, /unknown method fs\.lsit; did you mean fs\.list\?/);
      },
    );

    if (hasScript()) {
      await t.step(
        "on a terminal: colour unless NO_COLOR, and a progress bar for fs get",
        async () => {
          const tty = await ctlOnTerminal(node, ["svc", "list"]);
          assert.equal(tty.code, 0, tty.screen);
          assert.ok(tty.screen.includes("\x1b[32mHealthy\x1b[0m"), JSON.stringify(tty.screen));
          assert.ok(tty.screen.includes("\x1b[1mNAME\x1b[0m"), JSON.stringify(tty.screen));
          const plain = await ctlOnTerminal(node, ["svc", "list"], { env: { NO_COLOR: "1" } });
          assert.ok(!plain.screen.includes("\x1b["), JSON.stringify(plain.screen));
          assert.match(plain.screen, /Healthy/);
          // piped (as in every other step): no colour at all
          const piped = await ctl(node, ["svc", "list"], { env: {} });
          assert.ok(!piped.stdout.includes("\x1b["));
          const get = await ctlOnTerminal(node, ["fs", "get", bigPath, "tty.bin"], grant);
          assert.equal(get.code, 0, get.screen);
          assert.match(get.screen, /\r\[#{10,30}\] 100% {2}24\.0 MiB of 24\.0 MiB/);
          assert.match(get.screen, /saved .*tty\.bin/);
          assert.deepEqual(Deno.readFileSync(`${dl}/tty.bin`), big);
        },
      );
    }
  } finally {
    await node.stop();
    await Deno.remove(dl, { recursive: true });
  }
});
