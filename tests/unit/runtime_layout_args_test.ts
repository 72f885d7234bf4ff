/**
 * Unit tests for src/runtime/layout_args.ts' parseLongOptions, with
 * node:util's parseArgs (strict, no positionals) as the oracle.
 */

import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { OptionError, parseLongOptions } from "../../src/runtime/layout_args.ts";

const OPTIONS = {
  "runtime-dir": { type: "string" },
  "node-id": { type: "string" },
  "group-access": { type: "boolean" },
  held: { type: "boolean" },
} as const;

/** What node:util's parseArgs makes of `args`: its values, or its error's code and message. */
function oracle(args: string[]): unknown {
  try {
    const { values } = parseArgs({
      args,
      options: OPTIONS,
      strict: true,
      allowPositionals: false,
    });
    return { values: { ...values } };
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { code: e.code, message: e.message };
  }
}

function ours(args: string[]): unknown {
  try {
    return { values: { ...parseLongOptions(args, OPTIONS) } };
  } catch (err) {
    assert.ok(err instanceof OptionError, String(err));
    return { code: err.code, message: err.message };
  }
}

/** Command lines of 0 to 5 words made of what matters: names, values, dashes, `=`, `--`. */
function generatedArgs(count: number, seed: number): string[][] {
  const words = [
    "--runtime-dir",
    "--runtime-dir=/run/x",
    "--runtime-dir=",
    "--node-id",
    "--node-id=a=b",
    "--group-access",
    "--group-access=true",
    "--held",
    "--held=",
    "--nope",
    "--nope=1",
    "--constructor",
    "--__proto__=x",
    "--",
    "---",
    "--=",
    "--=x",
    "--=x=y",
    "--==",
    "-",
    "-x",
    "-xy",
    "-x=1",
    "",
    "/srv/data",
    "name",
    "-1",
  ];
  let x = seed;
  const next = (n: number) => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % n;
  const out: string[][] = [[]];
  for (let i = 0; i < count; i++) {
    out.push(Array.from({ length: 1 + next(5) }, () => words[next(words.length)]));
  }
  return out;
}

Deno.test("parseLongOptions: what node:util's parseArgs gives, for generated command lines", () => {
  for (const args of generatedArgs(6000, 11)) {
    assert.deepEqual(ours(args), oracle(args), JSON.stringify(args));
  }
});

Deno.test("parseLongOptions: the forms the programs are started with", () => {
  assert.deepEqual(
    { ...parseLongOptions(["--runtime-dir=/run/s", "--node-id", "n1", "--held"], OPTIONS) },
    { "runtime-dir": "/run/s", "node-id": "n1", held: true },
  );
  // The last of an option given twice counts; a value may hold "=" and start with "-" inline.
  assert.deepEqual(
    { ...parseLongOptions(["--node-id=a", "--node-id=-b=c"], OPTIONS) },
    { "node-id": "-b=c" },
  );
  assert.throws(() => parseLongOptions(["--node-id", "--held"], OPTIONS), /ambiguous/);
  assert.throws(() => parseLongOptions(["--toString"], OPTIONS), /Unknown option '--toString'/);
  assert.throws(() => parseLongOptions(["--", "x"], OPTIONS), /Unexpected argument 'x'/);
});
