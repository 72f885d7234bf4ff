/**
 * strata-ctl for every day, part two, against a real supervisor: `token
 * list` (what identity issued, the operator's view and a delegated token's
 * tree, kept across a restart) and `audit` (filtered, followed, through
 * supervisor.audit), in human and --json form, with exit codes; and `fs get`
 * on a terminal (script(1)) of 40 and 120 columns, and interrupted by Ctrl-C;
 * completion of remote paths and cap_ids in a real bash.
 */

import assert from "node:assert/strict";
import { ctlCommand, ctlEnv, expectExit, hasScript } from "../ctl_support.ts";
import { stateFiles } from "../../src/runtime/config.ts";
import { permissionSet } from "../../src/runtime/permissions.ts";
import { issue, type Node, startNode, waitFor } from "../helpers.ts";

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
      // a delegated token for every service lists its rights; only the root holds them all
      assert.match(lines[4], /^[0-9a-f]{32} {2}team-a +\* +fs\.list, fs\.open, identity\.issue, /);
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
      assert.equal(Deno.statSync(st.issuedDir).mode! & 0o777, 0o700);
      for (const e of Deno.readDirSync(st.issuedDir)) {
        assert.equal(Deno.statSync(`${st.issuedDir}/${e.name}`).mode! & 0o777, 0o600, e.name);
      }
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

interface AuditEvent {
  ts: string;
  event: string;
  program: string;
  cap_id?: string;
  by?: string;
  parent?: string;
}

