/**
 * Identity judges other nodes' tokens (docs/cluster.md, "Identity and other nodes' tokens"),
 * with real processes: one etcd and three nodes a, b and c on loopback. A token issued on A is
 * introspected and revoked on C; the revocation C signs is honoured on A and B. Delegating from
 * A's token on C is refused with the reason; A's root token is no operator of C; a revocation
 * list for A's token signed by a key no root endorses, filed under C, is ignored.
 */

import assert from "node:assert/strict";
import { EtcdHttp } from "../../src/sources/etcd_http.ts";
import { generateSigningKey } from "../../src/token/keys.ts";
import { signRevocationList } from "../../src/token/revocation_set.ts";
import { revocationsPrefix } from "../../src/sources/etcd_revocations.ts";
import { issue, waitFor } from "../helpers.ts";
import { listOn, startCluster } from "../cluster_support.ts";

const CLUSTER = "ids";

Deno.test("cluster identity: A's token introspected and revoked on C, refused on A and B", async () => {
  const started = await startCluster(CLUSTER, ["a", "b", "c"]);
  const { etcd, nodes } = started;
  const writer = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    const [a, b, c] = nodes;
    // A token of A's for fs, and one that may also call identity (issue and revoke).
    const tok = await issue(a, { service: "fs", actions: ["list"] });
    const keep = await issue(a, { service: "fs", actions: ["list"] });
    const idTok = await issue(a, {
      service: "*",
      rights: ["identity.issue", "identity.revoke", "fs.list"],
    });
    for (const n of [b, c]) {
      await waitFor(
        `${n.layout.nodeId} to honour A's token`,
        async () => (await listOn(n, tok.token)).ok,
        10_000,
      );
    }

    // Introspected on C: valid, A's claims.
    const seen = await c.request("identity", "identity.introspect", { token: tok.token });
    assert.ok(seen.ok, JSON.stringify(seen));
    const intro = seen.result as { valid: boolean; claims: { iss: string; jti: string } };
    assert.equal(intro.valid, true, JSON.stringify(intro));
    assert.equal(intro.claims.iss, "identity@a");

    // Delegating from A's token on C: refused with the reason and where to go.
    const del = await c.request(
      "identity",
      "identity.issue",
      { service: "fs", actions: ["list"] },
      idTok.token,
    );
    assert.ok(!del.ok, JSON.stringify(del));
    assert.equal(del.error.name, "PERMISSION_DENIED");
    assert.equal(del.error.details?.reason, "foreign_issuer");
    assert.match(del.error.message, /issued by identity@a.*identity\.issue on node a/);
    // On A it works (the control).
    assert.ok(
      (await a.request(
        "identity",
        "identity.issue",
        { service: "fs", actions: ["list"] },
        idTok.token,
      )).ok,
    );

    // A's root token is no operator of C: no key rotation, no revoking C's tokens.
    const rot = await c.request("identity", "identity.rotate_key", {}, a.operatorToken());
    assert.equal(!rot.ok && rot.error.details?.reason, "not_operator", JSON.stringify(rot));
    const cTok = await issue(c, { service: "fs", actions: ["list"] });
    const cross = await c.request(
      "identity",
      "identity.revoke",
      { token: cTok.token },
      a.operatorToken(),
    );
    assert.equal(
      !cross.ok && cross.error.details?.reason,
      "not_in_your_tree",
      JSON.stringify(cross),
    );
    // Nor may C revoke A's root operator token (only A's identity re-mints it).
    const rootRevoke = await c.request(
      "identity",
      "identity.revoke",
      { token: a.operatorToken(), confirm_root: true },
      c.operatorToken(),
    );
    assert.equal(
      !rootRevoke.ok && rootRevoke.error.details?.reason,
      "foreign_root",
      JSON.stringify(rootRevoke),
    );

    // By cap_id alone C cannot know A's token: the answer says to pass the token.
    const byId = await c.request(
      "identity",
      "identity.revoke",
      { cap_id: tok.cap_id },
      c.operatorToken(),
    );
    assert.ok(!byId.ok && byId.error.details?.reason === "never_issued", JSON.stringify(byId));
    assert.match(byId.error.message, /pass the token itself/);

    // A revocation of `keep` signed by a key no root endorses, filed under c: ignored.
    const stranger = await generateSigningKey();
    await writer.put(
      `${revocationsPrefix(CLUSTER)}c/forged`,
      await signRevocationList(stranger, "identity@c", [
        { cap_id: keep.cap_id, exp: Math.floor(Date.now() / 1000) + 600 },
      ]),
    );

    // Revoked on C by C's operator, with the token: ok once etcd has it; refused on A and B.
    const t0 = performance.now();
    const rev = await c.request(
      "identity",
      "identity.revoke",
      { token: tok.token },
      c.operatorToken(),
    );
    assert.ok(rev.ok, JSON.stringify(rev));
    const tOk = performance.now();
    for (const n of [c, a, b]) {
      await waitFor(`${n.layout.nodeId} to refuse the token C revoked`, async () => {
        const r = await listOn(n, tok.token);
        return !r.ok && r.error.details?.reason === "revoked";
      }, 5000);
    }
    console.log(
      `  revoke on C answered in ${(tOk - t0).toFixed(1)} ms; A and B refuse ` +
        `${(performance.now() - tOk).toFixed(1)} ms after the answer`,
    );
    // A's identity watches etcd on its own, so it may learn of the revocation a moment after A's
    // fs did: each identity is given the same bounded wait.
    for (const n of [a, c]) {
      let last: unknown;
      await waitFor(`introspect on ${n.layout.nodeId} to say revoked`, async () => {
        const r = await n.request("identity", "identity.introspect", { token: tok.token });
        last = r;
        const res = r.ok ? r.result as { valid: boolean; reason: string } : undefined;
        return res?.valid === false && res.reason === "revoked";
      }, 5000).catch((e) => {
        throw new Error(`${(e as Error).message}: ${JSON.stringify(last)}`);
      });
    }
    // A second revoke on C answers `already`.
    const again = await c.request(
      "identity",
      "identity.revoke",
      { token: tok.token },
      c.operatorToken(),
    );
    assert.equal(again.ok && (again.result as { already?: boolean }).already, true);

    // The holder of an A token with identity.revoke revokes it itself on C.
    const self = await c.request(
      "identity",
      "identity.revoke",
      { token: idTok.token },
      idTok.token,
    );
    assert.ok(self.ok, JSON.stringify(self));
    for (const n of [a, b]) {
      await waitFor(`${n.layout.nodeId} to refuse the self-revoked token`, async () => {
        const r = await listOn(n, idTok.token);
        return !r.ok && r.error.details?.reason === "revoked";
      }, 5000);
    }
    // The forged entry was read long before: `keep` is still honoured everywhere.
    for (const n of nodes) {
      assert.ok((await listOn(n, keep.token)).ok, `forged ignored on ${n.layout.nodeId}`);
    }
  } finally {
    writer.close();
    await started.stop();
  }
});
