/**
 * A writer to etcd replays an endorsement the root once signed (review14;
 * these tests failed on main 280a3b5). `cluster leave` withdrawing a node and
 * a renewal dropping a key both leave the old root-signed value valid until
 * its exp; every record now carries a seq under the root's signature, leave
 * writes a withdrawal with a higher one, and each node's key set refuses a
 * record older than the newest it verified, so the bytes put back (with the
 * etcd client directly) do not make a key trusted again. Issue 14: "anyone
 * who can write to etcd must not be able to make a key trusted". The
 * operator's side (`cluster endorse` refusing to build on a replay) is here
 * too.
 */

import assert from "node:assert/strict";
import { endorsementOf } from "../cluster_support.ts";
import { EtcdHttp } from "../../src/sources/etcd_http.ts";
import {
  generateSigningKey,
  importVerifyKey,
  publicPaserk,
  secretPaserk,
  type SigningKey,
} from "../../src/token/keys.ts";
import { ENDORSEMENT_TYPE, signPendingKeys } from "../../src/token/endorsement.ts";
import { signV4Public } from "../../src/token/paseto.ts";
import { rfc3339 } from "../../src/token/claims.ts";
import {
  endorsementsPrefix,
  EtcdKeySetSource,
  pendingKeysPrefix,
} from "../../src/sources/etcd_key_set.ts";
import { endorseNode, joinNode, leaveNode } from "../../src/ctl/cluster.ts";
import { CtlError } from "../../src/ctl/errors.ts";
import { FileKeySetSource } from "../../src/sources/key_set.ts";
import { startEtcd } from "../etcd.ts";
import { withTempDir } from "./support.ts";

const CLUSTER = "c1";

function endorse(
  root: SigningKey,
  node: string,
  keys: SigningKey[],
  opts: { expMs: number; seq?: number },
): string {
  return endorsementOf(root, CLUSTER, node, keys, opts);
}

/** The operator's cluster folder in `dir`, holding `root` (what `cluster init` writes). */
async function operatorFolder(dir: string, root: SigningKey): Promise<string> {
  const folder = `${dir}/op`;
  await Deno.mkdir(folder, { mode: 0o700 });
  await Deno.writeTextFile(`${folder}/root.key`, secretPaserk(root) + "\n", { mode: 0o600 });
  return folder;
}

async function withSource(
  fn: (
    root: SigningKey,
    source: EtcdKeySetSource,
    operator: EtcdHttp,
    attacker: EtcdHttp,
    dir: string,
  ) => Promise<void>,
): Promise<void> {
  const etcd = await startEtcd(1);
  const operator = new EtcdHttp({ endpoints: etcd.endpoints });
  const attacker = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await withTempDir(async (dir) => {
      const root = await generateSigningKey();
      const source = new EtcdKeySetSource({
        cluster: CLUSTER,
        client: new EtcdHttp({ endpoints: etcd.endpoints }),
        root: await importVerifyKey(root.publicKey),
        local: new FileKeySetSource(`${dir}/identity.pub`),
      });
      await source.start();
      await source.watching;
      try {
        await fn(root, source, operator, attacker, dir);
      } finally {
        source.close();
      }
    });
  } finally {
    operator.close();
    attacker.close();
    await etcd.stop();
  }
}

const prefix = endorsementsPrefix(CLUSTER);
const day = Date.now() + 86400_000;

Deno.test("etcd key set: a withdrawn endorsement put back by a writer to etcd stays refused as a replay", async () => {
  await withSource(async (root, source, operator, attacker, dir) => {
    const folder = await operatorFolder(dir, root);
    const a = await generateSigningKey();
    // The operator endorses A, then withdraws it with `cluster leave A`'s code.
    const endorsementA = endorse(root, "A", [a], { expMs: day, seq: Date.now() - 1000 });
    await operator.put(`${prefix}A`, endorsementA);
    await source.refresh();
    assert.ok(source.snapshot().has(a.kid), "A endorsed");
    const left = await leaveNode("A", { dir: folder, cluster: CLUSTER, etcd: operator });
    assert.ok(left.withdrawn);
    assert.ok(Date.parse(left.expires) >= day, "the withdrawal outlives the endorsement");
    await source.refresh();
    assert.ok(!source.snapshot().has(a.kid), "A withdrawn");
    assert.match(source.refusal(a.kid) ?? "", /the endorsement of A was withdrawn/);
    // The attacker writes the bytes it saw back over the withdrawal...
    await attacker.put(`${prefix}A`, endorsementA);
    await source.refresh();
    assert.ok(!source.snapshot().has(a.kid), "a replay over the withdrawal is refused");
    assert.match(source.refusal(a.kid) ?? "", /withdrawn \(seq \d+\).*replay, refused/);
    // ...or deletes the withdrawal first and then puts the old endorsement back.
    await attacker.delete(`${prefix}A`);
    await source.refresh();
    await attacker.put(`${prefix}A`, endorsementA);
    await source.refresh();
    assert.ok(!source.snapshot().has(a.kid), "a replay after deleting the withdrawal is refused");
    assert.match(source.refusal(a.kid) ?? "", /replay, refused/);
  });
});