Deno.test("strata-ctl audit: the trail through supervisor.audit, filtered and followed", async (t) => {
  const node = await startNode();
  try {
    Deno.writeTextFileSync(`${node.exportRoot}/a.txt`, "a\n");
    const x = await issue(node, { service: "fs", actions: ["list", "open"] });
    const opened = await node.request(
      "fs",
      "fs.open",
      { path: `${node.exportRoot}/a.txt` },
      x.token,
    );
    assert.ok(opened.ok);
    const denied = await node.request("fs", "fs.read", { handle: "h1" }, x.token);
    assert.equal(denied.ok, false);
    const events = async (args: string[]) => {
      let got: AuditEvent[] = [];
      // Services write their events in batches every 100 ms.
      await waitFor("the events", async () => {
        const r = await expectExit(node, ["audit", "--json", ...args], 0);
        got = JSON.parse(r.stdout).events;
        return got.length > 0;
      }, 5000);
      return got;
    };

    await t.step("--cap: the capability's events, from every service", async () => {
      await waitFor("fs's denial", async () => {
        const got = await events(["--cap", x.cap_id]);
        return got.some((e) => e.event === "auth.denied");
      }, 5000);
      const got = await events(["--cap", x.cap_id]);
      assert.ok(got.every((e) => e.cap_id === x.cap_id || e.by === x.cap_id), JSON.stringify(got));
      assert.deepEqual(
        [...new Set(got.map((e) => e.event))].sort(),
        ["auth.denied", "cap.issued", "fs.open"],
      );
      const human = await expectExit(node, ["audit", "--cap", x.cap_id], 0);
      assert.match(
        human.stdout,
        new RegExp(
          `^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d identity +cap\\.issued  cap_id=${x.cap_id}`,
          "m",
        ),
      );
      assert.match(human.stdout, /fs +auth\.denied {2}method=fs\.read reason=missing_right/);
    });

    await t.step("--event: one event or a prefix; -n; --since", async () => {
      const issued = await events(["--event", "cap.issued"]);
      assert.ok(issued.length >= 2); // the operator token's and x's
      assert.ok(issued.every((e) => e.event === "cap.issued"));
      const fsEvents = await events(["--event", "fs"]);
      assert.ok(fsEvents.every((e) => e.event.startsWith("fs.")));
      assert.ok(fsEvents.some((e) => e.event === "fs.open"));
      const last = await events(["-n", "1"]);
      assert.equal(last.length, 1);
      const recent = await events(["--since", "10m", "--event", "cap.issued"]);
      assert.equal(recent.length, issued.length);
      const none = await expectExit(node, ["audit", "--since", "1s", "--event", "key.rotated"], 0);
      assert.equal(none.stdout, "");
      const bad = await expectExit(node, ["audit", "--cap", "nope"], 2);
      assert.match(bad.stderr, /--cap: nope is not a cap_id/);
    });

    await t.step("-f: new events appear as they are written", async () => {
      const { cmd, args } = ctlCommand(node, ["audit", "-f", "--event", "cap.issued", "-n", "1"]);
      const child = new Deno.Command(cmd, {
        args,
        clearEnv: true,
        env: ctlEnv(),
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      let seen = "";
      const reading = (async () => {
        for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) seen += c;
      })();
      try {
        await waitFor("the last event", () => seen.includes("\n"), 10_000);
        const ids: string[] = [];
        for (let i = 0; i < 3; i++) {
          ids.push((await issue(node, { service: "fs", actions: ["list"] })).cap_id);
        }
        await waitFor("the three new events", () => ids.every((id) => seen.includes(id)), 10_000);
        const lines = seen.trimEnd().split("\n");
        assert.equal(lines.length, 4, seen);
        assert.ok(lines.every((l) => / identity +cap\.issued {2}cap_id=/.test(l)), seen);
      } finally {
        child.kill("SIGINT");
        await child.status;
        await reading;
      }
    });

    await t.step("needs supervisor.audit; ctl itself is not granted the 0600 file", async () => {
      const logsOnly = await issue(node, { service: "supervisor", actions: ["logs"] });
      const r = await expectExit(node, ["-token", logsOnly.token, "audit"], 1);
      assert.match(r.stderr, /lacks the right supervisor\.audit/);
      const st = stateFiles(node.layout);
      assert.equal(Deno.statSync(st.audit).mode! & 0o777, 0o600);
      const ctlReads = permissionSet("ctl", node.layout).read;
      assert.ok(!ctlReads.includes(st.audit) && !ctlReads.includes(node.layout.stateDir));
      const allowed = await issue(node, { service: "supervisor", actions: ["audit"] });
      await expectExit(node, ["-token", allowed.token, "audit", "-n", "1"], 0);
    });
  } finally {
    await node.stop();
  }
});

/** The shell line that runs strata-ctl on a terminal `cols` wide (inside script(1)). */
function onTerminalLine(node: Node, args: string[], cols: number, downloads: string[]): string {
  const { cmd, args: argv } = ctlCommand(node, args, { downloads });
  const quoted = [cmd, ...argv].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  return `stty cols ${cols} rows 24; exec ${quoted}`;
}

/** script(1) running `line` on a pseudo-terminal, its stdin piped (to type Ctrl-C). */
function scriptProcess(line: string, cwd: string): Deno.ChildProcess {
  const env = ctlEnv();
  delete env.NO_COLOR;
  return new Deno.Command("script", {
    args: ["-qec", line, "/dev/null"],
    cwd,
    clearEnv: true,
    env: { ...env, SHELL: "/bin/sh", TERM: "xterm" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** The escape character that starts a terminal control sequence. */
const ESC = String.fromCharCode(0x1b);

/** What each redraw of the bar showed: the text between a carriage return and the erase. */
function redraws(screen: string): string[] {
  const redraw = new RegExp(`\\r([^\\r\\n]*?)${ESC}\\[K`, "g");
  return [...screen.matchAll(redraw)].map((m) => m[1]).filter((s) => s !== "");
}

Deno.test({
  name: "fs get on a terminal: rate and ETA, one line that fits 40 and 120 columns, Ctrl-C says so",
  ignore: !hasScript(),
  fn: async (t) => {
    const node = await startNode();
    const dl = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-ctl-dl-" });
    const size = 6 * 1024 * 1024;
    Deno.writeFileSync(`${node.exportRoot}/six.bin`, new Uint8Array(size).fill(7));
    try {
      for (const cols of [40, 120]) {
        await t.step(`${cols} columns`, async () => {
          // A rate-limited token makes the download last long enough to redraw a few times.
          const slow = await issue(node, {
            service: "fs",
            actions: ["open", "read"],
            rate_limit: "4rps",
          });
          const line = onTerminalLine(
            node,
            ["-token", slow.token, "fs", "get", `${node.exportRoot}/six.bin`, `c${cols}.bin`],
            cols,
            [dl],
          );
          const child = scriptProcess(line, dl);
          await child.stdin.close();
          const out = await child.output();
          const screen = new TextDecoder().decode(out.stdout);
          assert.equal(out.code, 0, JSON.stringify(screen));
          const shown = redraws(screen);
          assert.ok(shown.length >= 3, JSON.stringify(screen));
          for (const s of shown) assert.ok(s.length <= cols - 1, `${s.length} > ${cols - 1}: ${s}`);
          // never scrolled: the bar stays on one line, and the summary is the only line after it
          assert.equal(screen.split("\n").length, 2, JSON.stringify(screen));
          assert.match(screen, /saved .*c\d+\.bin \(6\.0 MiB in /);
          const withRate = shown.filter((s) => /\d+\.\d (KiB|MiB)\/s {2}ETA \d+s/.test(s));
          assert.ok(withRate.length >= 1, JSON.stringify(shown));
          if (cols === 120) {
            assert.ok(
              withRate.some((s) =>
                /^\[#*-*\] +\d+% {2}[\d.]+ (B|KiB|MiB) of 6\.0 MiB {2}[\d.]+ (KiB|MiB)\/s {2}ETA \d+s$/
                  .test(s)
              ),
              JSON.stringify(shown),
            );
          } else {
            assert.ok(withRate.every((s) => /^\[#*-*\] +\d+% {2}/.test(s)), JSON.stringify(shown));
          }
          assert.deepEqual(Deno.readFileSync(`${dl}/c${cols}.bin`).length, size);
        });
      }

      await t.step(
        "Ctrl-C: the prompt on a fresh line, a word, nothing saved, exit 130",
        async () => {
          const slow = await issue(node, {
            service: "fs",
            actions: ["open", "read"],
            rate_limit: "1rps",
          });
          const line = onTerminalLine(
            node,
            ["-token", slow.token, "fs", "get", `${node.exportRoot}/six.bin`, "cut.bin"],
            80,
            [dl],
          );
          const child = scriptProcess(line, dl);
          let screen = "";
          const reading = (async () => {
            for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) screen += c;
          })();
          const writer = child.stdin.getWriter();
          try {
            await waitFor("the bar", () => /\d+\.\d (KiB|MiB)\/s {2}ETA/.test(screen), 15_000);
            // Ctrl-C typed on the terminal: the tty sends SIGINT to the foreground process group.
            await writer.write(new Uint8Array([0x03]));
            const status = await child.status;
            await reading;
            assert.equal(status.code, 130, JSON.stringify(screen));
            // the bar (and the echoed ^C) cleared, then one line with the word, ending the screen
            assert.ok(
              screen.endsWith(`\r${ESC}[Kstrata-ctl: interrupted; nothing was saved\r\n`),
              JSON.stringify(screen),
            );
            assert.deepEqual(
              [...Deno.readDirSync(dl)].map((e) => e.name).filter((n) => n.includes("cut")),
              [],
            );
          } finally {
            await writer.close().catch(() => {});
            try {
              child.kill("SIGKILL");
            } catch { /* ended */ }
            await child.status;
          }
        },
      );
    } finally {
      await node.stop();
      await Deno.remove(dl, { recursive: true });
    }
  },
});

/**
 * Runs the bash completion script strata-ctl prints for `words` (the last
 * being completed) in a real bash, with `strata-ctl` on PATH running the
 * real program against `node`; returns the offers.
 */
async function bashOffers(
  node: Node,
  words: string[],
  env: Record<string, string> = {},
): Promise<string[]> {
  const bin = await Deno.makeTempDir({ prefix: "strata-ctl-bin-" });
  try {
    const { cmd, args } = ctlCommand(node, []);
    const quoted = [cmd, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    Deno.writeTextFileSync(`${bin}/strata-ctl`, `#!/bin/sh\nexec ${quoted} "$@"\n`, {
      mode: 0o755,
    });
    const script = (await expectExit(node, ["completion", "bash"], 0)).stdout;
    const program = [
      script,
      `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}`,
      "COMPREPLY=()",
      "_strata_ctl",
      'printf "%s\\n" "${COMPREPLY[@]}"',
    ].join("\n");
    const out = await new Deno.Command("bash", {
      args: ["--norc", "-c", program],
      cwd: "/",
      clearEnv: true,
      env: { ...ctlEnv(env), PATH: `${bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` },
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== "");
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
}

Deno.test("completion in a real bash: remote paths from fs with the current token, cap_ids from identity", async (t) => {
  const node = await startNode();
  const root = node.exportRoot;
  Deno.mkdirSync(`${root}/docs`);
  Deno.writeTextFileSync(`${root}/docs/a.txt`, "a");
  Deno.writeTextFileSync(`${root}/docs/b.txt`, "b");
  Deno.writeTextFileSync(`${root}/data.bin`, "d");
  try {
    await t.step("fs ls|cat|get PATH: the folder's entries, folders ending in /", async () => {
      assert.deepEqual(await bashOffers(node, ["strata-ctl", "fs", "ls", `${root}/d`]), [
        `${root}/data.bin`,
        `${root}/docs/`,
      ]);
      assert.deepEqual(await bashOffers(node, ["strata-ctl", "fs", "cat", `${root}/docs/`]), [
        `${root}/docs/a.txt`,
        `${root}/docs/b.txt`,
      ]);
      assert.deepEqual(
        await bashOffers(node, ["strata-ctl", "--json", "fs", "get", `${root}/docs/b`]),
        [`${root}/docs/b.txt`],
      );
      // DEST is still a local file
      const local = await bashOffers(node, ["strata-ctl", "fs", "get", `${root}/data.bin`, "/et"]);
      assert.deepEqual(local, ["/etc"]);
    });

    await t.step(
      "with the token the line gives (-token, else STRATA_TOKEN): what it may list",
      async () => {
        const docs = await issue(node, {
          service: "fs",
          actions: ["list"],
          path_prefix: `${root}/docs`,
        });
        // relative to the token's prefix
        assert.deepEqual(
          await bashOffers(node, ["strata-ctl", "-token", docs.token, "fs", "ls", ""]),
          ["a.txt", "b.txt"],
        );
        assert.deepEqual(
          await bashOffers(node, ["strata-ctl", "fs", "cat", `${root}/docs/a`], {
            STRATA_TOKEN: docs.token,
          }),
          [`${root}/docs/a.txt`],
        );
        // outside its prefix, or without fs.list: nothing is offered
        assert.deepEqual(
          await bashOffers(node, ["strata-ctl", "-token", docs.token, "fs", "ls", `${root}/d`]),
          [],
        );
        const openOnly = await issue(node, { service: "fs", actions: ["open"] });
        assert.deepEqual(
          await bashOffers(node, ["strata-ctl", "--token", openOnly.token, "fs", "ls", `${root}/`]),
          [],
        );
      },
    );

    await t.step("token revoke|inspect: the cap_ids of live capabilities", async () => {
      const a = await issue(node, { service: "fs", actions: ["list"] });
      const b = await issue(node, { service: "fs", actions: ["list"] });
      const offered = await bashOffers(node, ["strata-ctl", "token", "revoke", ""]);
      assert.ok(offered.includes(a.cap_id) && offered.includes(b.cap_id), offered.join(" "));
      assert.ok(offered.every((id) => /^[0-9a-f]{32}$/.test(id)));
      assert.deepEqual(
        await bashOffers(node, ["strata-ctl", "token", "inspect", a.cap_id.slice(0, 12)]),
        [a.cap_id],
      );
      await expectExit(node, ["token", "revoke", a.cap_id], 0);
      const after = await bashOffers(node, ["strata-ctl", "token", "revoke", ""]);
      assert.ok(!after.includes(a.cap_id) && after.includes(b.cap_id));
    });

    await t.step("token inspect CAP_ID: identity's record of it; revoked exits 1", async () => {
      const c = await issue(node, { service: "fs", actions: ["list", "open"], sub: "ci" });
      const r = await expectExit(node, ["token", "inspect", c.cap_id], 0);
      assert.match(r.stdout, /^valid +yes\ncap_id +[0-9a-f]{32}\nsubject +ci\nservice +fs\n/);
      assert.match(r.stdout, /\nrights +fs\.list, fs\.open\n/);
      await expectExit(node, ["token", "revoke", c.cap_id], 0);
      const revoked = await expectExit(node, ["token", "inspect", c.cap_id, "--json"], 1);
      assert.equal(JSON.parse(revoked.stdout).valid, false);
      const missing = await expectExit(node, ["token", "inspect", "0".repeat(32)], 1);
      assert.match(missing.stderr, /no live capability 0{32} in identity's record/);
    });
  } finally {
    await node.stop();
  }
});
