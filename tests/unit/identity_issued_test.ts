/**
 * Unit tests for src/identity/issued.ts: the record of issued capabilities
 * is kept across a reopen, forgets expired ones, stays within its bound and
 * survives a torn last line.
 */

import assert from "node:assert/strict";
import { IssuedBook, type IssuedRecord } from "../../src/identity/issued.ts";

function rec(id: number, exp: number, chain: string[] = []): IssuedRecord {
  const capId = id.toString(16).padStart(32, "0");
  return { cap_id: capId, sub: "t", service: "fs", rights: ["fs.list"], iat: 0, exp, chain };
}

function files(dir: string) {
  return { issuedLog: `${dir}/issued.log`, issuedLogTmp: `${dir}/issued.log.tmp` };
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
    assert.equal(Deno.statSync(`${dir}/issued.log`).mode! & 0o777, 0o600);
    Deno.writeTextFileSync(`${dir}/issued.log`, '{"cap_id":"torn', { append: true });
    const later = IssuedBook.open(files(dir), { now: now + 30_000 });
    assert.deepEqual(later.list({ now: now + 30_000 }).map((r) => r.cap_id), [
      rec(1, 0).cap_id,
      rec(3, 0).cap_id,
    ]);
    // the file was compacted: the expired and the torn lines are gone
    assert.equal(Deno.readTextFileSync(`${dir}/issued.log`).split("\n").length, 3);
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
    assert.equal(Deno.readTextFileSync(`${dir}/issued.log`).split("\n").length, 4);
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

Deno.test("IssuedBook: the file is rewritten with the live records once it holds too many lines", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const book = IssuedBook.open(files(dir), { max: 100 });
    for (let i = 1; i <= 1500; i++) book.add(rec(i, exp));
    book.close();
    const lines = Deno.readTextFileSync(`${dir}/issued.log`).split("\n").length - 1;
    assert.ok(lines <= 2 * 100 + 1000, `${lines} lines`);
    const again = IssuedBook.open(files(dir), { max: 100 });
    const ids = Array.from({ length: 100 }, (_, i) => rec(1401 + i, 0).cap_id);
    assert.deepEqual(again.list().map((r) => r.cap_id), ids);
    assert.equal(Deno.readTextFileSync(`${dir}/issued.log`).split("\n").length - 1, 100);
    again.close();
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
    Deno.mkdirSync(inner);
    Deno.writeTextFileSync(`${inner}/issued.log`, `{"cap_id":"${rec(1, 0).cap_id}","sub":"t","ser`);
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
    Deno.removeSync(`${dir}/issued.log`);
    book.add(rec(2, exp));
    book.flush();
    assert.deepEqual(book.list().map((r) => r.cap_id), [rec(1, 0).cap_id, rec(2, 0).cap_id]);
    book.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("IssuedBook: a file with nothing to drop is kept as it is; one with a loose mode or a cut last line is written again", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const exp = Math.floor(Date.now() / 1000) + 60;
    const path = `${dir}/issued.log`;
    const book = IssuedBook.open(files(dir));
    for (let i = 1; i <= 3; i++) book.add(rec(i, exp));
    book.close();
    const ino = Deno.statSync(path).ino;
    // given every line a live record: the same file, appended to
    const kept = IssuedBook.open(files(dir));
    assert.equal(Deno.statSync(path).ino, ino);
    kept.add(rec(4, exp));
    kept.close();
    assert.equal(Deno.statSync(path).ino, ino);
    const ids = [1, 2, 3, 4].map((i) => rec(i, 0).cap_id);
    assert.deepEqual(IssuedBook.open(files(dir)).list().map((r) => r.cap_id), ids);
    // given a mode another user could read: written again, 0600
    Deno.chmodSync(path, 0o644);
    IssuedBook.open(files(dir)).close();
    assert.notEqual(Deno.statSync(path).ino, ino);
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    // given another hard link to it, or a setgid bit: written again, a file of its own, 0600
    const ino2 = Deno.statSync(path).ino;
    Deno.linkSync(path, `${dir}/other`);
    IssuedBook.open(files(dir)).close();
    assert.notEqual(Deno.statSync(path).ino, ino2);
    assert.equal(Deno.statSync(path).nlink, 1);
    Deno.chmodSync(path, 0o2600);
    const ino3 = Deno.statSync(path).ino;
    IssuedBook.open(files(dir)).close();
    assert.notEqual(Deno.statSync(path).ino, ino3);
    assert.equal(Deno.statSync(path).mode! & 0o7777, 0o600);
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
    Deno.writeTextFileSync(path, Deno.readTextFileSync(path).split("\n")[0] + "\n", {
      append: true,
    });
    IssuedBook.open(files(dir)).close();
    assert.equal(Deno.readTextFileSync(path).split("\n").length - 1, 5);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
