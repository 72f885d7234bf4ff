/**
 * Tests for src/sources/revocations.ts: the list file
 * read before each request, under the shapes identity writes it in (lines
 * longer than a read, replacements in a row, a replaced-line in the middle
 * of a read) and the ones a careless configuration leaves (a path that
 * cannot be read, a planted huge line).
 */

import assert from "node:assert/strict";
import { newCapId } from "../../src/token/claims.ts";
import { generateSigningKey, importVerifyKey } from "../../src/token/keys.ts";
import {
  LIST_CHUNK,
  type RevokedEntry,
  signRevocationList,
} from "../../src/token/revocation_set.ts";
import { FileRevocationSource, LIST_REPLACED_LINE } from "../../src/sources/revocations.ts";
import { assertStrataError, CountingLookup, ISSUER, withTempDir } from "./support.ts";

const SOON = Math.floor(Date.now() / 1000) + 3600;

/** A signing key, a lookup that knows it, and a source over `path` whose feed fills `seen`. */
async function setUp(path: string) {
  const key = await generateSigningKey();
  const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
  const source = new FileRevocationSource(path, { keys, issuer: ISSUER });
  const seen = new Set<string>();
  source.subscribe((entries) => [...entries].forEach((e) => seen.add(e.cap_id)));
  const sign = (ids: string[]) =>
    signRevocationList(key, ISSUER, ids.map((cap_id): RevokedEntry => ({ cap_id, exp: SOON })));
  return { key, keys, source, seen, sign };
}

/** Identity's replacement: the replaced-line appended, then a new file renamed over the path. */
function replace(path: string, lines: string[]): void {
  Deno.writeTextFileSync(path, `${LIST_REPLACED_LINE}\n`, { append: true });
  Deno.writeTextFileSync(`${path}.tmp`, lines.map((l) => l + "\n").join(""));
  Deno.renameSync(`${path}.tmp`, path);
}

function ids(n: number): string[] {
  return Array.from({ length: n }, () => newCapId());
}

Deno.test("a compacted line of LIST_CHUNK entries (longer than a 64 KiB read) is delivered by one catchUp", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const { source, seen, sign } = await setUp(path);
    try {
      Deno.writeTextFileSync(path, `${await sign([newCapId()])}\n`);
      assert.equal(source.catchUp(), undefined);
      const many = ids(LIST_CHUNK);
      const line = await sign(many);
      assert.ok(line.length > 64 * 1024, `line is ${line.length} bytes`);
      // appended as identity appends a batch: one write
      Deno.writeTextFileSync(path, `${line}\n`, { append: true });
      assert.equal(source.catchUp(), undefined);
      for (const id of many) assert.ok(seen.has(id));
      // and the same line as the first of a replaced file, the replaced-line mid-read
      const more = ids(LIST_CHUNK);
      const after = ids(1);
      replace(path, [await sign(more), await sign(after)]);
      assert.equal(source.catchUp(), undefined);
      for (const id of [...more, ...after]) assert.ok(seen.has(id), id);
    } finally {
      source.close();
    }
  });
});

Deno.test("a long line torn across appends at every 64 KiB boundary is delivered once ended", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const { source, seen, sign } = await setUp(path);
    try {
      Deno.writeTextFileSync(path, "");
      const many = ids(LIST_CHUNK);
      const line = await sign(many) + "\n";
      // written in pieces that straddle the reader's 64 KiB chunks
      const cuts = [1, 65535, 65536, 65537, line.length - 1, line.length];
      let at = 0;
      for (const cut of cuts) {
        Deno.writeTextFileSync(path, line.slice(at, cut), { append: true });
        at = cut;
        assert.equal(source.catchUp(), undefined);
        assert.equal(seen.size, cut === line.length ? many.length : 0, `after ${cut} bytes`);
      }
    } finally {
      source.close();
    }
  });
});

Deno.test("replacements in a row while the reader is idle (A -> B -> C) lose nothing identity wrote", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const { source, seen, sign } = await setUp(path);
    try {
      const [a, b, c, d, e] = ids(5);
      Deno.writeTextFileSync(path, `${await sign([a])}\n`);
      source.catchUp();
      // the reader stays on A; identity appends b to A, replaces A by B,
      // appends c to B, replaces B by C (which holds all), appends d
      // identity's next append, as #appendRevocation writes it
      Deno.writeTextFileSync(path, `\n${await sign([b])}\n`, { append: true });
      replace(path, [await sign([a, b])]);
      Deno.writeTextFileSync(path, `${await sign([c])}\n`, { append: true });
      replace(path, [await sign([a, b, c])]);
      Deno.writeTextFileSync(path, `${await sign([d])}\n`, { append: true });
      assert.equal(source.catchUp(), undefined);
      assert.deepEqual([...seen].sort(), [a, b, c, d].sort());
      // settled on C: the next append is read without a stat of the path
      Deno.writeTextFileSync(path, `${await sign([e])}\n`, { append: true });
      source.catchUp();
      assert.ok(seen.has(e));
    } finally {
      source.close();
    }
  });
});

