/**
 * The operator's scripts at their command line, run as the operator runs
 * them (`deno task …`): --help, a bad option or setting is one line and an
 * exit status (no stack trace), and `deno task unit --out` writes where it
 * is told.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../../src/runtime/command.ts";

/** Runs `deno task -q <args>` in the repo; its status and output. */
async function task(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", ...args],
    cwd: REPO_ROOT,
    stdin: "null",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

for (const name of ["install", "compile", "unit"]) {
  Deno.test(`deno task ${name}: --help prints its usage; an unknown option is one line, exit 2`, async () => {
    const help = await task(name, "--help");
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`^deno task ${name} \\[--`));
    const bad = await task(name, "--no-such-option");
    assert.equal(bad.code, 2);
    assert.equal(bad.stdout, "");
    assert.equal(
      bad.stderr,
      `${name}: Unknown option '--no-such-option'\nusage: deno task ${name} --help\n`,
    );
  });
}

Deno.test("deno task unit: a refused setting is one line; --out writes the unit where it is told", async () => {
  const bad = await task("unit", "--runtime-dir=/run/strata/");
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr,
    /^unit: the runtime dir must be an absolute, normalised path .*"\/run\/strata\/"\n$/,
  );
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-unit-out-" });
  try {
    const ok = await task("unit", "--form=compiled", `--out=${dir}/strata.service`);
    assert.equal(ok.code, 0, ok.stderr);
    const unit = await Deno.readTextFile(`${dir}/strata.service`);
    assert.match(unit, /^ExecStart=\/opt\/strata\/bin\/supervisor$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
