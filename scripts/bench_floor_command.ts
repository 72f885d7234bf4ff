/**
 * The command that starts the bench's floor (scripts/bench_floor.ts) in
 * place of one of the four programs. Kept apart from the floor itself, which
 * imports nothing of Strata.
 * @module
 */

import {
  type ProgramCommand,
  REPO_ROOT,
  SERVICE_ENV,
  serviceV8Flags,
} from "../src/runtime/command.ts";
import type { Layout } from "../src/runtime/config.ts";
import { permissionFlags } from "../src/runtime/permissions.ts";

/** The programs the floor stands in for. */
export type FloorProgram = "supervisor" | "registry" | "identity" | "fs";

/**
 * The command that runs the floor as `program` on `layout` (its first fs
 * root exported), as that service runs: its permission flags, V8 flags and
 * environment.
 */
export function floorCommand(
  program: FloorProgram,
  layout: Layout,
  deno: string = Deno.execPath(),
): ProgramCommand {
  return {
    cmd: deno,
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      `--config=${REPO_ROOT}/deno.json`,
      `--v8-flags=${serviceV8Flags(program)}`,
      ...permissionFlags(program, layout),
      `${REPO_ROOT}/scripts/bench_floor.ts`,
      program,
      layout.runtimeDir,
      layout.stateDir,
      layout.fsRoots[0],
    ],
    env: { ...SERVICE_ENV },
  };
}
