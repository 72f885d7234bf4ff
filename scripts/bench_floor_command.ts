/**
 * The command that starts the bench's floor (scripts/bench_floor.ts) in
 * place of one of the four programs. Kept apart from the floor itself, which
 * imports nothing of Strata.
 * @module
 */

import {
  BUNDLE_RUN_FLAGS,
  type ProgramCommand,
  REPO_ROOT,
  SERVICE_ENV,
  serviceV8Flags,
} from "../src/runtime/command.ts";
import type { Layout } from "../src/runtime/config.ts";
import { permissionFlags } from "../src/runtime/permissions.ts";
import { allRights } from "../src/policy/rights.ts";

/** The programs the floor stands in for. */
export type FloorProgram = "supervisor" | "registry" | "identity" | "fs";

/**
 * The command that runs the floor as `program` on `layout` (its first fs
 * root exported), as that service runs bundled (one file, as the bench runs
 * this checkout's): its permission flags, V8 flags, `deno run` flags and
 * environment. With `records`, it also keeps the protocol's records (audit
 * lines, the issued record; see scripts/bench_floor.ts).
 */
export function floorCommand(
  program: FloorProgram,
  layout: Layout,
  deno: string = Deno.execPath(),
  options: { records?: boolean } = {},
): ProgramCommand {
  return {
    cmd: deno,
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      ...BUNDLE_RUN_FLAGS,
      `--v8-flags=${serviceV8Flags(program, true)}`,
      ...permissionFlags(program, layout),
      `${REPO_ROOT}/scripts/bench_floor.ts`,
      program,
      layout.runtimeDir,
      layout.stateDir,
      layout.fsRoots[0],
      ...(options.records ? ["records"] : []),
    ],
    env: { ...SERVICE_ENV },
  };
}

/**
 * Writes the claims of the floor's operator token into `stateDir`, shaped as
 * a node's operator token (every right, a year's lifetime), so a request to
 * the floor carries the caller's token in as many bytes as one to a node.
 * The floor's identity signs it at start, into `operator.token` there.
 */
export async function writeFloorOperatorClaims(stateDir: string, now = Date.now()): Promise<void> {
  const at = new Date(now).toISOString().replace(/\.\d{3}Z$/, "Z");
  const claims = {
    cap_id: crypto.randomUUID().replaceAll("-", ""),
    iss: "identity@floor",
    aud: "strata",
    iat: at,
    nbf: at,
    exp: new Date(now + 365 * 24 * 3600_000).toISOString().replace(/\.\d{3}Z$/, "Z"),
    sub: "operator",
    service: "*",
    actions: [],
    rights: allRights(),
    constraints: {},
  };
  await Deno.writeTextFile(`${stateDir}/operator.claims`, JSON.stringify(claims), { mode: 0o600 });
}
