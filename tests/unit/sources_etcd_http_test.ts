/**
 * Tests of src/sources/etcd_http.ts, the etcd client on fetch, against real
 * etcd members on loopback (tests/etcd.ts): reads, writes and leases; a
 * watch delivers puts and deletes, resumes after its member is killed
 * without losing what was put meanwhile, and reports etcd's cancellation;
 * calls go to another member when one is killed or stopped, and end by
 * their deadline when none answers.
 */

import assert from "node:assert/strict";
import {
  EtcdDeadlineError,
  EtcdError,
  EtcdHttp,
  type EtcdKeyValue,
} from "../../src/sources/etcd_http.ts";
import { startEtcd } from "../etcd.ts";
import { makeTestTls, oursAndTheirsTls, waitFor } from "../helpers.ts";

Deno.test("etcd over fetch: range, get, put on a lease, delete", async () => {
  const etcd = await startEtcd(1);
  const client = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await client.put("/p/a", "1");
    await client.put("/p/b/é", "ünï");
    await client.put("/p0", "outside the prefix");
    await client.put("/q", "other");
    const all = await client.range("/p/");
    assert.deepEqual(all.kvs.map((kv) => [kv.key, kv.value]), [["/p/a", "1"], ["/p/b/é", "ünï"]]);
    assert.ok(all.revision >= 4);
    assert.equal(await client.get("/q"), "other");
    assert.equal(await client.get("/p/"), null, "exact key, not the prefix");
    // Only what changed at or after a revision.
    await client.put("/p/a", "2");
    const since = await client.range("/p/", { minModRevision: all.revision + 1 });
    assert.deepEqual(since.kvs.map((kv) => [kv.key, kv.value]), [["/p/a", "2"]]);
    assert.deepEqual([...(await client.strings("/p/")).keys()], ["/p/a", "/p/b/é"]);
    await client.delete("/p/a");
    assert.equal(await client.get("/p/a"), null);
    // A key on a lease of 1 s goes when the lease ends.
    const lease = await client.grantLease(1);
    await client.put("/leased", "x", { lease });
    assert.equal(await client.get("/leased"), "x");
    await waitFor("the leased key to go", async () => await client.get("/leased") === null, 5000);
    // A lease etcd does not know is refused with etcd's error, not retried.
    await assert.rejects(client.put("/x", "y", { lease: "12345" }), EtcdError);
  } finally {
    client.close();
    await etcd.stop();
  }
});

Deno.test("etcd over fetch: a watch delivers in order and resumes after its member dies", async () => {
  const etcd = await startEtcd(3);
  const client = new EtcdHttp({ endpoints: etcd.endpoints, attemptMs: 1000 });
  const writer = new EtcdHttp({ endpoints: etcd.endpoints, attemptMs: 1000 });
  try {
    const got: string[] = [];
    const events: string[] = [];
    const watch = await client.watch("/w/");
    watch.on("put", (kv: EtcdKeyValue) => got.push(`put ${kv.key}=${kv.value}`));
    watch.on("delete", (kv: EtcdKeyValue) => got.push(`delete ${kv.key}`));
    watch.on("connected", () => events.push("connected"));
    watch.on("disconnected", () => events.push("disconnected"));
    await writer.put("/w/1", "a");
    await writer.put("/other", "not watched");
    await writer.delete("/w/1");
    await waitFor("two events", () => got.length === 2, 5000);
    assert.deepEqual(got, ["put /w/1=a", "delete /w/1"]);
    // The watch's member (the first, which answered first) dies; puts meanwhile still arrive.
    etcd.members[0].kill("SIGKILL");
    await etcd.members[0].status;
    await waitFor("the watch to see its stream break", () => events.includes("disconnected"), 5000);
    for (let i = 2; i <= 5; i++) await writer.put(`/w/${i}`, String(i));
    await waitFor("the watch to resume", () => events.includes("connected"), 10_000);
    await waitFor("every put", () => got.length === 6, 5000);
    assert.deepEqual(got.slice(2), ["put /w/2=2", "put /w/3=3", "put /w/4=4", "put /w/5=5"]);
    assert.deepEqual(events, ["disconnected", "connected"]);
    await watch.cancel();
  } finally {
    client.close();
    writer.close();
    await etcd.stop();
  }
});

