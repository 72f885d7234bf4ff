/**
 * KNOWN DEFECT (review14, fails on main 280a3b5): a writer to etcd replays
 * an endorsement the root once signed. `cluster leave` withdraws a node by
 * deleting its endorsement, and a renewal that drops a key replaces it; both
 * leave the old root-signed value valid until its exp, so anyone who can
 * write to etcd can put it back and the withdrawn node's keys (or the dropped
 * key) are trusted again. Issue 14: "anyone who can write to etcd must not be
 * able to make a key trusted".
 */

import assert from "node:assert/strict";
import { Etcd3 } from "etcd3";
import {
  generateSigningKey,
  importVerifyKey,
  publicPaserk,
  type SigningKey,
} from "../../src/token/keys.ts";
import { signEndorsement } from "../../src/token/endorsement.ts";
import { endorsementsPrefix, EtcdKeySetSource } from "../../src/sources/etcd_key_set.ts";
import { FileKeySetSource } from "../../src/sources/key_set.ts";
import { startEtcd } from "../etcd.ts";
import { withTempDir } from "./support.ts";

const CLUSTER = "c1";

function endorse(root: SigningKey, node: string, keys: SigningKey[], expMs: number): string {
  return signEndorsement(root, {
    cluster: CLUSTER,
    node,
    keys: keys.map((k) => ({ kid: k.kid, public: publicPaserk(k.publicKey) })),
    expMs,
  });
}

async function withSource(
  fn: (
    root: SigningKey,
    source: EtcdKeySetSource,
    operator: Etcd3,
    attacker: Etcd3,
  ) => Promise<void>,
): Promise<void> {
  const etcd = await startEtcd(1);
  const operator = new Etcd3({ hosts: etcd.endpoints });
  const attacker = new Etcd3({ hosts: etcd.endpoints });
  try {
    await withTempDir(async (dir) => {
      const root = await generateSigningKey();
      const source = new EtcdKeySetSource({
        cluster: CLUSTER,
        client: new Etcd3({ hosts: etcd.endpoints }),
        root: await importVerifyKey(root.publicKey),
        local: new FileKeySetSource(`${dir}/identity.pub`),
      });
      await source.start();
      await source.watching;
      try {
        await fn(root, source, operator, attacker);
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

Deno.test("KNOWN DEFECT etcd key set: a withdrawn endorsement put back by a writer to etcd makes its keys trusted again", async () => {
  await withSource(async (root, source, operator, attacker) => {
    const a = await generateSigningKey();
    // The operator endorses A, then withdraws it (what `cluster leave A` does).
    const endorsementA = endorse(root, "A", [a], day);
    await operator.put(`${prefix}A`).value(endorsementA);
    await source.refresh();
    assert.ok(source.snapshot().has(a.kid), "A endorsed");
    await operator.delete().key(`${prefix}A`);
    await source.refresh();
    assert.ok(!source.snapshot().has(a.kid), "A withdrawn");
    // The attacker writes the bytes it saw back.
    await attacker.put(`${prefix}A`).value(endorsementA);
    await source.refresh();
    assert.ok(
      !source.snapshot().has(a.kid),
      "DEFECT: a withdrawn endorsement replayed by a writer to etcd makes A's key trusted again",
    );
  });
});

Deno.test("KNOWN DEFECT etcd key set: an older endorsement put back by a writer to etcd makes a dropped key trusted again", async () => {
  await withSource(async (root, source, operator, attacker) => {
    const [bOld, bNew] = await Promise.all([1, 2].map(() => generateSigningKey()));
    // B's key bOld is compromised: the operator renews B's endorsement without it.
    const old = endorse(root, "B", [bOld], day);
    await operator.put(`${prefix}B`).value(old);
    await source.refresh();
    assert.ok(source.snapshot().has(bOld.kid), "bOld endorsed");
    await operator.put(`${prefix}B`).value(endorse(root, "B", [bNew], day));
    await source.refresh();
    assert.ok(!source.snapshot().has(bOld.kid), "bOld dropped");
    await attacker.put(`${prefix}B`).value(old);
    await source.refresh();
    assert.ok(
      !source.snapshot().has(bOld.kid),
      "DEFECT: an older endorsement replayed by a writer to etcd makes the dropped key trusted again",
    );
  });
});
