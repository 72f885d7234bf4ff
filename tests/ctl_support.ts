/**
 * Running the real strata-ctl program (with its real permission flags)
 * against a test node, for the integration tests of its commands: what it
 * printed, how it ended, and the same on a pseudo-terminal.
 * @module
 */

import assert from "node:assert/strict";
import { programCommand } from "../src/runtime/command.ts";
import { type Node, REPO_ROOT } from "./helpers.ts";

/** What one strata-ctl run printed and how it ended. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  bytes: Uint8Array;
}

/** Options for one strata-ctl run. */
export interface CtlOptions {
  /** Folders ctl may write (its download grant). */
  downloads?: string[];
  cwd?: string;
  env?: Record<string, string>;
}

/** The environment ctl runs with: only what Deno needs, NO_COLOR and `extra`. */
export function ctlEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) env[name] = v;
  }
  return { ...env, ...extra };
}

/** The command line of the real ctl program for `node` with `args`. */
export function ctlCommand(node: Node, args: string[], options: CtlOptions = {}) {
  return programCommand("ctl", node.layout, {
    kind: "dev",
    deno: Deno.execPath(),
    root: REPO_ROOT,
  }, { extra: args, downloads: options.downloads });
}

/** Runs strata-ctl to completion. */
export async function ctl(node: Node, args: string[], options: CtlOptions = {}): Promise<Run> {
  const { cmd, args: argv } = ctlCommand(node, args, options);
  const out = await new Deno.Command(cmd, {
    args: argv,
    cwd: options.cwd,
    clearEnv: true,
    env: ctlEnv(options.env),
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
    bytes: out.stdout,
  };
}

/** Runs strata-ctl and expects exit `code`; the message shows what it printed. */
export async function expectExit(
  node: Node,
  args: string[],
  code: number,
  options: CtlOptions = {},
) {
  const r = await ctl(node, args, options);
  assert.equal(
    r.code,
    code,
    `strata-ctl ${
      args.join(" ")
    } exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`,
  );
  return r;
}

/** Runs strata-ctl on a pseudo-terminal (via script(1)); returns what the terminal showed. */
export async function ctlOnTerminal(
  node: Node,
  args: string[],
  options: CtlOptions = {},
): Promise<{ code: number; screen: string }> {
  const { cmd, args: argv } = ctlCommand(node, args, options);
  const line = [cmd, ...argv].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  const env = ctlEnv(options.env);
  if (options.env?.NO_COLOR === undefined) delete env.NO_COLOR;
  const out = await new Deno.Command("script", {
    args: ["-qec", line, "/dev/null"],
    cwd: options.cwd,
    clearEnv: true,
    env: { ...env, SHELL: "/bin/sh", TERM: "xterm" },
    stdin: "null",
  }).output();
  return { code: out.code, screen: new TextDecoder().decode(out.stdout) };
}

/** Whether script(1) is installed, for the terminal tests. */
export function hasScript(): boolean {
  try {
    return new Deno.Command("script", { args: ["--version"] }).outputSync().success;
  } catch {
    return false;
  }
}
