/**
 * Unit tests for src/ctl/help.ts: the overview, group and command help.
 */

import assert from "node:assert/strict";
import { COMMANDS } from "../../src/ctl/commands.ts";
import { commandHelp, groupHelp, overviewHelp } from "../../src/ctl/help.ts";
import { METHODS } from "../../src/ctl/methods.ts";
import { type Command, type Group, isGroup } from "../../src/ctl/spec.ts";

const GROUPS = COMMANDS.filter(isGroup) as Group[];
type Leaf = [Command, Group | undefined];
const LEAVES: Leaf[] = COMMANDS.flatMap((e): Leaf[] =>
  isGroup(e) ? e.commands.map((c): Leaf => [c, e]) : [[e, undefined]]
);

Deno.test("overviewHelp: every command with its summary, the options, then every raw method", () => {
  const text = overviewHelp(COMMANDS, METHODS);
  for (const [c, g] of LEAVES) {
    const words = g ? `${g.name} ${c.name}` : c.name;
    const line = text.split("\n").find((l) => l.startsWith(`  ${words}`));
    assert.ok(line, `no line for ${words}`);
    assert.ok(line.endsWith(c.summary), words);
  }
  for (const m of METHODS) assert.ok(text.includes(`strata-ctl ${m.method}`), m.method);
  assert.match(text, /strata-ctl \[-token T \| --token T\] METHOD/);
  assert.match(text, /-token T, --token T/);
  assert.match(text, /--json/);
  assert.match(text, /Exit 0 when ok, 1 when refused, 2 on a usage or connection error/);
  assert.ok(text.indexOf("Commands:") < text.indexOf("Methods:"));
});

Deno.test("groupHelp: the group's commands and an example of each", () => {
  for (const g of GROUPS) {
    const text = groupHelp(g);
    assert.match(text, new RegExp(`^strata-ctl ${g.name}: `));
    for (const c of g.commands) {
      assert.ok(text.includes(`  ${c.name}`), `${g.name} ${c.name}`);
      assert.ok(text.includes(c.examples[0]), `${g.name} ${c.name} example`);
    }
  }
});

Deno.test("commandHelp: usage, description, each option and at least one example", () => {
  for (const [c, g] of LEAVES) {
    const text = commandHelp(c, g);
    const words = g ? `${g.name} ${c.name}` : c.name;
    assert.match(text, new RegExp(`^strata-ctl ${words}: `), words);
    assert.ok(text.includes(`Usage:\n  strata-ctl ${words}`), words);
    for (const o of c.options) assert.ok(text.includes(`--${o.name}`), `${words} --${o.name}`);
    assert.match(text, /Examples?:\n {2}\S/, words);
    for (const e of c.examples) assert.ok(text.includes(`  ${e}`), `${words}: ${e}`);
    for (const line of c.description ?? []) assert.ok(text.includes(line), words);
  }
});

Deno.test("commandHelp: fs get shows its -f short form and its examples", () => {
  const fs = GROUPS.find((g) => g.name === "fs")!;
  const text = commandHelp(fs.commands.find((c) => c.name === "get")!, fs);
  assert.match(text, /-f, --force {2,}replace DEST if it exists/);
  assert.match(text, /Examples:\n {2}strata-ctl fs get \/srv\/data\/report\.pdf/);
  assert.match(text, /fs cat PATH > DEST/);
});
