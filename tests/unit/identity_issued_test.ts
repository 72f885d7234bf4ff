/**
 * Unit tests for src/identity/issued.ts: the record of issued capabilities
 * is kept across a reopen, forgets expired ones, stays within its bound,
 * survives a torn last line, and removes or moves forward the segments of
 * records that died.
 */

import assert from "node:assert/strict";
import { IssuedBook, type IssuedRecord, SEGMENT_LINES } from "../../src/identity/issued.ts";

/** The numbers from..to. */
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function rec(id: number, exp: number, chain: string[] = []): IssuedRecord {
  const capId = id.toString(16).padStart(32, "0");
  return { cap_id: capId, sub: "t", service: "fs", rights: ["fs.list"], iat: 0, exp, chain };
}

function files(dir: string) {
  return { issuedDir: `${dir}/issued`, issuedLog: `${dir}/issued.log` };
}

/** The segment files in `dir`/issued, oldest first. */
function segments(dir: string): string[] {
  return [...Deno.readDirSync(`${dir}/issued`)]
    .map((e) => e.name)
    .filter((n) => /^[0-9]+\.log$/.test(n))
    .sort((a, b) => parseInt(a) - parseInt(b))
    .map((n) => `${dir}/issued/${n}`);
}

/** The one segment in `dir`/issued. */
function onlySegment(dir: string): string {
  const all = segments(dir);
  assert.equal(all.length, 1, all.join(" "));
  return all[0];
}

/** How many lines the segments hold. */
function lineCount(dir: string): number {
  return segments(dir).reduce(
    (n, path) => n + Deno.readTextFileSync(path).split("\n").filter((l) => l !== "").length,
    0,
  );
}

/** Adds records `from`..`to`, expiring at `exp(i)`, written at each segment's end. */
function addInSegments(book: IssuedBook, from: number, to: number, exp: (i: number) => number) {
  for (let i = from; i <= to; i++) {
    book.add(rec(i, exp(i)));
    if (i % SEGMENT_LINES === 0) book.flush();
  }
}

/** Two minutes on: the records that lived a minute are pruned, then `ids` added and written. */
function laterAdd(book: IssuedBook, now: number, ids: number[]): number {
  const later = now + 120_000;
  book.prune(later);
  for (const i of ids) book.add(rec(i, Math.floor(now / 1000) + 3600));
  book.flush();
  return later;
}

/** A record opened in `dir`/inner, whose folder is then removed: its writes fail until it is back. */
function bookWithoutFolder(dir: string): { book: IssuedBook; inner: string; exp: number } {
  const inner = `${dir}/inner`;
  Deno.mkdirSync(inner);
  const book = IssuedBook.open(files(inner));
  Deno.removeSync(inner, { recursive: true });
  return { book, inner, exp: Math.floor(Date.now() / 1000) + 60 };
}