Deno.test("etcd key set: an older endorsement put back by a writer to etcd does not make a dropped key trusted", async () => {
  await withSource(async (root, source, operator, attacker) => {
    const [bOld, bNew] = await Promise.all([1, 2].map(() => generateSigningKey()));
    // B's key bOld is compromised: the operator renews B's endorsement without it.
    const old = endorse(root, "B", [bOld], { expMs: day, seq: 1 });
    await operator.put(`${prefix}B`, old);
    await source.refresh();
    assert.ok(source.snapshot().has(bOld.kid), "bOld endorsed");
    await operator.put(`${prefix}B`, endorse(root, "B", [bNew], { expMs: day, seq: 2 }));
    await source.refresh();
    assert.ok(!source.snapshot().has(bOld.kid), "bOld dropped");
    assert.ok(source.snapshot().has(bNew.kid), "bNew endorsed");
    await attacker.put(`${prefix}B`, old);
    await source.refresh();
    assert.ok(!source.snapshot().has(bOld.kid), "the replayed endorsement's key stays refused");
    assert.match(
      source.refusal(bOld.kid) ?? "",
      /the endorsement of B in etcd \(seq 1\) is older than seq 2 .*a replay, refused/,
    );
    // The newest record put back again holds (it is not older than what was verified).
    await operator.put(`${prefix}B`, endorse(root, "B", [bNew], { expMs: day, seq: 3 }));
    await source.refresh();
    assert.ok(source.snapshot().has(bNew.kid) && !source.snapshot().has(bOld.kid));
    // An old token of bOld is refused for what etcd says now, not for the replay that has
    // been overwritten (that reason stayed, and told the operator to run cluster join again).
    assert.equal(source.refusal(bOld.kid), "the endorsement of B no longer names it");
  });
});

