/**
 * Runs scripts/smoke.sh against a real supervisor in a temp runtime dir.
 */

import assert from "node:assert/strict";
import { REPO_ROOT, startNode } from "../helpers.ts";

Deno.test("smoke.sh passes against a real supervisor", async () => {
  const node = await startNode();
  try {
    const out = await new Deno.Command("bash", {
      args: [`${REPO_ROOT}/scripts/smoke.sh`],
      env: {
        STRATA_RUNTIME_DIR: node.layout.runtimeDir,
        STRATA_STATE_DIR: node.layout.stateDir,
        SMOKE_DIR: `${node.exportRoot}/smoke`,
        NO_COLOR: "1",
      },
      cwd: REPO_ROOT,
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.success, `smoke.sh failed:\n${text}\n--- node ---\n${node.output()}`);
    assert(text.includes("smoke: all steps passed"), text);
  } finally {
    await node.stop();
  }
});
