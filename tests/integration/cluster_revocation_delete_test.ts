/**
 * A writer to etcd cannot make a revocation disappear by deleting it: A's
 * identity revokes A's token, the signed batch is in etcd and B refuses the
 * token; the writer deletes the batch (no signature needed to delete) and B
 * restarts, so B learns A's revocations from etcd alone. A's identity compares
 * its log with etcd every RECONCILE_MS and writes the batch again, so B
 * refuses the token again within about that long. (Before review14's fix
 * identity compared only at its own start, and B honoured the revoked token.)
 */

import assert from "node:assert/strict";
import { EtcdHttp } from "../../src/sources/etcd_http.ts";
import { revocationsPrefix } from "../../src/sources/etcd_revocations.ts";
import { RECONCILE_MS } from "../../src/identity/service.ts";
import { issue, startNode, waitFor } from "../helpers.ts";
import { listOn, startCluster } from "../cluster_support.ts";

const CLUSTER = "revdel";

Deno.test("cluster: a revocation deleted from etcd by a writer is written again by its identity and refused on a restarted node", async () => {
  const started = await startCluster(CLUSTER, ["a", "b"]);
  const { etcd, nodes, temps } = started;
  const attacker = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
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
    const gone = await attacker.delete(`${revocationsPrefix(CLUSTER)}a/`, { prefix: true });
    assert.ok(gone > 0, "A's revocation was in etcd");

    // B restarts (a reboot, an upgrade): it learns other nodes' revocations from etcd.
    await nodes[1].stop();
    nodes[1] = await startNode({ temp: temps[1] });
    await waitFor(
      "restarted b to honour A's unrevoked token",
      async () => (await listOn(nodes[1], keep.token)).ok,
      15_000,
    );
    // A's identity notices the batch is gone and writes it again: B refuses the token.
    await waitFor(
      "restarted b to refuse A's revoked token again",
      async () => !(await listOn(nodes[1], tok.token)).ok,
      RECONCILE_MS + 5000,
    );
    const again = (await attacker.range(`${revocationsPrefix(CLUSTER)}a/`)).kvs;
    assert.ok(again.length > 0, "A's identity wrote its revocation to etcd again");
    assert.ok((await listOn(nodes[1], keep.token)).ok, "A's other token still honoured on B");
  } finally {
    attacker.close();
    await started.stop();
  }
});
