/**
 * Unit tests for src/ctl/commands.ts: the command table, its examples, and
 * the checks each command makes before it calls a service.
 */

import assert from "node:assert/strict";
import { COMMANDS, helpText } from "../../src/ctl/commands.ts";
import { findCommand, loadParser, parseInput } from "../../src/ctl/dispatch.ts";
import { parseCtlArgs } from "../../src/ctl/main.ts";
import { CtlError, EXIT } from "../../src/ctl/errors.ts";
import { PLAIN } from "../../src/ctl/format.ts";
import { METHODS } from "../../src/ctl/methods.ts";
import { Session } from "../../src/ctl/session.ts";
import { type Command, type Context, type Group, isGroup } from "../../src/ctl/spec.ts";

// parseInput parses words with node:util, which strata-ctl loads before it (dispatch.ts).
await loadParser();

type Leaf = [Command, Group | undefined];
const LEAVES: Leaf[] = COMMANDS.flatMap((e): Leaf[] =>
  isGroup(e) ? e.commands.map((c): Leaf => [c, e]) : [[e, undefined]]
);

/** The words of a simple example line after "strata-ctl", quotes removed. */
function wordsOf(example: string): string[] | undefined {
  if (/[|<>]|\$\(/.test(example)) return undefined; // pipes and substitutions: not one command
  const words = example.split(/\s+/).map((w) => w.replace(/^["']|["']$/g, ""));
  return words[0] === "strata-ctl" ? words.slice(1) : undefined;
}

Deno.test("COMMANDS: the commands the issue asks for, in groups", () => {
  const names = LEAVES.map(([c, g]) => (g ? `${g.name} ${c.name}` : c.name));
  for (
    const want of [
      "status",
      "svc list",
      "svc start",
      "svc stop",
      "svc restart",
      "token issue",
      "token revoke",
      "token inspect",
      "fs ls",
      "fs cat",
      "fs get",
      "registry list",
      "registry resolve",
      "completion",
    ]
  ) {
    assert.ok(names.includes(want), want);
  }
  assert.equal(new Set(names).size, names.length);
  // no command name has a dot: a dot means a raw METHOD
  for (const n of names) assert.ok(!n.includes("."), n);
});

Deno.test("COMMANDS: every command has a summary and an example that parses", () => {
  for (const [c, g] of LEAVES) {
    const name = g ? `${g.name} ${c.name}` : c.name;
    assert.ok(c.summary.length > 5, name);
    assert.ok(c.examples.length > 0, name);
    for (const e of c.examples) {
      assert.ok(e.includes(`strata-ctl ${name}`), `${name}: ${e}`);
      const words = wordsOf(e);
      if (!words) continue;
      const found = findCommand(COMMANDS, parseCtlArgs(words).positionals);
      assert.equal(found.command, c, e);
      parseInput(c, found.rest, { group: g }); // throws if the example is not a valid command line
    }
  }
});

Deno.test("helpText: the commands and every raw method", () => {
  const text = helpText();
  assert.match(text, /^strata-ctl: operate a Strata node/);
  assert.match(text, /\n {2}fs get PATH \[DEST\] +download a file/);
  for (const m of METHODS) assert.ok(text.includes(m.method), m.method);
});

/** A context whose session points at a node that is not there. */
function offlineContext(): Context {
  return {
    session: new Session({
      runtimeDir: "/nonexistent/rt",
      stateDir: "/nonexistent/state",
      nodeId: "t",
      fsRoots: [],
    }, { timeoutMs: 200 }),
    style: PLAIN,
    json: false,
    stderrIsTerminal: false,
    writeErr: () => {},
    now: Date.now,
  };
}

/** Runs `words` as a command and expects a usage error matching `message` and `hint`. */
async function assertRefusedLocally(words: string[], message: RegExp, hint?: RegExp) {
  const found = findCommand(COMMANDS, words);
  const input = parseInput(found.command!, found.rest, { group: found.group });
  await assert.rejects(found.command!.run(offlineContext(), input), (e: unknown) => {
    assert.ok(e instanceof CtlError, `${words.join(" ")}: ${e}`);
    assert.equal(e.exit, EXIT.USAGE);
    assert.match(e.message, message);
    if (hint) assert.match(e.hint ?? "", hint);
    return true;
  });
}

Deno.test("svc start|stop|restart: a service name typo is caught before any call", async () => {
  await assertRefusedLocally(
    ["svc", "start", "fss"],
    /there is no service fss/,
    /did you mean fs\?/,
  );
  await assertRefusedLocally(["svc", "restart", "identiy"], /no service identiy/, /identity/);
  await assertRefusedLocally(
    ["svc", "stop", "supervisor"],
    /^the supervisor is not one of the services it runs$/,
    /systemctl stop strata/,
  );
  await assertRefusedLocally(
    ["svc", "stop", "fs", "--drain", "soon"],
    /--drain: cannot read "soon"/,
  );
});

Deno.test("token and fs commands: bad flags are caught before any call", async () => {
  await assertRefusedLocally(["token", "issue", "--service", "fs"], /needs --rights or --actions/);
  await assertRefusedLocally(["token", "revoke", "h1"], /neither a cap_id/);
  await assertRefusedLocally(
    ["fs", "ls", "/srv", "--limit", "0"],
    /--limit: 0 is not a number from 1 to 5000/,
  );
  await assertRefusedLocally(["completion", "bsh"], /no completion for bsh/, /did you mean bash\?/);
});

Deno.test("token inspect: with no token anywhere, says where one can come from", async () => {
  if (Deno.env.get("STRATA_TOKEN") !== undefined) return; // the caller's own token would be used
  await assertRefusedLocally(["token", "inspect"], /no token to inspect/, /STRATA_TOKEN/);
});

Deno.test("completion, help and version work without a node", async () => {
  const ctx = offlineContext();
  const run = async (words: string[]) => {
    const found = findCommand(COMMANDS, words);
    return await found.command!.run(
      ctx,
      parseInput(found.command!, found.rest, { group: found.group }),
    );
  };
  assert.match((await run(["completion", "bash"])).text!, /complete -F _strata_ctl strata-ctl/);
  assert.match((await run(["help"])).text!, /^strata-ctl: operate a Strata node/);
  assert.match((await run(["help", "fs", "get"])).text!, /^strata-ctl fs get: /);
  assert.match((await run(["help", "svc"])).text!, /^strata-ctl svc: /);
  const v = await run(["version"]);
  assert.match(v.text!, /^strata-ctl \d+\.\d+\.\d+\nnode: not running$/);
  assert.deepEqual(Object.keys(v.data as object), ["ctl", "node"]);
  await ctx.session.close();
});
