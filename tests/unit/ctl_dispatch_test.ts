/**
 * Unit tests for src/ctl/dispatch.ts: finding a command (with suggestions),
 * parsing its words, and printing its outcome or failure as text or JSON.
 */

import assert from "node:assert/strict";
import { COMMANDS } from "../../src/ctl/commands.ts";
import {
  type DispatchArgs,
  findCommand,
  type Io,
  loadParser,
  parseInput,
  runCommand,
} from "../../src/ctl/dispatch.ts";
import { EXIT, refusal, usage } from "../../src/ctl/errors.ts";
import type { Command, Entry, Group } from "../../src/ctl/spec.ts";
import type { Layout } from "../../src/runtime/config.ts";
import { assertUsage } from "./support.ts";

// parseInput parses words with node:util, which strata-ctl loads before it (dispatch.ts).
await loadParser();

const GET: Command = {
  name: "get",
  summary: "download",
  args: [{ name: "PATH" }, { name: "DEST", optional: true }],
  options: [
    { name: "force", short: "f", summary: "replace" },
    { name: "limit", value: "N", summary: "at most N" },
  ],
  examples: ["strata-ctl fs get /a"],
  run: () => Promise.resolve({}),
};
const ISSUE: Command = {
  name: "issue",
  summary: "issue",
  args: [],
  options: [{ name: "service", value: "NAME", required: true, summary: "s" }],
  examples: ["strata-ctl token issue --service fs"],
  run: () => Promise.resolve({}),
};
const FS: Group = { name: "fs", summary: "files", commands: [GET] };

Deno.test("findCommand: a plain command, a group's command, and a bare group", () => {
  const status = findCommand(COMMANDS, ["status", "x"]);
  assert.equal(status.command?.name, "status");
  assert.deepEqual(status.rest, ["x"]);
  const get = findCommand(COMMANDS, ["fs", "get", "/a", "--force"]);
  assert.equal(get.group?.name, "fs");
  assert.equal(get.command?.name, "get");
  assert.deepEqual(get.rest, ["/a", "--force"]);
  const bare = findCommand(COMMANDS, ["svc"]);
  assert.equal(bare.group?.name, "svc");
  assert.equal(bare.command, undefined);
});

Deno.test("findCommand: a typo suggests the nearest command, at either level", () => {
  assertUsage(
    () => findCommand(COMMANDS, ["stauts"]),
    /^unknown command stauts$/,
    /^did you mean status\?$/,
  );
  assertUsage(
    () => findCommand(COMMANDS, ["svc", "lsit"]),
    /^unknown command svc lsit$/,
    /^did you mean svc list\?$/,
  );
  assertUsage(
    () => findCommand(COMMANDS, ["fs", "lss"]),
    /unknown command fs lss/,
    /did you mean fs ls\?/,
  );
  // a subcommand typed on its own names the groups that have it
  assertUsage(
    () => findCommand(COMMANDS, ["list"]),
    /unknown command list/,
    /svc list or token list or registry list/,
  );
  // nothing near: where to look, and what a raw method looks like
  assertUsage(
    () => findCommand(COMMANDS, ["qwertyuiop"]),
    /unknown command qwertyuiop/,
    /strata-ctl --help.*supervisor\.status/,
  );
});

Deno.test("parseInput: arguments, long and short flags, values in either form", () => {
  const a = parseInput(GET, ["/a", "dest", "-f", "--limit", "5"], { group: FS });
  assert.deepEqual(a.args, ["/a", "dest"]);
  assert.equal(a.options.force, true);
  assert.equal(a.options.limit, "5");
  assert.equal(parseInput(GET, ["--limit=7", "/a"], { group: FS }).options.limit, "7");
  // `--` ends the options: a name starting with a dash is an argument
  assert.deepEqual(parseInput(GET, ["--", "-odd-name"], { group: FS }).args, ["-odd-name"]);
});

Deno.test("parseInput: missing or extra arguments show the usage line", () => {
  assertUsage(
    () => parseInput(GET, [], { group: FS }),
    /^fs get needs PATH$/,
    /usage: strata-ctl fs get PATH \[DEST\]/,
  );
  assertUsage(
    () => parseInput(GET, ["a", "b", "c"], { group: FS }),
    /unexpected argument c/,
    /usage:/,
  );
  assertUsage(
    () => parseInput(ISSUE, [], { group: undefined }),
    /issue needs --service/,
    /--service NAME/,
  );
});

Deno.test("parseInput: an unknown option suggests the nearest; a value where none belongs is refused", () => {
  assertUsage(
    () => parseInput(GET, ["/a", "--froce"], { group: FS }),
    /^unknown option --froce for fs get$/,
    /did you mean --force\?/,
  );
  assertUsage(
    () => parseInput(GET, ["/a", "--zzzzzzzz"], { group: FS }),
    /unknown option/,
    /strata-ctl fs get --help/,
  );
  assertUsage(
    () => parseInput(GET, ["/a", "--force=yes"], { group: FS }),
    /--force takes no value/,
  );
  assertUsage(
    () => parseInput(GET, ["/a", "--limit"], { group: FS }),
    /--limit needs a value \(N\)/,
  );
});

/** An Io that keeps what was written. */
function captureIo(options: Partial<Io> = {}): Io & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    stdout: (t) => void out.push(t),
    stderr: (t) => void err.push(t),
    stdoutIsTerminal: false,
    stderrIsTerminal: false,
    ...options,
  };
}

const LAYOUT: Layout = {
  runtimeDir: "/nonexistent/strata-rt",
  stateDir: "/nonexistent/strata-state",
  nodeId: "t",
  fsRoots: [],
};