/** The descriptors this process has open on files under `dir` (replaced ones too). */
function openFds(dir: string): number {
  const out = new Deno.Command("ls", { args: ["-l", `/proc/${Deno.pid}/fd`] }).outputSync();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.includes(dir)).length;
}

Deno.test("replacements do not leak descriptors, and close() releases the file", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const { source, sign } = await setUp(path);
    const line = await sign(ids(1));
    const before = openFds(dir);
    assert.equal(before, 0);
    Deno.writeTextFileSync(path, `${line}\n`);
    source.catchUp();
    assert.equal(openFds(dir), before + 1);
    for (let i = 0; i < 200; i++) {
      replace(path, [line]);
      source.catchUp();
    }
    assert.equal(openFds(dir), before + 1);
    source.close();
    assert.equal(openFds(dir), before);
  });
});

Deno.test("a list path that cannot be read fails every request closed, as UNAVAILABLE naming the file", async () => {
  // A careless configuration (the path replaced by a directory, a file of
  // another owner, EMFILE while reopening) must not let requests through
  // unjudged, nor answer INTERNAL: UNAVAILABLE says which file and why.
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const { source, seen, sign } = await setUp(path);
    try {
      const [a] = ids(1);
      Deno.writeTextFileSync(path, `${await sign([a])}\n`);
      source.catchUp();
      // replaced (with the replaced-line, so the reader reopens) by a directory
      Deno.writeTextFileSync(path, `${LIST_REPLACED_LINE}\n`, { append: true });
      Deno.removeSync(path);
      Deno.mkdirSync(path);
      let thrown: unknown;
      try {
        await source.catchUp();
      } catch (err) {
        thrown = err;
      }
      assert.ok(seen.has(a));
      assertStrataError(thrown, "UNAVAILABLE", new RegExp(`revocation list ${path}: `));
    } finally {
      source.close();
    }
  });
});

Deno.test("a planted 16 MiB line (no newline yet) costs the hot path little per request", async () => {
  // A writer of the list file (careless mode bits) can make catchUp copy the
  // growing unfinished line on every 64 KiB read: quadratic in its length
  // (256 reads, each copying 8 MiB on average). Told by the reads catchUp
  // makes (each as large as the line so far: about log2(16 MiB / 64 KiB)),
  // not by a time limit, which follows the machine's speed (this VM's page
  // faults alone took the catchUp from about 100 to 280 ms between two
  // moments of one day).
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const { source, sign } = await setUp(path);
    const readSync = Deno.FsFile.prototype.readSync;
    let reads = 0;
    try {
      Deno.writeTextFileSync(path, `${await sign(ids(1))}\n`);
      source.catchUp();
      Deno.writeTextFileSync(path, "x".repeat(16 * 1024 * 1024), { append: true });
      Deno.FsFile.prototype.readSync = function (this: Deno.FsFile, p: Uint8Array) {
        reads++;
        return readSync.call(this, p);
      };
      const t0 = performance.now();
      source.catchUp();
      const ms = performance.now() - t0;
      console.log(`catchUp over a 16 MiB unfinished line: ${reads} reads, ${ms.toFixed(1)} ms`);
      assert.ok(reads > 1 && reads <= 32, `${reads} reads`);
    } finally {
      Deno.FsFile.prototype.readSync = readSync;
      source.close();
    }
  });
});

Deno.test("a torn append (a short write of identity's, no newline) does not swallow the next batch's line", async () => {
  // A short write (ENOSPC on the runtime dir) leaves part of a line; identity
  // starts every append with a newline, so the next batch's line stands on
  // its own and is read (the torn part is skipped as no list).
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const { source, seen, sign } = await setUp(path);
    try {
      const [a, b] = ids(2);
      Deno.writeTextFileSync(path, "");
      source.catchUp();
      const first = await sign([a]);
      Deno.writeTextFileSync(path, first.slice(0, 100), { append: true });
      // identity's next append, as #appendRevocation writes it
      Deno.writeTextFileSync(path, `\n${await sign([b])}\n`, { append: true });
      source.catchUp();
      assert.ok(seen.has(b), "the whole line after a torn one is delivered");
    } finally {
      source.close();
    }
  });
});

