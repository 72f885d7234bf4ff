/**
 * KNOWN DEFECT (review14, fails on main 280a3b5): a writer to etcd makes a
 * revocation disappear. A's identity revokes A's token; the signed batch is
 * in etcd and B refuses the token. The writer deletes the batch from etcd
 * (no signature needed to delete) and B restarts: B reads the revocations
 * from etcd alone, A's identity compares its log with etcd only at its own
 * start, so B honours the revoked token again. Issue 14: "anyone who can
 * write to etcd must not be able to make ... a revocation disappear".
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import { revocationsPrefix } from "../../src/sources/etcd_revocations.ts";
import { issue, type Node, startNode, type TempLayout, tempLayout, waitFor } from "../helpers.ts";
import { startEtcd } from "../etcd.ts";
import { ctl, etcdProto, listOn } from "../cluster_support.ts";

const CLUSTER = "revdel";

Deno.test("KNOWN DEFECT cluster: a revocation deleted from etcd by a writer is honoured again on a restarted node", async () => {
  const etcd = await startEtcd(1);
  const op = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-op-" });
  const nodes: Node[] = [];
  const temps: TempLayout[] = [];
  const attacker = new Etcd3({ hosts: etcd.endpoints });
  try {
    const cluster = {
      name: CLUSTER,
      etcd: etcd.endpoints,
      root: `${op}/root.pub`,
      proto: etcdProto(),
    };
    for (const id of ["a", "b"]) {
      const t = await tempLayout();
      temps.push(t);
      t.layout = { ...t.layout, nodeId: id, cluster };
      if (id === "a") await ctl(t.layout, op, ["cluster", "init", "--dir", op]);
      nodes.push(await startNode({ temp: t }));
    }
    for (const [i, n] of nodes.entries()) {
      await ctl(n.layout, op, ["cluster", "join", ["a", "b"][i], "--dir", op]);
    }
    const [a] = nodes;
    const tok = await issue(a, { service: "fs", actions: ["list"] });
    const keep = await issue(a, { service: "fs", actions: ["list"] });
    await waitFor(
      "b to honour A's token",
      async () => (await listOn(nodes[1], tok.token)).ok,
      10_000,
    );

    const rev = await a.request(
      "identity",
      "identity.revoke",
      { token: tok.token },
      a.operatorToken(),
    );
    assert.ok(rev.ok, JSON.stringify(rev));
    await waitFor(
      "b to refuse the revoked token",
      async () => !(await listOn(nodes[1], tok.token)).ok,
      5_000,
    );

    // The writer to etcd deletes A's revocation batches.
    const gone = await attacker.delete().prefix(`${revocationsPrefix(CLUSTER)}a/`);
    assert.ok(Number(gone.deleted) > 0, "A's revocation was in etcd");

    // B restarts (a reboot, an upgrade): it learns other nodes' revocations from etcd.
    await nodes[1].stop();
    nodes[1] = await startNode({ temp: temps[1] });
    await waitFor(
      "restarted b to honour A's unrevoked token",
      async () => (await listOn(nodes[1], keep.token)).ok,
      15_000,
    );
    // Give A's identity its periodic retry (every second) the chance to write the batch again.
    await new Promise((r) => setTimeout(r, 3000));
    const after = await listOn(nodes[1], tok.token);
    assert.ok(
      !after.ok,
      `DEFECT: B honours A's revoked token after a writer to etcd deleted the revocation: ${
        JSON.stringify(after)
      }`,
    );
  } finally {
    attacker.close();
    for (const n of nodes) await n.stop().catch((e) => console.error(e));
    for (const t of temps) await t.cleanup();
    await etcd.stop();
    await Deno.remove(op, { recursive: true }).catch(() => {});
  }
});