function argsOf(positionals: string[], more: Partial<DispatchArgs> = {}): DispatchArgs {
  return { layout: LAYOUT, timeoutMs: 1000, json: false, help: false, positionals, ...more };
}

/** A table with one command whose run is `run`. */
function tableWith(run: Command["run"]): Entry[] {
  return [{ ...GET, name: "do", args: [], options: [], run }];
}

Deno.test("runCommand: text by default, the result as JSON with --json", async () => {
  const entries = tableWith(() => Promise.resolve({ data: { a: 1 }, text: "a is 1" }));
  const io = captureIo();
  assert.equal(await runCommand(argsOf(["do"]), { entries, io }), EXIT.OK);
  assert.deepEqual(io.out, ["a is 1\n"]);
  const json = captureIo();
  assert.equal(await runCommand(argsOf(["do"], { json: true }), { entries, io: json }), EXIT.OK);
  assert.deepEqual(JSON.parse(json.out.join("")), { a: 1 });
  assert.deepEqual(json.err, []);
});

Deno.test("runCommand: colour only when stdout is a terminal and NO_COLOR is unset", async () => {
  const seen: boolean[] = [];
  const entries = tableWith((ctx) => {
    seen.push(ctx.style.color);
    return Promise.resolve({});
  });
  await runCommand(argsOf(["do"]), { entries, io: captureIo({ stdoutIsTerminal: true }) });
  await runCommand(argsOf(["do"]), {
    entries,
    io: captureIo({ stdoutIsTerminal: true, noColor: "1" }),
  });
  await runCommand(argsOf(["do"]), { entries, io: captureIo({ stdoutIsTerminal: false }) });
  assert.deepEqual(seen, [true, false, false]);
});

Deno.test("runCommand: a refusal exits 1 with one line on stderr, and JSON on stdout with --json", async () => {
  const entries = tableWith(() =>
    Promise.reject(refusal({ code: 3, name: "PERMISSION_DENIED", message: "token: no fs.read" }))
  );
  const io = captureIo();
  assert.equal(await runCommand(argsOf(["do"]), { entries, io }), EXIT.REFUSED);
  assert.deepEqual(io.out, []);
  assert.equal(io.err.length, 1);
  assert.match(io.err[0], /^strata-ctl: token: no fs\.read; see what your token allows/);
  const json = captureIo();
  assert.equal(
    await runCommand(argsOf(["do"], { json: true }), { entries, io: json }),
    EXIT.REFUSED,
  );
  const body = JSON.parse(json.out.join(""));
  assert.equal(body.name, "PERMISSION_DENIED");
  assert.equal(body.code, 3);
  assert.match(body.hint, /token inspect/);
});

Deno.test("runCommand: INVALID_ARGUMENT from a service points at the command's help", async () => {
  const entries = tableWith(() =>
    Promise.reject(refusal({ code: 1, name: "INVALID_ARGUMENT", message: "params.path: bad" }))
  );
  const io = captureIo();
  assert.equal(await runCommand(argsOf(["do"]), { entries, io }), EXIT.REFUSED);
  assert.equal(
    io.err[0],
    "strata-ctl: params.path: bad; `strata-ctl do --help` shows the options and an example\n",
  );
});

Deno.test("runCommand: --help prints the command's or group's help and exits 0", async () => {
  const io = captureIo();
  assert.equal(
    await runCommand(argsOf(["fs", "get"], { help: true }), { entries: COMMANDS, io }),
    EXIT.OK,
  );
  assert.match(io.out[0], /^strata-ctl fs get: /);
  const group = captureIo();
  assert.equal(
    await runCommand(argsOf(["svc"], { help: true }), { entries: COMMANDS, io: group }),
    EXIT.OK,
  );
  assert.match(group.out[0], /^strata-ctl svc: /);
});

Deno.test("runCommand: a group without a command is a usage error listing its commands", async () => {
  const io = captureIo();
  assert.equal(await runCommand(argsOf(["svc"]), { entries: COMMANDS, io }), EXIT.USAGE);
  assert.match(
    io.err[0],
    /^strata-ctl: svc needs a command: list, status, start, stop, restart; e\.g\./,
  );
});

Deno.test("runCommand: usage errors exit 2; with --json they print {name: USAGE} too", async () => {
  const io = captureIo();
  assert.equal(
    await runCommand(argsOf(["stauts"], { json: true }), { entries: COMMANDS, io }),
    EXIT.USAGE,
  );
  assert.deepEqual(JSON.parse(io.out.join("")), {
    name: "USAGE",
    message: "unknown command stauts",
    hint: "did you mean status?",
  });
  assert.equal(io.err[0], "strata-ctl: unknown command stauts; did you mean status?\n");
  const thrown = captureIo();
  const entries = tableWith(() => Promise.reject(usage("nope", "try this")));
  assert.equal(await runCommand(argsOf(["do"]), { entries, io: thrown }), EXIT.USAGE);
  assert.equal(thrown.err[0], "strata-ctl: nope; try this\n");
});

Deno.test("runCommand: a node that is not running is exit 2 with what to start", async () => {
  const io = captureIo();
  assert.equal(
    await runCommand(argsOf(["status"], { json: true }), { entries: COMMANDS, io }),
    EXIT.USAGE,
  );
  const body = JSON.parse(io.out.join(""));
  assert.equal(body.name, "UNAVAILABLE");
  assert.equal(body.code, 6);
  assert.match(io.err[0], /the supervisor is not running .*deno task start/);
});
