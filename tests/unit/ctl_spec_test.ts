/**
 * Unit tests for src/ctl/spec.ts: command declarations and their usage lines.
 */

import assert from "node:assert/strict";
import {
  type Command,
  commandPath,
  GLOBAL_OPTIONS,
  type Group,
  isGroup,
  usageLine,
} from "../../src/ctl/spec.ts";

const GET: Command = {
  name: "get",
  summary: "download a file",
  args: [{ name: "PATH" }, { name: "DEST", optional: true }],
  options: [{ name: "force", short: "f", summary: "replace DEST" }],
  examples: ["strata-ctl fs get /srv/a"],
  run: () => Promise.resolve({}),
};
const FS: Group = { name: "fs", summary: "files", commands: [GET] };

Deno.test("isGroup: groups have commands, commands do not", () => {
  assert.equal(isGroup(FS), true);
  assert.equal(isGroup(GET), false);
});

Deno.test("commandPath: the words that name a command", () => {
  assert.deepEqual(commandPath(GET, FS), ["fs", "get"]);
  assert.deepEqual(commandPath(GET), ["get"]);
});

Deno.test("usageLine: arguments, optional ones in brackets, then options", () => {
  assert.equal(usageLine(GET, FS), "strata-ctl fs get PATH [DEST] [--force]");
  const issue: Command = {
    ...GET,
    name: "issue",
    args: [],
    options: [
      { name: "service", value: "NAME", required: true, summary: "s" },
      { name: "ttl", value: "DURATION", summary: "t" },
    ],
  };
  assert.equal(usageLine(issue), "strata-ctl issue --service NAME [--ttl DURATION]");
  const help: Command = {
    ...GET,
    name: "help",
    args: [{ name: "WORD", optional: true, variadic: true }],
    options: [],
  };
  assert.equal(usageLine(help), "strata-ctl help [WORD...]");
});

Deno.test("GLOBAL_OPTIONS: the options parseCtlArgs takes, each explained", () => {
  assert.deepEqual(
    GLOBAL_OPTIONS.map((o) => o.name),
    [
      "token",
      "json",
      "timeout",
      "node",
      "runtime-dir",
      "state-dir",
      "tls-ca",
      "tls-cert",
      "tls-key",
      "help",
    ],
  );
  for (const o of GLOBAL_OPTIONS) assert.ok(o.summary.length > 5, o.name);
});
