/**
 * Identity's etcd calls end by their deadlines, against a real etcd stopped
 * with SIGSTOP (tests/etcd.ts), also while a longer call on the same client
 * waits: with the etcd3 client (before src/sources/etcd_http.ts) a call made
 * while its circuit breaker was half-open waited for the breaker's trial call
 * first, however long that had (a 1.5 s read of a key rotation answered after
 * 4 s, behind identity's 4 s read of its revocations).
 */

import assert from "node:assert/strict";
import type { Layout } from "../../src/runtime/config.ts";
import { etcdHttp } from "../../src/sources/cluster.ts";
import { identityEtcd, KEYS_DEADLINE_MS } from "../../src/sources/etcd_identity.ts";
import { PUBLISH_BUDGET_MS, publishRevocations } from "../../src/sources/etcd_revocations.ts";
import { startEtcd, type TestEtcd } from "../etcd.ts";

function layoutOf(etcd: TestEtcd): Layout {
  return {
    runtimeDir: "/tmp/strata-unused/rt",
    stateDir: "/tmp/strata-unused/state",
    nodeId: "a",
    fsRoots: [],
    cluster: { name: "c1", etcd: etcd.endpoints, root: "/tmp/strata-unused/root.pub" },
  };
}

/** How long `p` took to settle (ms), and whether it was refused. */
async function timed(p: Promise<unknown>): Promise<{ ms: number; refused: boolean }> {
  const t0 = performance.now();
  const refused = await p.then(() => false, () => true);
  return { ms: performance.now() - t0, refused };
}

/** Waits past the client's longest pause before it tries a member again (1 s). */
const pastReopen = () => new Promise((r) => setTimeout(r, 1100));

Deno.test("identity's key set calls end by their 1.5 s, also behind a 4 s call in the etcd client", async () => {
  const etcd = await startEtcd(1);
  const ident = identityEtcd(layoutOf(etcd), { get: () => undefined });
  let paused = false;
  try {
    await ident.endorsedKids(); // connected while etcd answers
    await etcd.pause(0);
    paused = true;
    // etcd does not answer: the first read fails by its deadline, and the client closes the member
    const first = await timed(ident.endorsedKids());
    assert.ok(first.refused);
    assert.ok(first.ms < KEYS_DEADLINE_MS + 500, `${first.ms.toFixed(0)} ms`);
    await pastReopen();
    // identity's read of its revocations in etcd (4 s) is the client's next try of the member...
    const trial = timed(ident.published());
    // ...and the rotation's read and write come meanwhile
    const kids = await timed(ident.endorsedKids());
    const offer = await timed(ident.offerKeys("v4.public.x"));
    console.log(
      `  endorsedKids ${kids.ms.toFixed(0)} ms, offerKeys ${offer.ms.toFixed(0)} ms ` +
        `(deadline ${KEYS_DEADLINE_MS} ms each)`,
    );
    assert.ok(kids.refused && offer.refused);
    assert.ok(kids.ms < KEYS_DEADLINE_MS + 300, `endorsedKids took ${kids.ms.toFixed(0)} ms`);
    assert.ok(offer.ms < KEYS_DEADLINE_MS + 300, `offerKeys took ${offer.ms.toFixed(0)} ms`);
    const read = await trial;
    assert.ok(read.refused && read.ms < PUBLISH_BUDGET_MS + 300, `${read.ms.toFixed(0)} ms`);
  } finally {
    if (paused) etcd.resume(0);
    ident.close();
    await etcd.stop();
  }
});

Deno.test("a revocation's write to etcd ends by its 4 s budget, also behind a longer call in the client", async () => {
  const etcd = await startEtcd(1);
  const client = etcdHttp(layoutOf(etcd));
  let paused = false;
  try {
    await client.get("/warm"); // connected while etcd answers
    await etcd.pause(0);
    paused = true;
    const open = { deadline: new Date(Date.now() + 300) };
    await client.get("/warm", open).catch(() => {}); // the member is skipped
    await pastReopen();
    // Another call on the client with a longer deadline is its next try of the member...
    const long = client.get("/long", { deadline: new Date(Date.now() + 9000) });
    long.catch(() => {});
    // ...and a revocation batch is written meanwhile.
    const entries = [{ cap_id: "0".repeat(32), exp: Math.floor(Date.now() / 1000) + 600 }];
    const publish = await timed(
      publishRevocations(client, "v4.public.x", { cluster: "c1", node: "a", entries }),
    );
    console.log(`  publishRevocations refused after ${publish.ms.toFixed(0)} ms`);
    assert.ok(publish.refused);
    assert.ok(
      publish.ms < PUBLISH_BUDGET_MS + 500,
      `refused after ${publish.ms.toFixed(0)} ms, budget ${PUBLISH_BUDGET_MS} ms`,
    );
  } finally {
    if (paused) etcd.resume(0);
    client.close();
    await etcd.stop();
  }
});
