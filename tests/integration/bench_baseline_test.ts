/**
 * `deno task bench --baseline REF` with a ref that names nothing: it fails
 * at once, says why, and leaves no extracted copy in /tmp.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../../src/runtime/command.ts";

const baselineDirs = () =>
  [...Deno.readDirSync("/tmp")].filter((e) => e.name.startsWith("strata-base-")).map((e) => e.name);

Deno.test("bench: a baseline ref that names nothing fails and leaves no temp dir", async () => {
  const before = new Set(baselineDirs());
  const out = await new Deno.Command(Deno.execPath(), {
    cwd: REPO_ROOT,
    args: [
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
      "--baseline",
      "no-such-ref-of-strata",
      "--only=start",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.success, false);
  assert.match(new TextDecoder().decode(out.stderr), /git archive no-such-ref-of-strata failed/);
  assert.deepEqual(baselineDirs().filter((d) => !before.has(d)), []);
});
