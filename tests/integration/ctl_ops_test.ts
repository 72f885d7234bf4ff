/**
 * strata-ctl for every day, against a real supervisor: advice that names
 * the command to run (`svc start fs`, where the launcher looked for the
 * supervisor), `fs cat | head` ending quietly, help examples that work,
 * vault-style single-dash options, `status` exit codes, `svc status` and
 * `logs`; each in human and --json form, with exit codes.
 */

import assert from "node:assert/strict";
import { ctlCommand, ctlEnv, expectExit, hasScript } from "../ctl_support.ts";
import { KeyRing } from "../../src/identity/keyring.ts";
import { programCommand } from "../../src/runtime/command.ts";
import { runtimeFiles, stateFiles } from "../../src/runtime/config.ts";
import { type Claims, newCapId } from "../../src/token/claims.ts";
import { signV4Public } from "../../src/token/paseto.ts";
import {
  AS_ROOT,
  devTmpLayout,
  issue,
  REPO_ROOT,
  startNode,
  tempLayout,
  waitFor,
} from "../helpers.ts";

/** `token issue ARGS --json` run through strata-ctl: the token and its cap_id. */
async function issueByCtl(
  node: Parameters<typeof expectExit>[0],
  ...args: string[]
): Promise<{ token: string; cap_id: string }> {
  return JSON.parse((await expectExit(node, ["token", "issue", ...args, "--json"], 0)).stdout);
}

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
          /^strata-ctl: cannot reach fs: .*; start it with `strata-ctl svc start fs`/,
        );
        assert.doesNotMatch(r.stderr, /deno task start/);
        const json = JSON.parse((await expectExit(node, ["fs", "ls", root, "--json"], 2)).stdout);
        assert.equal(json.name, "UNAVAILABLE");
        assert.match(json.hint, /strata-ctl svc start fs/);
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
      const issued = await issueByCtl(node, "--service", "fs", "--actions", "list");
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

    await t.step(
      "token inspect CAP_ID shows the rate limit, as inspecting the token does",
      async () => {
        const issued = await issueByCtl(
          node,
          "--service",
          "fs",
          "--actions",
          "list",
          "--rate",
          "5rps",
        );
        const byToken = await expectExit(node, ["token", "inspect", issued.token], 0);
        assert.match(byToken.stdout, /^rate +5rps$/m);
        const byId = await expectExit(node, ["token", "inspect", issued.cap_id], 0);
        assert.match(byId.stdout, /^rate +5rps$/m);
        assert.match(byId.stdout, /identity's record/);
      },
    );

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
    // The state dir lies inside the export root (/tmp) here: fs serves none of
    // the services' log files in it.
    const logFile = `${stateFiles(temp.layout).logs}/fs.log`;
    assert.ok(Deno.statSync(logFile).isFile);
    for (const args of [["fs", "cat", logFile], ["fs", "ls", stateFiles(temp.layout).logs]]) {
      const r = await expectExit(node, args, 1);
      assert.match(r.stderr, /Strata's own state or runtime folder/, r.stderr);
    }
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

Deno.test({
  name:
    "strata-ctl and a socket the system refuses: 'cannot use', and --json says permission_denied",
  ignore: !AS_ROOT,
  async fn() {
    // The node's sockets belong to another user (mode 0600), and strata-ctl runs as root without
    // the capabilities that pass over file modes (setpriv), with its real grants: Deno allows
    // the socket, the operating system refuses it, as it would another user's strata-ctl.
    const node = await startNode();
    try {
      for (const s of ["supervisor", "registry", "fs"]) {
        await Deno.chown(`${node.layout.runtimeDir}/${s}.sock`, 65534, 65534);
      }
      const asOthers = async (args: string[]) => {
        const { cmd, args: argv } = ctlCommand(node, args);
        const out = await new Deno.Command("setpriv", {
          args: ["--bounding-set=-dac_override,-dac_read_search", "--", cmd, ...argv],
          clearEnv: true,
          env: ctlEnv(),
          stdin: "null",
        }).output();
        const dec = new TextDecoder();
        return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
      };
      const human = await asOthers(["status"]);
      assert.equal(human.code, 2, human.stderr);
      assert.match(
        human.stderr,
        /^strata-ctl: cannot use the supervisor's socket \(cannot connect to /,
      );
      assert.match(human.stderr, /run strata-ctl as the user the node runs as/);
      const json = await asOthers(["status", "--json"]);
      assert.equal(json.code, 2, json.stderr);
      const err = JSON.parse(json.stdout);
      assert.equal(err.name, "UNAVAILABLE");
      assert.deepEqual(err.details, {
        reason: "permission_denied",
        path: `${node.layout.runtimeDir}/supervisor.sock`,
      });
      // a service's socket the same way: not "start it with svc start"
      const fs = await asOthers(["-token", "x", "fs", "ls", "/"]);
      assert.equal(fs.code, 2, fs.stderr);
      assert.match(fs.stderr, /^strata-ctl: cannot reach fs: .*; run strata-ctl as the user/);
    } finally {
      await node.stop();
    }
  },
});

Deno.test("strata-ctl svc status and logs: state, restarts by cause, memory, log lines", async (t) => {
  const node = await startNode();
  const st = stateFiles(node.layout);
  try {
    await t.step("svc status: like systemctl status, exit 0 while Healthy", async () => {
      const r = await expectExit(node, ["svc", "status", "fs"], 0);
      const lines = r.stdout.split("\n");
      assert.match(lines[0], /^fs: Healthy since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(/);
      assert.match(r.stdout, /\npid {8}\d+\n/);
      assert.match(r.stdout, /\nrestarts {3}0 \(0 after a crash, 0 by an operator\)\n/);
      assert.match(r.stdout, /\nlast exit {2}-\n/);
      assert.match(r.stdout, /\nmemory {5}\d+\.\d MiB resident \(heap /);
      assert.ok(r.stdout.includes(`\nendpoint   unix://${node.layout.runtimeDir}/fs.sock\n`));
      assert.ok(r.stdout.includes(`\nlog        ${st.logs}/fs.log\n`));
      assert.match(r.stdout, /\n\n\d{4}-\d\d-\d\d \d\d:\d\d:\d\d fs {7}listening {2}socket=/);
      const json = JSON.parse(
        (await expectExit(node, ["svc", "status", "fs", "--json"], 0)).stdout,
      );
      assert.equal(json.state, "Healthy");
      assert.ok(json.memory.rss > 1024 * 1024);
      assert.deepEqual(json.restarts_by, { crash: 0, operator: 0 });
      assert.ok(json.logs.some((l: { line: string }) => JSON.parse(l.line).msg === "listening"));
      const typo = await expectExit(node, ["svc", "status", "fss"], 2);
      assert.match(typo.stderr, /no service fss; did you mean fs\?/);
    });

    await t.step("the log lines are kept in <state>/logs, 0600, and still reach stderr", () => {
      for (const s of ["registry", "identity", "fs"]) {
        const info = Deno.statSync(`${st.logs}/${s}.log`);
        assert.equal(info.mode! & 0o777, 0o600, s);
        const first = Deno.readTextFileSync(`${st.logs}/${s}.log`).split("\n")[0];
        assert.equal(JSON.parse(first).program, s);
      }
      assert.equal(Deno.statSync(st.logs).mode! & 0o777, 0o700);
      assert.match(node.output(), /"program":"fs","msg":"listening"/);
    });

    await t.step("restarts apart: one by an operator, one after a crash", async () => {
      await expectExit(node, ["svc", "restart", "fs", "--drain", "1s"], 0);
      const pid = JSON.parse((await expectExit(node, ["svc", "status", "fs", "--json"], 0)).stdout)
        .pid;
      Deno.kill(pid, "SIGKILL");
      await waitFor("fs back after the crash", async () => {
        const r = await node.request("supervisor", "supervisor.svc.status", { name: "fs" });
        if (!r.ok) return false;
        const s = r.result as { state: string; pid: number };
        return s.state === "Healthy" && s.pid !== pid;
      }, 15_000);
      await node.childPids();
      const json = JSON.parse(
        (await expectExit(node, ["svc", "status", "fs", "--json"], 0)).stdout,
      );
      assert.deepEqual(json.restarts_by, { crash: 1, operator: 1 });
      assert.equal(json.restarts, 2);
      assert.deepEqual(json.last_exit, { code: 137, signal: "SIGKILL" });
      const human = await expectExit(node, ["svc", "status", "fs"], 0);
      assert.match(human.stdout, /\nrestarts {3}2 \(1 after a crash, 1 by an operator\)\n/);
      assert.match(human.stdout, /\nlast exit {2}signal SIGKILL\n/);
    });

    await t.step(
      "svc status of a stopped service exits 3, its last lines still shown",
      async () => {
        await expectExit(node, ["svc", "stop", "fs"], 0);
        try {
          const r = await expectExit(node, ["svc", "status", "fs"], 3);
          assert.match(r.stdout, /^fs: Stopped since /);
          assert.match(r.stdout, /\npid {8}-\n/);
          assert.match(r.stdout, /\nmemory {5}-\n/);
          assert.match(r.stdout, /fs {7}stopped/);
          const json = JSON.parse(
            (await expectExit(node, ["svc", "status", "fs", "--json"], 3)).stdout,
          );
          assert.equal(json.memory, null);
        } finally {
          await expectExit(node, ["svc", "start", "fs"], 0);
          await node.childPids();
        }
      },
    );

    await t.step("logs: every service's lines in order; SERVICE, -n, --since; --json", async () => {
      const all = await expectExit(node, ["logs"], 0);
      for (const s of ["registry", "identity", "fs"]) {
        assert.match(all.stdout, new RegExp(`\\d\\d:\\d\\d:\\d\\d ${s} +listening`), s);
      }
      const fs = await expectExit(node, ["logs", "fs"], 0);
      const fsLines = fs.stdout.trimEnd().split("\n");
      assert.ok(fsLines.every((l) => / fs {7}/.test(l)), fs.stdout);
      const two = await expectExit(node, ["logs", "fs", "-n", "2"], 0);
      assert.deepEqual(two.stdout.trimEnd().split("\n"), fsLines.slice(-2));
      const json = JSON.parse((await expectExit(node, ["logs", "--json", "-n", "5"], 0)).stdout);
      assert.equal(json.lines.length, 5);
      assert.ok(
        json.lines.every((l: { seq: number }, i: number, a: { seq: number }[]) =>
          i === 0 || l.seq > a[i - 1].seq
        ),
      );
      assert.ok(json.next >= json.lines.at(-1).seq);
      const none = await expectExit(node, ["logs", "fs", "--since", "1ms"], 0);
      assert.ok(none.stdout.split("\n").length <= fsLines.length);
      const bad = await expectExit(node, ["logs", "--since", "yesterday"], 2);
      assert.match(bad.stderr, /--since: cannot read "yesterday" as a duration/);
      const many = await expectExit(node, ["logs", "-n", "5000"], 2);
      assert.match(many.stderr, /--lines: 5000 is not a number from 1 to 1000/);
      const unknown = await expectExit(node, ["logs", "regsitry"], 2);
      assert.match(unknown.stderr, /did you mean registry\?/);
    });

    await t.step("logs -f: new lines appear as they are written", async () => {
      const { cmd, args } = ctlCommand(node, ["logs", "fs", "-f", "-n", "1"]);
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
        await waitFor("the first line", () => seen.includes("\n"), 10_000);
        const before = seen;
        await expectExit(node, ["svc", "restart", "fs", "--drain", "1s"], 0);
        await waitFor(
          "the restart's lines",
          () => /fs {7}stopped[\s\S]*fs {7}listening/.test(seen.slice(before.length)),
          10_000,
        );
      } finally {
        child.kill("SIGINT");
        await child.status;
        await reading;
        await node.childPids();
      }
    });

    await t.step("logs need supervisor.logs: refused with the reason (exit 1)", async () => {
      const fsToken = (await issue(node, { service: "fs", actions: ["list"] })).token;
      const r = await expectExit(node, ["-token", fsToken, "logs"], 1);
      assert.match(r.stderr, /lacks the right supervisor\.logs|issued for service fs/);
      const status = await expectExit(node, ["-token", fsToken, "svc", "status", "fs"], 0);
      assert.match(status.stdout, /\(no log lines: token: /);
      const json = JSON.parse(
        (await expectExit(node, ["-token", fsToken, "svc", "status", "fs", "--json"], 0)).stdout,
      );
      assert.equal(json.logs, null);
      const sup = (await issue(node, { service: "supervisor", actions: ["svc.start"] })).token;
      const denied = await node.request("supervisor", "supervisor.logs", {}, sup);
      assert.equal(denied.ok, false);
      assert.equal(!denied.ok && denied.error.details?.reason, "missing_right");
      const allowed = (await issue(node, { service: "supervisor", actions: ["logs"] })).token;
      const ok = await node.request("supervisor", "supervisor.logs", { lines: 1 }, allowed);
      assert.ok(ok.ok, JSON.stringify(ok));
    });
  } finally {
    await node.stop();
  }
});

Deno.test("an operator token minted before supervisor.logs existed reads the logs and delegates the right; a delegated one must list it", async () => {
  const temp = await tempLayout();
  const first = await startNode({ temp });
  const st = stateFiles(temp.layout);
  let old: Claims;
  try {
    const seen = await first.request("identity", "identity.introspect", {
      token: first.operatorToken(),
    });
    assert.ok(seen.ok);
    old = (seen.result as { claims: Claims }).claims;
  } finally {
    await first.stop();
  }
  // The operator token of a node from before the right: the same root
  // capability, its rights listing everything but supervisor.logs.
  const ring = await KeyRing.open({ keys: st.keys, keysTmp: st.keysTmp });
  const rights = old.rights.filter((r) => r !== "supervisor.logs");
  const capId = newCapId();
  const token = await signV4Public(ring.active, { ...old, jti: capId, rights, actions: rights });
  Deno.writeTextFileSync(st.operatorToken, token + "\n", { mode: 0o600 });
  const node = await startNode({ temp });
  try {
    // identity kept it (still valid for a year), and it reads the logs
    assert.equal(node.operatorToken(), token);
    const inspect = await expectExit(node, ["token", "inspect"], 0);
    assert.ok(inspect.stdout.includes(`cap_id   ${capId}\n`));
    assert.doesNotMatch(inspect.stdout, /supervisor\.logs/);
    const logs = await expectExit(node, ["logs", "-n", "3"], 0);
    assert.equal(logs.stdout.trimEnd().split("\n").length, 3);
    // a delegated token for every service holds only what it lists
    const star = (await issue(node, { service: "*", rights: ["supervisor.svc.start"] })).token;
    const r = await node.request("supervisor", "supervisor.logs", {}, star);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.error.details?.reason, "missing_right");
    // and the old operator token delegates the right it never listed: the
    // root capability holds every right, present and future
    const issued = await expectExit(node, [
      "token",
      "issue",
      "--service",
      "supervisor",
      "--actions",
      "logs",
      "-q",
    ], 0);
    const delegated = issued.stdout.trim();
    const read = await node.request("supervisor", "supervisor.logs", { lines: 1 }, delegated);
    assert.ok(read.ok, JSON.stringify(read));
  } finally {
    await node.stop();
    await temp.cleanup();
  }
});

/** Starts the supervisor on a pseudo-terminal (script(1)); returns what the terminal showed. */
async function supervisorOnTerminal(extra: string[]): Promise<string> {
  const temp = await tempLayout();
  const { cmd, args, env } = programCommand("supervisor", temp.layout, {
    kind: "dev",
    deno: Deno.execPath(),
    root: REPO_ROOT,
  }, { run: [Deno.execPath()], extra });
  const line = [cmd, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  const child = new Deno.Command("script", {
    args: ["-qfec", line, "/dev/null"],
    clearEnv: true,
    env: { ...ctlEnv(), ...env, SHELL: "/bin/sh", TERM: "xterm" },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let screen = "";
  const reading = (async () => {
    for await (const c of child.stdout.pipeThrough(new TextDecoderStream())) screen += c;
  })();
  const ready = runtimeFiles(temp.layout).ready;
  try {
    await waitFor("every service Healthy", () => Deno.statSync(ready).isFile, 20_000);
  } finally {
    // The ready file holds the supervisor's pid; SIGTERM stops it and its children.
    const pid = Number(Deno.readTextFileSync(ready).trim());
    if (pid > 0) Deno.kill(pid, "SIGTERM");
    else child.kill("SIGKILL");
    await child.status;
    await reading;
    await temp.cleanup();
  }
  return screen;
}

Deno.test({
  name: "deno task start on a terminal: readable lines; --json asks for JSON; --help and --version",
  ignore: !hasScript(),
  async fn() {
    const human = (await supervisorOnTerminal([])).split(/\r?\n/);
    for (const s of ["registry", "identity", "fs"]) {
      assert.ok(
        human.some((l) => new RegExp(`^\\d\\d:\\d\\d:\\d\\d ${s} +listening {2}socket=`).test(l)),
        `${s} in\n${human.join("\n")}`,
      );
    }
    assert.ok(human.some((l) => /^\d\d:\d\d:\d\d supervisor +svc\.start {2}name=registry/.test(l)));
    assert.ok(human.some((l) => /^strata: all services healthy/.test(l)), human.join("\n"));
    assert.ok(!human.some((l) => l.startsWith('{"ts"')), human.join("\n"));
    const json = (await supervisorOnTerminal(["--json"])).split(/\r?\n/);
    assert.ok(
      json.some((l) => /^\{"ts":"[^"]+","level":"info","program":"fs","msg":"listening"/.test(l)),
    );
    assert.ok(
      json.some((l) => /^\{"ts":"[^"]+","event":"svc\.start","program":"supervisor"/.test(l)),
    );

    const temp = await tempLayout();
    try {
      for (
        const [flag, want] of [[
          "--help",
          /^supervisor \d+\.\d+\.\d+: starts registry[\s\S]*Usage: deno task start \[--json\]/,
        ], ["--version", /^supervisor \d+\.\d+\.\d+\n$/]] as const
      ) {
        const { cmd, args } = programCommand("supervisor", temp.layout, {
          kind: "dev",
          deno: Deno.execPath(),
          root: REPO_ROOT,
        }, { run: [Deno.execPath()], extra: [flag] });
        const out = await new Deno.Command(cmd, { args, stdin: "null" }).output();
        assert.equal(out.code, 0, flag);
        assert.match(new TextDecoder().decode(out.stdout), want);
      }
      // nothing was started or created for them
      assert.throws(() => Deno.statSync(temp.layout.runtimeDir));
    } finally {
      await temp.cleanup();
    }
  },
});
