/**
 * Unit tests for src/runtime/audit.ts: batched JSON-line audit events, and
 * that secrets never reach the log.
 */

import assert from "node:assert/strict";
import { Audit, DENIED_RATE } from "../../src/runtime/audit.ts";
import { ManualClock } from "../../src/runtime/clock.ts";
import { withTempDir } from "./support.ts";

function lines(path: string): Record<string, unknown>[] {
  return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

Deno.test("Audit: an event becomes one JSON line with time, name, program and fields", async () => {
  await withTempDir((dir) => {
    // given an audit log in a temp state dir
    const path = `${dir}/audit.log`;
    const audit = new Audit({ path, program: "fs", stderr: false });
    try {
      // when an event is recorded and flushed
      audit.event("fs.open", { cap_id: "c1", path: "/srv/x", handle: "h1" });
      audit.flush();
      // then the file holds it as one line
      const [line] = lines(path);
      assert.equal(line.event, "fs.open");
      assert.equal(line.program, "fs");
      assert.equal(line.cap_id, "c1");
      assert.equal(line.path, "/srv/x");
      assert.ok(!Number.isNaN(Date.parse(line.ts as string)));
      assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    } finally {
      audit.close();
    }
  });
});

Deno.test("Audit: token, secret and auth fields are never written; undefined fields are dropped", async () => {
  await withTempDir((dir) => {
    const path = `${dir}/audit.log`;
    const audit = new Audit({ path, program: "identity", stderr: false });
    try {
      audit.event("cap.issued", {
        cap_id: "c2",
        token: "v4.public.SECRET",
        secret: "k4.secret.SECRET",
        auth: { token: "SECRET" },
        parent: undefined,
      });
      audit.flush();
      const text = Deno.readTextFileSync(path);
      assert.doesNotMatch(text, /SECRET/);
      const [line] = lines(path);
      assert.equal(line.cap_id, "c2");
      assert.equal("parent" in line, false);
    } finally {
      audit.close();
    }
  });
});

Deno.test("Audit: a line is exactly the JSON of {ts, event, program, ...fields} without secrets or undefined", async () => {
  await withTempDir((dir) => {
    const path = `${dir}/audit.log`;
    const clock = new ManualClock();
    const audit = new Audit({ path, program: "fs", stderr: false, clock });
    const cases: Record<string, unknown>[] = [
      {},
      { cap_id: "c1", offset: 0, bytes: 4096, eof: true, none: null },
      {
        path: '/srv/"quoted"\n\u0001 ✓',
        rights: ["fs.read", "fs.list"],
        nested: { a: [1, { b: 2 }] },
      },
      { "2": "integer-like keys first", b: 1, a: 2, "1": "x" },
      { f: () => 1, nan: NaN, when: new Date(0), dropped: undefined, token: "SECRET" },
      { program: "spoofed", ts: "then", event: "other", cap_id: "c3" },
    ];
    try {
      for (const fields of cases) audit.event("fs.read", fields);
      audit.flush();
      // then each line is the JSON the object form gives, byte for byte
      const ts = new Date(clock.now()).toISOString();
      const expected = cases.map((fields) => {
        const clean = Object.fromEntries(
          Object.entries(fields).filter(([k, v]) =>
            v !== undefined && !["token", "secret", "auth"].includes(k)
          ),
        );
        return JSON.stringify({ ts, event: "fs.read", program: "fs", ...clean });
      });
      assert.deepEqual(Deno.readTextFileSync(path).split("\n").slice(0, -1), expected);
    } finally {
      audit.close();
    }
  });
});

Deno.test("Audit: events are batched until flush (or close)", async () => {
  await withTempDir((dir) => {
    const path = `${dir}/audit.log`;
    const audit = new Audit({ path, program: "fs", stderr: false });
    audit.event("a");
    audit.event("b");
    // nothing is written before the batch is flushed
    assert.equal(Deno.readTextFileSync(path), "");
    // close flushes the batch in order
    audit.close();
    assert.deepEqual(lines(path).map((l) => l.event), ["a", "b"]);
  });
});

Deno.test("Audit: a batch past 64 KiB is written at once", async () => {
  await withTempDir((dir) => {
    const path = `${dir}/audit.log`;
    const audit = new Audit({ path, program: "fs", stderr: false });
    try {
      audit.event("big", { blob: "x".repeat(70 * 1024) });
      assert.equal(lines(path).length, 1);
    } finally {
      audit.close();
    }
  });
});

Deno.test("Audit: a log whose folder does not exist yet does not throw", async () => {
  await withTempDir((dir) => {
    const audit = new Audit({
      path: `${dir}/missing/audit.log`,
      program: "registry",
      stderr: false,
    });
    audit.event("registry.register", { service: "fs" });
    audit.close();
    assert.throws(() => Deno.statSync(`${dir}/missing`), Deno.errors.NotFound);
  });
});

Deno.test("Audit: lines flushed before the log's folder exists are kept and written once it does", async () => {
  await withTempDir((dir) => {
    // given a log whose folder does not exist yet (fs starts ahead of identity, which makes it)
    const clock = new ManualClock();
    const path = `${dir}/state/audit.log`;
    const audit = new Audit({ path, program: "fs", stderr: false, clock });
    try {
      // when refusals are flushed, then the folder is made, and a second passes
      audit.event("auth.denied", { reason: "revoked" });
      audit.event("auth.denied", { reason: "no_token" });
      audit.flush();
      assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
      Deno.mkdirSync(`${dir}/state`);
      audit.event("fs.list", { path: "/x" });
      clock.advance(1000);
      // then every line is in the file, in order, without a new event to push them
      const events = Deno.readTextFileSync(path).trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(events.map((e) => e.reason ?? e.event), ["revoked", "no_token", "fs.list"]);
    } finally {
      audit.close();
    }
  });
});

Deno.test("Audit: a flood of refusals is logged in part and counted, not written out in full", async () => {
  await withTempDir((dir) => {
    // Given an audit log
    const clock = new ManualClock();
    const audit = new Audit({ path: `${dir}/audit.log`, program: "fs", stderr: false, clock });
    // When 1,000 refusals arrive at once
    for (let i = 0; i < 1000; i++) {
      audit.event("auth.denied", { method: "fs.list", reason: "no_token" });
    }
    audit.event("fs.open", { cap_id: "c" });
    // and the second after them passes (the summary is due then, and written by close)
    clock.advance(1000);
    audit.close();
    // Then only the burst is written, with a count of the rest, and other events are untouched
    const lines = Deno.readTextFileSync(`${dir}/audit.log`).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const denied = lines.filter((l) => l.event === "auth.denied").length;
    assert.equal(denied, DENIED_RATE.burst);
    const summary = lines.find((l) => l.event === "auth.denied.suppressed");
    assert.equal(summary?.count, 1000 - denied);
    assert(lines.some((l) => l.event === "fs.open"));
  });
});

Deno.test("Audit: the log is rotated to audit.log.1 past its size, and writers follow", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/audit.log`;
    const a = new Audit({ path, program: "a", stderr: false, maxBytes: 1024 });
    const b = new Audit({ path, program: "b", stderr: false, maxBytes: 1024 });
    for (let i = 0; i < 40; i++) {
      a.event("fs.read", { n: i, pad: "x".repeat(40) });
      a.flush();
      b.event("fs.read", { n: i, pad: "y".repeat(40) });
      b.flush();
      await Promise.all([a.rotated, b.rotated]);
    }
    // A rotation ends with the lines of its flush in the rotated file: one more line each.
    a.event("fs.read", { n: 40 });
    a.flush();
    b.event("fs.read", { n: 40 });
    b.flush();
    a.close();
    b.close();
    // Neither file grows much past the limit, and both writers' lines are in the current one.
    assert(Deno.statSync(path).size < 4096, `${Deno.statSync(path).size}`);
    assert(Deno.statSync(`${path}.1`).size > 0);
    const current = Deno.readTextFileSync(path);
    assert(current.includes('"program":"a"') && current.includes('"program":"b"'));
  });
});

Deno.test("Audit: four writers passing the size together leave one whole rotated log", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/audit.log`;
    const max = 4096;
    const writers = ["a", "b", "c", "d"].map((program) =>
      new Audit({ path, program, stderr: false, maxBytes: max })
    );
    let rotated = false;
    for (let i = 0; i < 60; i++) {
      for (const w of writers) w.event("fs.read", { n: i, pad: "x".repeat(200) });
      for (const w of writers) w.flush();
      await Promise.all(writers.map((w) => w.rotated));
      let old: Deno.FileInfo | undefined;
      try {
        old = Deno.statSync(`${path}.1`);
      } catch { /* not rotated yet */ }
      if (old) rotated = true;
      // Once rotated, there is always a whole rotated log (not removed, not a stub).
      if (rotated) assert(old && old.size > max, `audit.log.1: ${old?.size} bytes, round ${i}`);
    }
    assert(rotated);
    for (const w of writers) w.close();
  });
});