Deno.test("cluster mode's source catches up with this node's own list file, synchronously", async () => {
  const { EtcdRevocationSource } = await import("../../src/sources/etcd_revocations.ts");
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const { source: local, keys, sign } = await setUp(path);
    const cluster = new EtcdRevocationSource({
      cluster: "review",
      // Never used by catchUp: etcd is read only by poll and the watch.
      client: {} as never,
      keys,
      localIssuer: ISSUER,
      partitionBoundMs: 60_000,
      local,
    });
    const seen: string[] = [];
    cluster.subscribe((entries) => seen.push(...[...entries].map((e) => e.cap_id)));
    try {
      const [a, b] = ids(2);
      Deno.writeTextFileSync(path, `${await sign([a])}\n`);
      assert.equal(cluster.catchUp(), undefined);
      assert.deepEqual(seen, [a]);
      replace(path, [await sign([a]), await sign([b])]);
      assert.equal(cluster.catchUp(), undefined);
      assert.ok(seen.includes(b));
    } finally {
      local.close();
    }
  });
});

Deno.test("a long line repeated in the next file written whole is not checked again; a forged one with its signature counts for nothing", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const { keys, source, sign } = await setUp(path);
    const delivered: string[] = [];
    source.subscribe((entries) => [...entries].forEach((e) => delivered.push(e.cap_id)));
    try {
      const first = ids(200);
      const line = await sign(first);
      assert.ok(line.length >= 4096, `line is ${line.length} bytes`);
      Deno.writeTextFileSync(path, `${line}\n`);
      assert.equal(source.catchUp(), undefined);
      assert.equal(delivered.length, 200);
      const checks = keys.calls;
      // The same line again first in a replaced file, then a forgery: another
      // payload before the genuine signature (it would never verify), then a new line.
      const dot = line.indexOf(".", 10);
      const planted = ids(200);
      const forgedBody = (await sign(planted)).slice(10, dot - 88) + line.slice(dot - 88, dot);
      const forged = `v4.public.${forgedBody}${line.slice(dot)}`;
      assert.notEqual(forged, line);
      const next = ids(3);
      replace(path, [line, forged, await sign(next)]);
      assert.equal(source.catchUp(), undefined);
      for (const id of planted) {
        assert.ok(!delivered.includes(id), "a forged line is never delivered");
      }
      assert.deepEqual(delivered.slice(200), next, "only the new line's entries are delivered");
      assert.equal(keys.calls - checks, 1, "only the new line is checked");
      // Still remembered one file later (the line was in the file before).
      replace(path, [line]);
      assert.equal(source.catchUp(), undefined);
      assert.equal(delivered.length, 203);
      assert.equal(keys.calls - checks, 1);
    } finally {
      source.close();
    }
  });
});

Deno.test("each file opened tells `expect` about as many entries as its full lines hold, never far fewer", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const told: number[] = [];
    const source = new FileRevocationSource(path, {
      keys,
      issuer: ISSUER,
      expect: (n) => told.push(n),
    });
    const sign = (n: number) =>
      signRevocationList(
        key,
        ISSUER,
        ids(n).map((cap_id): RevokedEntry => ({ cap_id, exp: SOON })),
        true,
      );
    try {
      // given a file of three full lines, packed, as identity writes it whole
      const lines = [await sign(LIST_CHUNK), await sign(LIST_CHUNK), await sign(LIST_CHUNK)];
      Deno.writeTextFileSync(path, lines.map((l) => l + "\n").join(""));
      source.catchUp();
      // then the count told is within a few percent above the 3,000 entries
      assert.equal(told.length, 1);
      assert.ok(told[0] >= 3 * LIST_CHUNK && told[0] < 3.1 * LIST_CHUNK, `told ${told[0]}`);
      // and appended lines tell nothing; a replaced file tells again
      Deno.writeTextFileSync(path, `${await sign(5)}\n`, { append: true });
      source.catchUp();
      assert.equal(told.length, 1);
      replace(path, [await sign(LIST_CHUNK)]);
      source.catchUp();
      assert.equal(told.length, 2);
      assert.ok(told[1] >= LIST_CHUNK && told[1] < 1.1 * LIST_CHUNK, `told ${told[1]}`);
    } finally {
      source.close();
    }
  });
});