Deno.test("etcd key set: a pending key its node dropped before the operator endorsed it no longer 'awaits endorsement'", async () => {
  await withSource(async (root, source, operator) => {
    const [d1, d2, d3] = await Promise.all([1, 2, 3].map(() => generateSigningKey()));
    const named = (keys: SigningKey[]) =>
      keys.map((k) => ({ kid: k.kid, public: publicPaserk(k.publicKey) }));
    const pending = `${pendingKeysPrefix(CLUSTER)}D`;
    await operator.put(`${prefix}D`, endorse(root, "D", [d1], { expMs: day, seq: 1 }));
    // D rotates in d2 (its pending set, signed by its endorsed d1)...
    await operator.put(
      pending,
      signPendingKeys(d1, { cluster: CLUSTER, node: "D", keys: named([d1, d2]) }),
    );
    await source.refresh();
    assert.match(source.refusal(d2.kid) ?? "", /awaits the operator's endorsement/);
    // ...then rotates again and drops d2 before the operator endorsed it
    await operator.put(
      pending,
      signPendingKeys(d1, { cluster: CLUSTER, node: "D", keys: named([d1, d3]) }),
    );
    await source.refresh();
    const dropped =
      "identity@D no longer offers it: it was dropped before the operator endorsed it";
    assert.equal(source.refusal(d2.kid), dropped);
    assert.match(source.refusal(d3.kid) ?? "", /awaits the operator's endorsement/);
    // the operator endorses what is pending: d2 is not named, and `cluster endorse` would not help
    await operator.put(`${prefix}D`, endorse(root, "D", [d1, d3], { expMs: day, seq: 2 }));
    await source.refresh();
    assert.ok(source.snapshot().has(d3.kid) && !source.snapshot().has(d2.kid));
    assert.equal(source.refusal(d2.kid), dropped);
  });
});

Deno.test("etcd key set: an endorsement signed before seq existed counts as seq 0", async () => {
  await withSource(async (root, source, operator, attacker) => {
    const [cOld, cNew] = await Promise.all([1, 2].map(() => generateSigningKey()));
    // A payload without seq, as the root signed before this change.
    const legacy = signV4Public(root, {
      typ: ENDORSEMENT_TYPE,
      cluster: CLUSTER,
      node: "C",
      iss: "identity@C",
      keys: [{ kid: cOld.kid, public: publicPaserk(cOld.publicKey) }],
      iat: rfc3339(Date.now()),
      exp: rfc3339(day),
    });
    await operator.put(`${prefix}C`, legacy);
    await source.refresh();
    assert.ok(source.snapshot().has(cOld.kid), "a legacy endorsement holds");
    await operator.put(`${prefix}C`, endorse(root, "C", [cNew], { expMs: day, seq: 5 }));
    await source.refresh();
    await attacker.put(`${prefix}C`, legacy);
    await source.refresh();
    assert.ok(!source.snapshot().has(cOld.kid), "a legacy endorsement replayed is refused");
    assert.match(source.refusal(cOld.kid) ?? "", /\(seq 0\) is older than seq 5/);
  });
});

Deno.test("cluster endorse refuses to build on a replayed endorsement (a compromised key's pending set)", async () => {
  const etcd = await startEtcd(1);
  const operator = new EtcdHttp({ endpoints: etcd.endpoints });
  const attacker = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await withTempDir(async (dir) => {
      const root = await generateSigningKey();
      const folder = await operatorFolder(dir, root);
      const [bOld, bNew, evil] = await Promise.all([1, 2, 3].map(() => generateSigningKey()));
      const doc = (keys: SigningKey[]) => ({
        v: 1 as const,
        issuer: "identity@B",
        active: keys[0].kid,
        keys: keys.map((k) => ({
          kid: k.kid,
          public: publicPaserk(k.publicKey),
          created: rfc3339(Date.now()),
        })),
      });
      const common = { dir: folder, cluster: CLUSTER, etcd: operator, ttlMs: 3600_000, hosts: [] };
      await joinNode("B", { ...common, keys: doc([bOld]) });
      const old = await operator.get(`${prefix}B`);
      // bOld is compromised: the operator re-joins B with bNew only.
      const renewed = await joinNode("B", { ...common, keys: doc([bNew]) });
      assert.deepEqual(renewed.kids, [bNew.kid]);
      // The attacker puts the old endorsement back and a pending set naming its key, signed by bOld.
      await attacker.put(`${prefix}B`, old!);
      await attacker.put(
        `${pendingKeysPrefix(CLUSTER)}B`,
        signPendingKeys(bOld, {
          cluster: CLUSTER,
          node: "B",
          keys: [{ kid: evil.kid, public: publicPaserk(evil.publicKey) }],
        }),
      );
      const err = await endorseNode("B", { ...common }).then(() => undefined, (e) => e);
      assert.ok(err instanceof CtlError, `endorse refused: ${err}`);
      assert.match(
        (err as CtlError).message,
        /seq \d+, older than seq \d+ this folder last signed for it: a replayed endorsement/,
      );
      assert.equal(await operator.get(`${prefix}B`), old, "nothing new was signed");
      // After `cluster leave`, endorse refuses too (a withdrawal vouches for no pending set).
      await leaveNode("B", { dir: folder, cluster: CLUSTER, etcd: operator });
      const err2 = await endorseNode("B", { ...common }).then(() => undefined, (e) => e);
      assert.match((err2 as CtlError).message, /it was withdrawn/);
    });
  } finally {
    operator.close();
    attacker.close();
    await etcd.stop();
  }
});

Deno.test("cluster join, endorse and leave refuse a folder whose root is not the node's trust anchor", async () => {
  const etcd = await startEtcd(1);
  const operator = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await withTempDir(async (dir) => {
      // given the cluster's root (the nodes' --cluster-root) and another root's folder
      const [root, other, b] = await Promise.all([1, 2, 3].map(() => generateSigningKey()));
      const folder = await operatorFolder(dir, root);
      const anchor = `${dir}/root.pub`;
      await Deno.writeTextFile(anchor, publicPaserk(root.publicKey) + "\n");
      await Deno.mkdir(`${dir}/other`);
      const wrong = await operatorFolder(`${dir}/other`, other);
      const keys = {
        v: 1 as const,
        issuer: "identity@B",
        active: b.kid,
        keys: [{ kid: b.kid, public: publicPaserk(b.publicKey), created: rfc3339(Date.now()) }],
      };
      const common = { cluster: CLUSTER, etcd: operator, ttlMs: 3600_000, hosts: [], anchor };
      await joinNode("B", { ...common, dir: folder, keys });
      const good = await operator.get(`${prefix}B`);
      // when the operator points join, endorse or leave at the other folder
      for (
        const attempt of [
          () => joinNode("B", { ...common, dir: wrong, keys }),
          () => endorseNode("B", { ...common, dir: wrong }),
          () => leaveNode("B", { ...common, dir: wrong }),
        ]
      ) {
        const err = await attempt().then(() => undefined, (e) => e);
        // then each is a usage error naming the anchor, and B's endorsement is untouched
        assert.ok(err instanceof CtlError, String(err));
        assert.equal(err.exit, 2);
        assert.match(err.message, /is not the cluster root this node trusts .*nothing was written/);
        assert.equal(await operator.get(`${prefix}B`), good);
      }
    });
  } finally {
    operator.close();
    await etcd.stop();
  }
});
