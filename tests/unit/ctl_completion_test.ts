/**
 * Unit tests for src/ctl/completion.ts: the bash, zsh and fish scripts. The
 * bash script is also loaded into a real bash and asked for completions.
 */

import assert from "node:assert/strict";
import { COMMANDS } from "../../src/ctl/commands.ts";
import { completionScript, SHELLS } from "../../src/ctl/completion.ts";
import { METHODS } from "../../src/ctl/methods.ts";
import { isGroup } from "../../src/ctl/spec.ts";

const WORDS = COMMANDS.flatMap((
  e,
) => [e.name, ...(isGroup(e) ? e.commands.map((c) => c.name) : [])]);

Deno.test("completionScript: every shell names every command, subcommand, method and option", () => {
  for (const shell of SHELLS) {
    const text = completionScript(shell, { entries: COMMANDS, methods: METHODS });
    for (const w of WORDS) assert.ok(text.includes(w), `${shell}: ${w}`);
    for (const m of METHODS) assert.ok(text.includes(m.method), `${shell}: ${m.method}`);
    for (const opt of ["json", "token", "timeout", "force", "service", "rights", "ttl", "drain"]) {
      assert.ok(text.includes(shell === "fish" ? `-l ${opt}` : `--${opt}`), `${shell}: ${opt}`);
    }
    assert.ok(
      text.includes("registry identity fs") || text.includes("'registry' 'identity' 'fs'"),
      shell,
    );
  }
});

Deno.test("completionScript: each script registers itself for strata-ctl", () => {
  assert.match(
    completionScript("bash", { entries: COMMANDS, methods: METHODS }),
    /\ncomplete -F _strata_ctl strata-ctl\n$/,
  );
  const zsh = completionScript("zsh", { entries: COMMANDS, methods: METHODS });
  assert.match(zsh, /^#compdef strata-ctl\n/);
  assert.match(zsh, /compdef _strata_ctl strata-ctl/);
  const fish = completionScript("fish", { entries: COMMANDS, methods: METHODS });
  assert.match(fish, /\ncomplete -c strata-ctl -f\n/);
  assert.match(
    fish,
    /complete -c strata-ctl -n '__strata_ctl_arg 0 svc start' -a 'registry identity fs'/,
  );
  assert.match(fish, /complete -c strata-ctl -n '__strata_ctl_arg 1 fs get' -F/);
});

Deno.test("completionScript: single quotes in summaries are escaped for the shell", () => {
  const fish = completionScript("fish", { entries: COMMANDS, methods: METHODS });
  // "write a file's bytes to stdout" must not end the quoted string
  assert.ok(fish.includes(`'write a file'\\''s bytes to stdout'`));
});

/** Runs the bash completion for `words` (the last one being completed) and returns the offers. */
async function bashComplete(script: string, words: string[]): Promise<string[]> {
  const quoted = words.map((w) => `'${w}'`).join(" ");
  const program = [
    script,
    `COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; COMPREPLY=()`,
    "_strata_ctl",
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join("\n");
  const out = await new Deno.Command("bash", { args: ["--norc", "-c", program], cwd: "/" })
    .output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== "");
}

Deno.test("bash: the script parses, and offers commands, subcommands, services and options", async () => {
  const script = completionScript("bash", { entries: COMMANDS, methods: METHODS });
  const check = await new Deno.Command("bash", { args: ["-n", "-c", script] }).output();
  assert.ok(check.success, new TextDecoder().decode(check.stderr));
  assert.deepEqual(await bashComplete(script, ["strata-ctl", "sv"]), ["svc"]);
  assert.deepEqual(await bashComplete(script, ["strata-ctl", "svc", ""]), [
    "list",
    "status",
    "start",
    "stop",
    "restart",
  ]);
  assert.deepEqual(await bashComplete(script, ["strata-ctl", "svc", "restart", ""]), [
    "registry",
    "identity",
    "fs",
  ]);
  // global options and their values are skipped when finding the command
  assert.deepEqual(
    await bashComplete(script, ["strata-ctl", "-token", "T", "--json", "svc", "stop", "f"]),
    [
      "fs",
    ],
  );
  assert.deepEqual(await bashComplete(script, ["strata-ctl", "token", "issue", "--service", ""]), [
    "supervisor",
    "registry",
    "identity",
    "fs",
  ]);
  assert.deepEqual(await bashComplete(script, ["strata-ctl", "fs", "get", "--f"]), ["--force"]);
  assert.ok(
    (await bashComplete(script, ["strata-ctl", "svc", "stop", "fs", "--"])).includes("--drain"),
  );
  assert.deepEqual(await bashComplete(script, ["strata-ctl", "completion", ""]), [
    "bash",
    "zsh",
    "fish",
  ]);
  assert.deepEqual(await bashComplete(script, ["strata-ctl", "identity.is"]), ["identity.issue"]);
  // nothing is offered where nothing fits
  assert.deepEqual(await bashComplete(script, ["strata-ctl", "status", ""]), []);
  assert.deepEqual(await bashComplete(script, ["strata-ctl", "token", "issue", "--ttl", ""]), []);
});