Deno.test("etcd over fetch: calls go to a member that answers; none answering, the deadline ends them", async () => {
  const etcd = await startEtcd(3);
  const client = new EtcdHttp({ endpoints: etcd.endpoints, attemptMs: 500 });
  try {
    await client.put("/k", "v");
    // A stopped member keeps its connections open and answers nothing: the next answers.
    await etcd.pause(0);
    const t0 = performance.now();
    assert.equal(await client.get("/k"), "v");
    // One attempt's time, then the next member (after an election when the stopped one led).
    assert.ok(performance.now() - t0 < 3000, `${performance.now() - t0} ms`);
    // The stopped member is skipped for a while: the next call goes straight to another.
    const t1 = performance.now();
    assert.equal(await client.get("/k"), "v");
    assert.ok(performance.now() - t1 < 400, `${performance.now() - t1} ms`);
    etcd.resume(0);
    // No member answers (all stopped): the call fails by its deadline.
    for (const i of [0, 1, 2]) await etcd.pause(i);
    const t2 = performance.now();
    await assert.rejects(
      client.get("/k", { deadline: new Date(Date.now() + 1200) }),
      EtcdDeadlineError,
    );
    const took = performance.now() - t2;
    assert.ok(took < 1800, `${took} ms`);
    for (const i of [0, 1, 2]) etcd.resume(i);
    assert.equal(await client.get("/k"), "v");
  } finally {
    client.close();
    for (const i of [0, 1, 2]) etcd.resume(i);
    await etcd.stop();
  }
});

Deno.test("etcd over fetch: a watch from a compacted revision is cancelled with the reason", async () => {
  const etcd = await startEtcd(1);
  const client = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    const watch = await client.watch("/c/");
    const errors: Error[] = [];
    watch.on("error", (err) => errors.push(err));
    await client.put("/c/1", "a");
    const { revision } = await client.range("/c/");
    await fetch(`${etcd.endpoints[0]}/v3/kv/compaction`, {
      method: "POST",
      body: JSON.stringify({ revision: String(revision), physical: true }),
    }).then((r) => r.body?.cancel());
    // A watch set up from before the compaction (as one resuming late would be).
    const late = await client.watch("/c/", { fromRevision: 1 }).catch((e) => e as Error);
    if (late instanceof Error) {
      assert.match(late.message, /compacted/);
    } else {
      const lateErrors: Error[] = [];
      late.on("error", (err) => lateErrors.push(err));
      await waitFor("the cancellation", () => lateErrors.length === 1, 5000);
      assert.match(lateErrors[0].message, /compacted/);
    }
    assert.deepEqual(errors, []);
    await watch.cancel();
  } finally {
    client.close();
    await etcd.stop();
  }
});

Deno.test("etcd over fetch: no member there, a call fails at once, not at its deadline", async () => {
  const etcd = await startEtcd(3);
  const client = new EtcdHttp({ endpoints: etcd.endpoints, attemptMs: 1000 });
  try {
    await client.put("/k", "v");
    for (const m of etcd.members) m.kill("SIGKILL");
    for (const m of etcd.members) await m.status;
    // Refused by every member: a service starting with etcd down goes on without it.
    const t0 = performance.now();
    await assert.rejects(
      client.get("/k", { deadline: new Date(Date.now() + 8000) }),
      /no member answered/,
    );
    assert.ok(performance.now() - t0 < 1000, `${performance.now() - t0} ms`);
  } finally {
    client.close();
    await etcd.stop();
  }
});

