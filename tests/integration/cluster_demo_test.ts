/**
 * Runs scripts/cluster_demo.sh for real (three etcd members, three nodes on loopback) and checks
 * what it prints: A's read of B's 100 MiB file byte-identical (the same sha256 on both sides),
 * the token revoked on C refused on A and B, the figures; and that it left no process and no
 * temp dir behind.
 */

import assert from "node:assert/strict";
import { alive, REPO_ROOT } from "../helpers.ts";
import { ETCD_BIN, haveEtcd } from "../etcd.ts";

/** The prefix of the demo's temp dir (`mktemp -d /tmp/strata-cluster-demo-XXXXXX`). */
const PREFIX = "strata-cluster-demo-";

/** The demo's temp dirs now (the script makes one under /tmp and removes it on exit). */
function demoDirs(): Set<string> {
  return new Set(
    [...Deno.readDirSync("/tmp")].map((e) => e.name).filter((n) => n.startsWith(PREFIX)),
  );
}

Deno.test({
  name: haveEtcd()
    ? "cluster_demo.sh: issue on A, use on B and C, 100 MiB read across nodes, revoke on C"
    : `cluster_demo.sh: skipped: etcd is not installed at ${ETCD_BIN} (apt-get install etcd-server)`,
  ignore: !haveEtcd(),
  fn: async () => {
    const before = demoDirs();
    const t0 = performance.now();
    const child = new Deno.Command("bash", {
      args: [`${REPO_ROOT}/scripts/cluster_demo.sh`],
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    console.log(
      `  cluster_demo.sh ran in ${((performance.now() - t0) / 1000).toFixed(1)} s; it printed:\n` +
        text.split("\n").filter((l) => /^ {2}\S/.test(l)).join("\n"),
    );
    assert.ok(out.success, `cluster_demo.sh failed:\n${text}`);
    const sum = (side: string) => new RegExp(`sha256 on ${side}: ([0-9a-f]{64})`).exec(text)?.[1];
    assert.ok(sum("B"), text);
    assert.equal(sum("A"), sum("B"), "the same sha256 on A and on B");
    assert.match(text, /byte-identical/);
    for (const n of ["b", "c"]) assert.match(text, new RegExp(`ok on ${n}\\n`));
    for (const n of ["a", "b"]) {
      assert.match(
        text,
        new RegExp(`refused on ${n}: token: capability [0-9a-f]{32} has been revoked`),
      );
    }
    assert.match(text, /100 MiB read on A from B over TLS: [\d.]+ s, [\d.]+ MB\/s/);
    assert.match(
      text,
      /revocation propagation, after C's fs refused: A [-+][\d.]+ ms, B [-+][\d.]+ ms/,
    );
    assert.match(text, /cluster_demo: byte-identical; refused on A and B\n/);
    // Cleaned up: its temp dir is gone, and so is every process it started (the pids it printed).
    const left = [...demoDirs()].filter((d) => !before.has(d));
    assert.deepEqual(left, [], "the demo's temp dir is removed");
    const pids = /^pids: (.*)$/m.exec(text)?.[1].split(" ").map(Number) ?? [];
    assert.ok(pids.length >= 7, `the demo names the processes it started: ${pids}`);
    assert.deepEqual(pids.filter(alive), [], "every process the demo started is gone");
  },
});