Deno.test("Audit: a rotation waits for another writer's under way, then only follows it", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/audit.log`;
    const w = new Audit({ path, program: "a", stderr: false, maxBytes: 1024 });
    w.event("fs.read", { n: 1, pad: "x".repeat(2000) });
    w.flush();
    // Another writer is rotating: it holds the log's lock.
    const original = Deno.statSync(path).ino;
    const other = Deno.openSync(path, { read: true, write: true });
    other.lockSync(true);
    try {
      w.event("fs.read", { n: 2 });
      w.flush(); // past the size: this writer's rotation starts and waits
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(Deno.statSync(path).ino, original, "renamed while another writer held the lock");
      Deno.renameSync(path, `${path}.1`);
      Deno.writeTextFileSync(path, "", { mode: 0o600 });
    } finally {
      other.unlockSync();
      other.close();
    }
    const fresh = Deno.statSync(path).ino;
    await w.rotated;
    // The other writer's rotation stands: nothing renamed again, no rotated log removed.
    assert.equal(Deno.statSync(`${path}.1`).ino, original);
    assert.equal(Deno.statSync(path).ino, fresh);
    assert.match(Deno.readTextFileSync(`${path}.1`), /"n":2/);
    // And this writer follows, into the new file.
    w.event("fs.read", { n: 3 });
    w.flush();
    w.close();
    assert.match(Deno.readTextFileSync(path), /"n":3/);
  });
});

Deno.test("Audit: a writer closed amid its rotation keeps others out until the rotation is done", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/audit.log`;
    Deno.writeTextFileSync(`${path}.1`, "the rotation before\n", { mode: 0o600 });
    const remove = Deno.remove;
    const { promise: released, resolve: release } = Promise.withResolvers<void>();
    // A's removal of the old rotated log is held, as a 64 MiB unlink takes a while.
    let removes = 0;
    (Deno as { remove: typeof Deno.remove }).remove = async (p, o) => {
      if (++removes === 1) await released;
      return remove(p, o);
    };
    try {
      const a = new Audit({ path, program: "a", stderr: false, maxBytes: 1024 });
      const b = new Audit({ path, program: "b", stderr: false, maxBytes: 1024 });
      a.event("fs.read", { n: 1, pad: "x".repeat(1100) });
      a.flush();
      a.event("fs.read", { n: 2 });
      a.flush(); // past the size: A rotates, held in its remove
      await new Promise((r) => setTimeout(r, 50));
      b.event("fs.read", { n: 3 });
      b.flush(); // B's rotation waits for A's
      const ino = Deno.statSync(path).ino;
      a.close(); // A stops while its rotation is under way
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(Deno.statSync(path).ino, ino, "B rotated while A's rotation was under way");
      release();
      await Promise.all([a.rotated, b.rotated]);
      b.event("fs.read", { n: 4 });
      b.close();
      // One rotation: every line is in the rotated log or the new one, none lost.
      const text = Deno.readTextFileSync(`${path}.1`) + Deno.readTextFileSync(path);
      for (const n of [1, 2, 3, 4]) assert.match(text, new RegExp(`"n":${n}[,}]`));
      assert.doesNotMatch(text, /the rotation before/);
    } finally {
      (Deno as { remove: typeof Deno.remove }).remove = remove;
    }
  });
});

Deno.test("Audit: the refusal allowance refills at its rate as the clock moves", async () => {
  await withTempDir((dir) => {
    // Given an audit log whose burst of refusals is spent
    const clock = new ManualClock();
    const audit = new Audit({ path: `${dir}/audit.log`, program: "fs", stderr: false, clock });
    for (let i = 0; i < DENIED_RATE.burst + 1; i++) audit.event("auth.denied", { n: i });
    // When half a second passes and more refusals arrive
    clock.advance(500);
    for (let i = 0; i < DENIED_RATE.perSecond; i++) audit.event("auth.denied", { n: 1000 + i });
    audit.close();
    // Then half a second's worth of them is written, and no more
    const denied = lines(`${dir}/audit.log`).filter((l) => l.event === "auth.denied");
    assert.equal(denied.length, DENIED_RATE.burst + DENIED_RATE.perSecond / 2);
  });
});
