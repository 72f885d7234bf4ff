/**
 * Unit tests for strata-ctl's download grant in src/runtime/permissions.ts
 * and src/runtime/command.ts: `fs get` may read and write the folder it is
 * given (a rename needs both) and nothing more; a compiled strata-ctl gets
 * the folder it runs in (".") when asked for it, as `deno task compile` does.
 */

import assert from "node:assert/strict";
import { compileCommand } from "../../src/runtime/command.ts";
import { type Layout, socketPath, stateFiles } from "../../src/runtime/config.ts";
import { permissionFlags, PROGRAMS } from "../../src/runtime/permissions.ts";

const LAYOUT: Layout = {
  runtimeDir: "/run/st",
  stateDir: "/var/lib/st",
  nodeId: "n1",
  fsRoots: ["/srv/data"],
};

/** The value list of `flag` in `flags`. */
function listOf(flags: string[], flag: string): string[] {
  const f = flags.find((x) => x.startsWith(`${flag}=`));
  return f ? f.slice(flag.length + 1).split(",") : [];
}

const SOCKETS = (["supervisor", "registry", "identity", "fs"] as const).map((s) =>
  socketPath(LAYOUT, s)
);

Deno.test("ctl with a download folder: read and write on it, and otherwise what it had", () => {
  // given the folder the operator ran strata-ctl in
  const flags = permissionFlags("ctl", LAYOUT, { downloads: ["/home/me/dl"] });
  // then it may read the operator token, the sockets and that folder; write the sockets and that folder
  assert.deepEqual(
    listOf(flags, "--allow-read").sort(),
    [
      ...SOCKETS,
      stateFiles(LAYOUT).operatorToken,
      "/home/me/dl",
    ].sort(),
  );
  assert.deepEqual(listOf(flags, "--allow-write").sort(), [...SOCKETS, "/home/me/dl"].sort());
  assert.deepEqual(listOf(flags, "--allow-env"), ["STRATA_TOKEN", "NO_COLOR"]);
  assert.ok(!flags.some((f) => f.startsWith("--allow-run")));
});

Deno.test("ctl without a download folder: no folder to read or write at all", () => {
  const flags = permissionFlags("ctl", LAYOUT);
  assert.deepEqual(listOf(flags, "--allow-write").sort(), [...SOCKETS].sort());
  assert.deepEqual(
    listOf(flags, "--allow-read").sort(),
    [...SOCKETS, stateFiles(LAYOUT).operatorToken].sort(),
  );
});

Deno.test("compileCommand: a download folder goes to strata-ctl only", () => {
  for (const program of PROGRAMS) {
    // given the download folder deno task compile passes: ".", where the binary runs
    const { args } = compileCommand(program, LAYOUT, {
      deno: "/usr/bin/deno",
      outDir: "/out",
      binDir: "/opt/strata/bin",
      downloads: ["."],
    });
    const write = listOf(args, "--allow-write");
    const read = listOf(args, "--allow-read");
    assert.equal(write.includes("."), program === "ctl", program);
    assert.equal(read.includes("."), program === "ctl", program);
  }
});

Deno.test("deno task compile gives strata-ctl the folder it runs in, and no one else", async () => {
  // when the compile script prints its command lines
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-env", "scripts/compile.ts", "--print"],
    cwd: new URL("../../", import.meta.url).pathname,
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  // then only strata-ctl's has "." in its read and write grants
  for (const line of lines) {
    const args = line.split(" ");
    const ctl = line.includes("/strata-ctl ");
    assert.equal(listOf(args, "--allow-write").includes("."), ctl, line);
    assert.equal(listOf(args, "--allow-read").includes("."), ctl, line);
  }
  assert.equal(lines.filter((l) => l.includes("/strata-ctl ")).length, 1);
});
