/**
 * `deno task test`: format check, lint, type check, the layer check
 * (scripts/layers.ts), the doc lint of the public API (`deno doc --lint
 * src/mod.ts`), then every unit, integration and security test, ending with a
 * plain `N passed, N failed` line (fmt, lint, check, layers and doc lint count
 * as one test each).
 *
 * Usage: deno task test [-- extra args for deno test, e.g. --filter smoke]
 * @module
 */

const PINNED = "2.9.6";
const deno = Deno.execPath();
const decoder = new TextDecoder();

let passed = 0;
let failed = 0;
let skipped = 0;

async function run(args: string[], capture = false): Promise<{ ok: boolean; out: string }> {
  const child = new Deno.Command(deno, {
    args,
    stdout: capture ? "piped" : "inherit",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  }).spawn();
  let out = "";
  if (capture) {
    for await (const chunk of child.stdout) {
      const text = decoder.decode(chunk, { stream: true });
      out += text;
      await Deno.stdout.write(chunk);
    }
  }
  const status = await child.status;
  return { ok: status.success, out };
}

async function step(name: string, args: string[]): Promise<void> {
  console.log(`== ${name}: deno ${args.join(" ")}`);
  const { ok } = await run(args);
  if (ok) passed++;
  else {
    failed++;
    console.log(`== ${name}: FAILED`);
  }
}

if (Deno.version.deno !== PINNED) {
  console.log(`note: Strata is tested with Deno ${PINNED}; this is ${Deno.version.deno}`);
}

await step("fmt", ["fmt", "--check"]);
await step("lint", ["lint"]);
await step("check", ["check", "src", "scripts", "tests"]);
// Imports only point down a layer; the script prints the offending imports.
await step("layers", [
  "run",
  "--no-prompt",
  "--allow-read",
  "--allow-write=/tmp",
  `--allow-run=${deno}`,
  "scripts/layers.ts",
]);
// Every symbol src/mod.ts exports, and every type those reach, has its JSDoc.
await step("doc lint", ["doc", "--lint", "src/mod.ts"]);

const extra = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
console.log("== test: deno test");
const result = await run([
  "test",
  "--no-prompt",
  // The test harness itself starts real processes in temp dirs and talks to
  // their sockets; the programs under test still get only their own flags.
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-run",
  "--allow-env",
  ...extra,
  "tests/",
], true);
const summary =
  /(\d+) passed(?: \(\d+ steps?\))? \| (\d+) failed(?: \(\d+ steps?\))?(?: \| (\d+) ignored)?/
    .exec(result.out);
if (summary) {
  passed += Number(summary[1]);
  failed += Number(summary[2]);
  skipped += Number(summary[3] ?? 0);
} else {
  console.log("== test: no summary line from deno test (did it crash?)");
  failed++;
}
if (!result.ok && summary && Number(summary[2]) === 0) failed++; // failed before or after the tests ran
if (skipped > 0) console.log(`${skipped} skipped`);
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);
