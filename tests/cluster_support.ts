/**
 * What the cluster integration tests share: strata-ctl run as the launcher
 * runs it for `cluster ...`, one fs call
 * on a node, and a started cluster (etcd, the operator's folder, nodes joined).
 * @module
 */

import assert from "node:assert/strict";
import { programCommand } from "../src/runtime/command.ts";
import type { Layout } from "../src/runtime/config.ts";
import { type Node, REPO_ROOT, startNode, type TempLayout, tempLayout } from "./helpers.ts";
import { startEtcd, type TestEtcd } from "./etcd.ts";
import { publicPaserk, type SigningKey } from "../src/token/keys.ts";
import { signEndorsement } from "../src/token/endorsement.ts";

/** The longest one strata-ctl run of a cluster test may take before it is killed (ms). */
const CTL_LIMIT_MS = 30_000;

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
  const child = new Deno.Command(cmd, { args: argv, cwd: dir, stdout: "piped", stderr: "piped" })
    .spawn();
  // A strata-ctl that hangs (on an etcd that does not answer) fails the test, not hangs it.
  const timer = setTimeout(() => child.kill("SIGKILL"), CTL_LIMIT_MS);
  try {
    const out = await child.output();
    const text = new TextDecoder();
    return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
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

/** A cluster started for a test: its etcd, the operator's folder, and its nodes. */
export interface TestCluster {
  etcd: TestEtcd;
  /** The operator's cluster folder (root key, CA). */
  op: string;
  /** The nodes, in the order of their ids; a test may replace one it restarts. */
  nodes: Node[];
  /** Each node's temp layout, to restart it with. */
  temps: TempLayout[];
  /** Stops every node, removes their dirs and the folder, and stops etcd. */
  stop(): Promise<void>;
}

/**
 * Starts etcd (one member unless told), makes the cluster's root with
 * `cluster init`, starts a node for each id and endorses it with
 * `cluster join`. On a failure it cleans up what it started.
 */
export async function startCluster(
  name: string,
  ids: string[],
  options: { members?: 1 | 3 } = {},
): Promise<TestCluster> {
  const etcd = await startEtcd(options.members ?? 1);
  const op = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-op-" });
  const started: TestCluster = {
    etcd,
    op,
    nodes: [],
    temps: [],
    async stop() {
      for (const n of started.nodes) await n.stop().catch((e) => console.error(e));
      for (const t of started.temps) await t.cleanup();
      await etcd.stop();
      await Deno.remove(op, { recursive: true }).catch(() => {});
    },
  };
  try {
    const cluster = { name, etcd: etcd.endpoints, root: `${op}/root.pub` };
    for (const id of ids) {
      const t = await tempLayout();
      started.temps.push(t);
      t.layout = { ...t.layout, nodeId: id, cluster };
      if (started.temps.length === 1) await ctl(t.layout, op, ["cluster", "init", "--dir", op]);
      started.nodes.push(await startNode({ temp: t }));
    }
    for (const n of started.nodes) {
      await ctl(n.layout, op, ["cluster", "join", n.layout.nodeId, "--dir", op]);
    }
    return started;
  } catch (err) {
    await started.stop();
    throw err;
  }
}

/**
 * The endorsement `root` signs for `node` of `cluster`, naming `keys` (what
 * the operator's `cluster join` puts in etcd).
 */
export function endorsementOf(
  root: SigningKey,
  cluster: string,
  node: string,
  keys: SigningKey[],
  opts: { expMs: number; seq?: number },
): string {
  return signEndorsement(root, {
    cluster,
    node,
    keys: keys.map((k) => ({ kid: k.kid, public: publicPaserk(k.publicKey) })),
    ...opts,
  });
}
