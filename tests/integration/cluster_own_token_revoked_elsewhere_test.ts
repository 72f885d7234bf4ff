/**
 * A revocation of A's token made on C (which identity C may do, docs/cluster.md
 * "Identity and other nodes' tokens") holds on A after A restarts with etcd out
 * of reach: A honours its own identity's tokens without etcd, so A's identity
 * records such revocations in its own log. (Before review14's fix they lived
 * only in C's log and in etcd, and the restarted A served the revoked token.)
 */

import assert from "node:assert/strict";
import { issue, startNode, waitFor } from "../helpers.ts";
import { listOn, startCluster } from "../cluster_support.ts";
import { stateFiles } from "../../src/runtime/config.ts";

const CLUSTER = "ownrev";

Deno.test("cluster: A's token revoked on C stays refused on A after A restarts with etcd out of reach", async () => {
  const started = await startCluster(CLUSTER, ["a", "c"]);
  const { etcd, nodes, temps } = started;
  try {
    const [a, c] = nodes;
    const tok = await issue(a, { service: "fs", actions: ["list"] });
    const keep = await issue(a, { service: "fs", actions: ["list"] });
    await waitFor("c to honour A's token", async () => (await listOn(c, tok.token)).ok, 10_000);

    // C's operator revokes A's token (passing the token): ok once etcd has it.
    const rev = await c.request(
      "identity",
      "identity.revoke",
      { token: tok.token },
      c.operatorToken(),
    );
    assert.ok(rev.ok, JSON.stringify(rev));
    await waitFor("a to refuse the token C revoked", async () => {
      const r = await listOn(a, tok.token);
      return !r.ok && r.error.details?.reason === "revoked";
    }, 5_000);

    // A's identity records C's revocation of its token in its own log (durably).
    const logPath = stateFiles(a.layout).revocationLog;
    await waitFor("a's identity to record the revocation", async () => {
      const text = await Deno.readTextFile(logPath).catch(() => "");
      return text.includes(tok.cap_id);
    }, 5_000);

    // etcd goes away (every member), then A restarts (a reboot, an upgrade).
    etcd.members[0].kill("SIGKILL");
    await etcd.members[0].status;
    await nodes[0].stop();
    nodes[0] = await startNode({ temp: temps[0] });
    await waitFor(
      "restarted a to serve its own token",
      async () => (await listOn(nodes[0], keep.token)).ok,
      15_000,
    );
    const after = await listOn(nodes[0], tok.token);
    assert.ok(
      !after.ok,
      `DEFECT: A serves its own token that C revoked, after a restart with etcd out of reach: ${
        JSON.stringify(after)
      }`,
    );
  } finally {
    await started.stop();
  }
});