Deno.test("IssuedBook: kept across a reopen (0600), expired ones dropped, a torn line skipped", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const now = 1_000_000_000_000;
    const book = IssuedBook.open(files(dir), { now });
    book.add(rec(1, now / 1000 + 60));
    book.add(rec(2, now / 1000 + 10, [rec(1, 0).cap_id]));
    book.add(rec(3, now / 1000 + 60));
    book.close();
    assert.equal(Deno.statSync(onlySegment(dir)).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(`${dir}/issued`).mode! & 0o777, 0o700);
    Deno.writeTextFileSync(onlySegment(dir), '{"cap_id":"torn', { append: true });
    const later = IssuedBook.open(files(dir), { now: now + 30_000 });
    assert.deepEqual(later.list({ now: now + 30_000 }).map((r) => r.cap_id), [
      rec(1, 0).cap_id,
      rec(3, 0).cap_id,
    ]);
    // written again: the expired and the torn lines are gone
    assert.equal(lineCount(dir), 2);
    later.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: a tree is the capability and those whose chain holds it", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const book = IssuedBook.open(files(dir));
    const a = rec(1, exp);
    book.add(a);
    book.add(rec(2, exp, [a.cap_id]));
    book.add(rec(3, exp, [a.cap_id, rec(2, 0).cap_id]));
    book.add(rec(4, exp));
    assert.deepEqual(book.list({ tree: rec(2, 0).cap_id }).map((r) => r.cap_id), [
      rec(2, 0).cap_id,
      rec(3, 0).cap_id,
    ]);
    assert.equal(book.list({ tree: a.cap_id }).length, 3);
    book.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: bounded; expired ones go first, then the oldest, and it says how many", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const nowSec = Math.floor(Date.now() / 1000);
    const book = IssuedBook.open(files(dir), { max: 200 });
    book.add(rec(1, nowSec - 1)); // already expired: pruned for room first
    for (let i = 2; i <= 200; i++) book.add(rec(i, nowSec + 60));
    book.add(rec(201, nowSec + 60));
    assert.equal(book.dropped, 0);
    assert.equal(book.size, 200);
    book.add(rec(202, nowSec + 60));
    assert.equal(book.dropped, 2);
    assert.equal(book.list()[0].cap_id, rec(4, 0).cap_id);
    book.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: between scans for expired records, a full one drops the oldest, counting only live ones", () => {
  const dir = Deno.makeTempDirSync();
  try {
    // given a full record of 100 (one dropped a turn) that has just scanned for expired ones
    const nowSec = Math.floor(Date.now() / 1000);
    const book = IssuedBook.open(files(dir), { max: 100 });
    for (let i = 1; i <= 101; i++) book.add(rec(i, nowSec + 60));
    assert.equal(book.dropped, 1);
    // when its oldest record is one that has expired, and another is added
    const expired = { ...rec(2, nowSec - 1) };
    book.add(expired); // replaces record 2 in place: still the oldest
    book.add(rec(102, nowSec + 60));
    // then the expired one made the room and is not counted as a dropped live record
    assert.equal(book.size, 100);
    assert.equal(book.dropped, 1);
    assert.equal(book.has(rec(2, 0).cap_id), false);
    book.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: listed from the file and from lines not yet written, each record's latest line", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const book = IssuedBook.open(files(dir));
    for (let i = 1; i <= 3; i++) book.add(rec(i, exp));
    // given three records not yet written, then written
    assert.deepEqual(book.list().map((r) => r.cap_id), [1, 2, 3].map((i) => rec(i, 0).cap_id));
    book.flush();
    assert.equal(lineCount(dir), 3);
    // when one more is added and the second is recorded again with other rights
    book.add(rec(4, exp));
    book.add({ ...rec(2, exp), rights: ["fs.read"] });
    // then each is listed once, in the order first issued, as last recorded
    const listed = book.list();
    assert.deepEqual(listed.map((r) => r.cap_id), [1, 2, 3, 4].map((i) => rec(i, 0).cap_id));
    assert.deepEqual(listed[1].rights, ["fs.read"]);
    book.close();
    const again = IssuedBook.open(files(dir));
    assert.deepEqual(again.list()[1].rights, ["fs.read"]);
    assert.equal(again.list().length, 4);
    again.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: a write that fails keeps the records listed, and the next one writes them", () => {
  const dir = Deno.makeTempDirSync();
  try {
    // given a record whose folder is gone when its line is written
    const { book: lost, inner, exp } = bookWithoutFolder(dir);
    lost.add(rec(1, exp));
    lost.flush();
    // then it is still listed
    assert.deepEqual(lost.list().map((r) => r.cap_id), [rec(1, 0).cap_id]);
    // and once the folder is back, closing writes it
    Deno.mkdirSync(inner);
    lost.close();
    assert.deepEqual(
      IssuedBook.open(files(inner)).list().map((r) => r.cap_id),
      [rec(1, 0).cap_id],
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: a segment whose records have all died is removed whole", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const book = IssuedBook.open(files(dir), { max: 100 });
    // given a full segment, then half of another, with only the last 100 records held
    const n = SEGMENT_LINES + SEGMENT_LINES / 2;
    for (let i = 1; i <= SEGMENT_LINES; i++) book.add(rec(i, exp));
    book.flush();
    const first = onlySegment(dir);
    for (let i = SEGMENT_LINES + 1; i <= n; i++) book.add(rec(i, exp));
    book.flush();
    // then the first is gone and the second holds its lines, the last 100 of them listed
    assert.deepEqual(segments(dir).length, 1);
    assert.notEqual(onlySegment(dir), first);
    assert.equal(lineCount(dir), SEGMENT_LINES / 2);
    const ids = Array.from({ length: 100 }, (_, i) => rec(n - 99 + i, 0).cap_id);
    assert.deepEqual(book.list().map((r) => r.cap_id), ids);
    book.close();
    // and a reopen writes the live ones again, one line each
    const again = IssuedBook.open(files(dir), { max: 100 });
    assert.deepEqual(again.list().map((r) => r.cap_id), ids);
    assert.equal(lineCount(dir), 100);
    again.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: expired records are forgotten as records are written, and their segment goes", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const nowSec = Math.floor(Date.now() / 1000);
    const book = IssuedBook.open(files(dir));
    // given a segment of records that have expired, in a record far from full
    addInSegments(book, 1, SEGMENT_LINES, () => nowSec - 1);
    // when more are written a second later (expired ones are looked for once a second)
    await new Promise((r) => setTimeout(r, 1100));
    addInSegments(book, SEGMENT_LINES + 1, SEGMENT_LINES + 10, () => nowSec + 3600);
    book.flush();
    // then the expired ones are forgotten and their segment removed
    assert.equal(book.size, 10);
    assert.equal(segments(dir).length, 1);
    book.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: a long-lived record holds its own segment, not those after it", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const now = Date.now();
    const nowSec = Math.floor(now / 1000);
    const book = IssuedBook.open(files(dir));
    // given a record that lives an hour among a first segment of ones that live a minute, then
    // two more segments of those
    addInSegments(book, 1, 3 * SEGMENT_LINES, (i) => nowSec + (i === 1 ? 3600 : 60));
    const [first] = segments(dir);
    const ino = Deno.statSync(first).ino;
    // when the short ones have expired and more are written
    const later = laterAdd(book, now, range(10_001, 10_010));
    // then the second and third are removed, and the first kept as it was
    const left = segments(dir);
    assert.equal(left.length, 2, left.join(" "));
    assert.equal(left[0], first);
    assert.equal(Deno.statSync(first).ino, ino);
    assert.equal(book.list({ now: later }).length, 11);
    book.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: records that outlive those around them are written again in their place, and the lines stay within twice the live ones", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const now = Date.now();
    const nowSec = Math.floor(now / 1000);
    const book = IssuedBook.open(files(dir));
    // given three segments of which one record in ten lives an hour, the others a minute
    const n = 3 * SEGMENT_LINES;
    addInSegments(book, 1, n, (i) => nowSec + (i % 10 === 0 ? 3600 : 60));
    // when the short ones have expired and more are issued
    const later = laterAdd(book, now, range(n + 1, n + 10));
    // then the lines are within bounds, and every live record is listed once, as issued
    const live = n / 10 + 10;
    assert.equal(book.size, live);
    assert.ok(lineCount(dir) <= 2 * live + 1000, `${lineCount(dir)} lines`);
    const ids = [...range(1, n / 10).map((i) => 10 * i), ...range(n + 1, n + 10)]
      .map((i) => rec(i, 0).cap_id);
    assert.deepEqual(book.list({ now: later }).map((r) => r.cap_id), ids);
    book.close();
    const again = IssuedBook.open(files(dir), { now: later });
    assert.deepEqual(again.list({ now: later }).map((r) => r.cap_id), ids);
    again.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: a record recorded again keeps its latest line when its earlier one's segment is merged", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const now = Date.now();
    const nowSec = Math.floor(now / 1000);
    const book = IssuedBook.open(files(dir));
    // given two segments of short-lived records, each with long-lived ones (record 1 among
    // them), and record 1 recorded again with other rights in a third
    const long = new Set([1, 2, SEGMENT_LINES + 1]);
    addInSegments(book, 1, 2 * SEGMENT_LINES, (i) => nowSec + (long.has(i) ? 3600 : 60));
    const [first] = segments(dir);
    book.add({ ...rec(1, nowSec + 3600), rights: ["fs.read"] });
    // when the short ones expire and the first two, sparse, are merged into the second's place
    const later = laterAdd(book, now, [10_001]);
    const left = segments(dir);
    assert.equal(left.length, 2, left.join(" "));
    assert.ok(!left.includes(first));
    // then the merged one holds records 2 and 1001, not record 1's earlier line
    const merged = Deno.readTextFileSync(left[0]).trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(merged.map((r) => r.cap_id), [
      rec(2, 0).cap_id,
      rec(SEGMENT_LINES + 1, 0).cap_id,
    ]);
    // and record 1 is listed once, with its latest rights, now and after a reopen
    const one = (list: IssuedRecord[]) => list.filter((r) => r.cap_id === rec(1, 0).cap_id);
    assert.deepEqual(one(book.list({ now: later })).map((r) => r.rights), [["fs.read"]]);
    book.close();
    const again = IssuedBook.open(files(dir), { now: later });
    assert.deepEqual(one(again.list({ now: later })).map((r) => r.rights), [["fs.read"]]);
    assert.equal(again.list({ now: later }).length, 4);
    again.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: a record recorded again and again holds one line's worth of segments, and its latest expiry decides after a reopen", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const now = Date.now();
    const nowSec = Math.floor(now / 1000);
    const book = IssuedBook.open(files(dir));
    // given one record recorded 5,000 times
    for (let i = 1; i <= 5000; i++) {
      book.add({ ...rec(1, nowSec + 3600), rights: [`r${i}`] });
      if (i % 500 === 0) book.flush();
    }
    // then the segments of its earlier lines are gone
    assert.ok(lineCount(dir) <= 2 * book.size + 1000, `${lineCount(dir)} lines`);
    assert.deepEqual(book.list().map((r) => r.rights), [["r5000"]]);
    // and recorded last with a shorter life, it is gone after a reopen once that has passed
    book.add(rec(1, nowSec + 60));
    book.close();
    const again = IssuedBook.open(files(dir), { now: now + 120_000 });
    assert.deepEqual(again.list({ now: now + 120_000 }), []);
    again.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: the single issued.log of earlier versions is read into segments and removed", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const nowSec = Math.floor(Date.now() / 1000);
    const lines = [rec(1, nowSec + 60), rec(2, nowSec - 1), rec(3, nowSec + 60)]
      .map((r) => JSON.stringify(r) + "\n");
    Deno.writeTextFileSync(`${dir}/issued.log`, lines.join(""), { mode: 0o600 });
    const book = IssuedBook.open(files(dir));
    assert.deepEqual(book.list().map((r) => r.cap_id), [rec(1, 0).cap_id, rec(3, 0).cap_id]);
    assert.equal(lineCount(dir), 2);
    assert.throws(() => Deno.statSync(`${dir}/issued.log`), Deno.errors.NotFound);
    book.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: a line cut short by a failed write stays apart from the whole line written after it", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    // given a write that failed and left part of the record's line in the file
    const { book, inner, exp } = bookWithoutFolder(dir);
    book.add(rec(1, exp));
    book.flush();
    Deno.mkdirSync(`${inner}/issued`, { recursive: true });
    Deno.writeTextFileSync(
      `${inner}/issued/1.log`,
      `{"cap_id":"${rec(1, 0).cap_id}","sub":"t","ser`,
    );
    // when the next write goes through (a second later)
    await new Promise((r) => setTimeout(r, 1100));
    book.flush();
    // then the record is listed, now and after a reopen
    assert.deepEqual(book.list().map((r) => r.cap_id), [rec(1, 0).cap_id]);
    book.close();
    assert.deepEqual(
      IssuedBook.open(files(inner)).list().map((r) => r.cap_id),
      [rec(1, 0).cap_id],
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: lines that cannot be written past 4 MiB are dropped and counted", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { book, exp } = bookWithoutFolder(dir);
    // given 3,000 records of about 2 KB each that cannot be written
    for (let i = 1; i <= 3000; i++) book.add({ ...rec(i, exp), sub: "s".repeat(2000) });
    book.flush();
    // then every record still held is listed, and the others are counted as dropped
    const listed = book.list().length;
    assert.ok(listed < 3000 && listed > 1000, `${listed} listed`);
    assert.equal(book.size, listed);
    assert.equal(book.dropped, 3000 - listed);
    assert.equal(book.has(rec(1, 0).cap_id), false);
    book.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: the records stay listed when the file's path is removed while identity runs", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const book = IssuedBook.open(files(dir));
    book.add(rec(1, exp));
    book.flush();
    Deno.removeSync(onlySegment(dir));
    book.add(rec(2, exp));
    book.flush();
    assert.deepEqual(book.list().map((r) => r.cap_id), [rec(1, 0).cap_id, rec(2, 0).cap_id]);
    book.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: the folder removed while identity runs: made again, and the open segment's lines kept", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const exp = Math.floor(Date.now() / 1000) + 3600;
    // given a record opened on a segment it will append to, its folder removed before it does
    const first = IssuedBook.open(files(dir));
    first.add(rec(1, exp));
    first.close();
    const reopened = IssuedBook.open(files(dir));
    Deno.removeSync(`${dir}/issued`, { recursive: true });
    reopened.add(rec(2, exp));
    reopened.close();
    // then the folder is made again and the new record written (the removed one is lost)
    assert.deepEqual(IssuedBook.open(files(dir)).list().map((r) => r.cap_id), [rec(2, 0).cap_id]);
    // given a segment open for writing when its folder is removed
    const book = IssuedBook.open(files(dir));
    for (let i = 3; i <= SEGMENT_LINES + 102; i++) {
      book.add(rec(i, exp));
      if (i % 100 === 0) book.flush();
      if (i === 100) Deno.removeSync(`${dir}/issued`, { recursive: true });
    }
    book.add(rec(SEGMENT_LINES + 103, exp));
    book.flush(); // a new segment: the one written while removed is written again
    assert.equal(book.list().length, SEGMENT_LINES + 102);
    book.close();
    // then every record of that segment is listed, now and after a reopen
    const again = IssuedBook.open(files(dir));
    assert.equal(again.list().length, SEGMENT_LINES + 102);
    again.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: a segment with nothing to drop is kept as it is; one with a loose mode or a cut last line is written again", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const book = IssuedBook.open(files(dir));
    for (let i = 1; i <= 3; i++) book.add(rec(i, exp));
    book.close();
    let path = onlySegment(dir);
    const ino = Deno.statSync(path).ino;
    // given every line a live record: the same file, appended to
    const kept = IssuedBook.open(files(dir));
    assert.equal(Deno.statSync(path).ino, ino);
    kept.add(rec(4, exp));
    kept.close();
    assert.equal(onlySegment(dir), path);
    assert.equal(Deno.statSync(path).ino, ino);
    const ids = [1, 2, 3, 4].map((i) => rec(i, 0).cap_id);
    assert.deepEqual(IssuedBook.open(files(dir)).list().map((r) => r.cap_id), ids);
    // given a mode another user could read: written again, 0600
    Deno.chmodSync(path, 0o644);
    IssuedBook.open(files(dir)).close();
    path = onlySegment(dir);
    assert.notEqual(Deno.statSync(path).ino, ino);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    // given another hard link to it, or a setgid bit: written again, a file of its own, 0600
    const ino2 = Deno.statSync(path).ino;
    Deno.linkSync(path, `${dir}/other`);
    IssuedBook.open(files(dir)).close();
    path = onlySegment(dir);
    assert.notEqual(Deno.statSync(path).ino, ino2);
    assert.equal(Deno.statSync(path).nlink, 1);
    Deno.chmodSync(path, 0o2600);
    const ino3 = Deno.statSync(path).ino;
    IssuedBook.open(files(dir)).close();
    path = onlySegment(dir);
    assert.notEqual(Deno.statSync(path).ino, ino3);
    assert.equal(Deno.statSync(path).mode! & 0o7777, 0o600);
    // given a folder others may enter: 0700 again
    Deno.chmodSync(`${dir}/issued`, 0o755);
    IssuedBook.open(files(dir)).close();
    assert.equal(Deno.statSync(`${dir}/issued`).mode! & 0o777, 0o700);
    // given a last line without its newline: written again, whole lines only
    const text = Deno.readTextFileSync(path);
    Deno.writeTextFileSync(path, text.slice(0, -1));
    const cut = IssuedBook.open(files(dir));
    cut.add(rec(5, exp));
    cut.close();
    assert.deepEqual(
      IssuedBook.open(files(dir)).list().map((r) => r.cap_id),
      [...ids, rec(5, 0).cap_id],
    );
    // given a record listed twice: one line each
    path = onlySegment(dir);
    Deno.writeTextFileSync(path, Deno.readTextFileSync(path).split("\n")[0] + "\n", {
      append: true,
    });
    IssuedBook.open(files(dir)).close();
    assert.equal(lineCount(dir), 5);
    // given a symlink in the folder's place: refused, not followed
    Deno.removeSync(`${dir}/issued`, { recursive: true });
    Deno.mkdirSync(`${dir}/elsewhere`);
    Deno.symlinkSync(`${dir}/elsewhere`, `${dir}/issued`);
    assert.throws(() => IssuedBook.open(files(dir)), /is not a folder/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