/** `p`, or a failure after `ms`: a call that ignores its deadline fails the test, not hangs it. */
async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("etcd over https://: a stopped member is left for another by the attempt's time, under a server name too", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-etcdtls-" });
  const tls = await makeTestTls(dir, { dnsName: "etcd.test", serverAlsoClient: true });
  const etcd = await startEtcd(3, { tls });
  const pem = {
    ca: await Deno.readTextFile(tls.ca),
    cert: await Deno.readTextFile(tls.clientCert),
    key: await Deno.readTextFile(tls.clientKey),
  };
  const clients = [undefined, "etcd.test"].map((serverName) =>
    new EtcdHttp({ endpoints: etcd.endpoints, attemptMs: 500, tls: { ...pem, serverName } })
  );
  try {
    await clients[0].put("/k", "v");
    for (const c of clients) assert.equal(await c.get("/k"), "v"); // connections kept alive
    await etcd.pause(0);
    for (const c of clients) {
      const t0 = performance.now();
      assert.equal(await within(6000, c.get("/k", { deadline: new Date(Date.now() + 4000) })), "v");
      const took = performance.now() - t0;
      // Before, a request on a kept-alive connection ignored its timeout: pending until SIGCONT.
      assert.ok(took < 3000, `${took.toFixed(0)} ms`);
    }
    // Every member stopped: the call ends by its deadline.
    await etcd.pause(1);
    await etcd.pause(2);
    const t1 = performance.now();
    await assert.rejects(
      within(4000, clients[1].get("/k", { deadline: new Date(Date.now() + 1500) })),
      EtcdDeadlineError,
    );
    assert.ok(performance.now() - t1 < 2500, `${(performance.now() - t1).toFixed(0)} ms`);
  } finally {
    for (const c of clients) c.close();
    for (const i of [0, 1, 2]) etcd.resume(i);
    await etcd.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("etcd over https://: only --etcd-ca is trusted, not the roots the process trusts besides", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-etcdtls-" });
  const { ours, theirs } = await oursAndTheirsTls(dir);
  // An impostor with a certificate for 127.0.0.1 from a CA the client process trusts as a root.
  const ac = new AbortController();
  const impostor = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(theirs.cert),
    key: await Deno.readTextFile(theirs.key),
    signal: ac.signal,
    onListen: () => {},
  }, () => Response.json({ kvs: [{ key: btoa("/k"), value: btoa("from the impostor") }] }));
  const script = `${dir}/client.ts`;
  await Deno.writeTextFile(
    script,
    `import { EtcdHttp } from ${
      JSON.stringify(new URL("../../src/sources/etcd_http.ts", import.meta.url).href)
    };
const c = new EtcdHttp({ endpoints: ["https://127.0.0.1:${impostor.addr.port}"],
  tls: { ca: Deno.readTextFileSync(${JSON.stringify(ours.ca)}) } });
try { console.log(await c.get("/k", { deadline: new Date(Date.now() + 3000) })); }
catch (err) { console.log("refused: " + (err as Error).message); }
finally { c.close(); }
`,
  );
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-prompt", "--allow-read", "--allow-net", script],
      // The other CA among the process's roots, as a public CA is by default.
      env: { DENO_CERT: theirs.ca, NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.match(text, /^refused: .*(unable to verify|certificate)/s);
  } finally {
    ac.abort();
    await impostor.finished;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("etcd over fetch: an attempt never runs past the call's deadline", async () => {
  const etcd = await startEtcd(1);
  // One member, the default 3 s for an attempt, and a call given 800 ms.
  const client = new EtcdHttp({ endpoints: etcd.endpoints });
  try {
    await client.put("/k", "v");
    await etcd.pause(0);
    const t0 = performance.now();
    await assert.rejects(
      within(4000, client.get("/k", { deadline: new Date(Date.now() + 800) })),
      EtcdDeadlineError,
    );
    const took = performance.now() - t0;
    assert.ok(took < 1300, `${took.toFixed(0)} ms for an 800 ms deadline`);
  } finally {
    client.close();
    etcd.resume(0);
    await etcd.stop();
  }
});
