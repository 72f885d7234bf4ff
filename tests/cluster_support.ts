/**
 * What the cluster integration tests share: strata-ctl run as the launcher
 * runs it for `cluster ...`, the etcd3 package's proto folder, and one fs
 * call on a node.
 * @module
 */

import assert from "node:assert/strict";
import { programCommand } from "../src/runtime/command.ts";
import type { Layout } from "../src/runtime/config.ts";
import { type Node, REPO_ROOT } from "./helpers.ts";

/** The etcd3 package's proto folder in this Deno's npm cache (what the launcher finds). */
export function etcdProto(): string {
  const out = new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).outputSync();
  const cache = JSON.parse(new TextDecoder().decode(out.stdout)).npmCache as string;
  return `${cache}/registry.npmjs.org/etcd3/1.1.2/proto`;
}

/** Runs strata-ctl as the launcher would for `cluster ...`: its exit code, stdout and stderr. */
export async function ctlRaw(
  layout: Layout,
  dir: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { cmd, args: argv } = programCommand("ctl", layout, {
    kind: "dev",
    deno: Deno.execPath(),
    root: REPO_ROOT,
  }, { clusterDir: dir, extra: ["--json", ...args] });
  const out = await new Deno.Command(cmd, { args: argv, cwd: dir }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** Runs strata-ctl as the launcher would for `cluster ...`, with `dir` as its cluster folder. */
export async function ctl(layout: Layout, dir: string, args: string[]): Promise<unknown> {
  const out = await ctlRaw(layout, dir, args);
  assert.equal(out.code, 0, `strata-ctl ${args.join(" ")}: ${out.stderr}`);
  return JSON.parse(out.stdout);
}

/** fs.list of the node's export root with `token`, over its socket. */
export async function listOn(node: Node, token: string) {
  return await node.request("fs", "fs.list", { path: node.exportRoot }, token);
}
