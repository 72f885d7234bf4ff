/**
 * `deno task bench --baseline REF` with a ref that names nothing: it fails
 * at once, says why, and leaves no extracted copy (nor this checkout's
 * bundles) in /tmp. And a baseline
 * that runs does so with a DENO_DIR of its own, removed with it.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../../src/runtime/command.ts";

/** The bench's temp dirs in /tmp: baselines extracted, and this checkout's services bundled. */
const baselineDirs = () =>
  [...Deno.readDirSync("/tmp")]
    .filter((e) => e.name.startsWith("strata-base-") || e.name.startsWith("strata-bundle-"))
    .map((e) => e.name);

/** `deno run` of scripts/bench.ts with `deno task bench`'s grants, then `options`. */
const benchArgs = (...options: string[]) => [
  "run",
  "--quiet",
  "--no-prompt",
  "--allow-run",
  "--allow-read",
  "--allow-write=/tmp,bench",
  "--allow-net",
  "--allow-env",
  "--allow-sys=uid",
  "scripts/bench.ts",
  ...options,
];

Deno.test("bench: a baseline ref that names nothing fails and leaves no temp dir", async () => {
  const before = new Set(baselineDirs());
  const out = await new Deno.Command(Deno.execPath(), {
    cwd: REPO_ROOT,
    args: benchArgs("--baseline", "no-such-ref-of-strata", "--only=start"),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.success, false);
  assert.match(new TextDecoder().decode(out.stderr), /git archive no-such-ref-of-strata failed/);
  assert.deepEqual(baselineDirs().filter((d) => !before.has(d)), []);
});

Deno.test("bench: a baseline runs with its own DENO_DIR and leaves none of its modules in the user's", async () => {
  // given the user's DENO_DIR, and the baselines' programs transpiled in it so far
  const info = JSON.parse(new TextDecoder().decode(
    (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output()).stdout,
  )) as { typescriptCache: string };
  const transpiledMains = () => {
    try {
      return [...Deno.readDirSync(`${info.typescriptCache}/file/tmp`)]
        .filter((e) => e.name.startsWith("strata-base-"))
        .filter((e) => {
          try {
            return Deno.statSync(
              `${info.typescriptCache}/file/tmp/${e.name}/src/supervisor/main.ts.js`,
            ).isFile;
          } catch {
            return false;
          }
        }).map((e) => e.name);
    } catch {
      return [];
    }
  };
  const before = new Set(transpiledMains());
  const dirsBefore = new Set(baselineDirs());
  // when the bench starts this checkout's HEAD as a baseline beside it and measures its memory
  const out = await new Deno.Command(Deno.execPath(), {
    cwd: REPO_ROOT,
    args: benchArgs(
      "--baseline",
      "HEAD",
      "--only=PSS of all four processes just started",
      "--rounds=1",
      "--seconds=1",
      "--out=/tmp/strata-bench-test-results.json",
    ),
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove("/tmp/strata-bench-test-results.json").catch(() => {});
  const text = new TextDecoder().decode(out.stdout);
  assert(out.success, text + new TextDecoder().decode(out.stderr));
  // then it measured the baseline, whose programs were transpiled elsewhere, and removed its copy
  assert.match(text, /PSS of all four processes just started \| MB \| [0-9.]+ \| [0-9.]+ \|/);
  assert.deepEqual(transpiledMains().filter((d) => !before.has(d)), []);
  assert.deepEqual(baselineDirs().filter((d) => !dirsBefore.has(d)), []);
});
