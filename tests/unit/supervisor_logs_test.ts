/**
 * The supervisor's log book: lines kept in order across services, bounded
 * in memory, written to 0600 files that rotate, read back after a restart,
 * and paged for followers without losing a line.
 */

import assert from "node:assert/strict";
import {
  LogBook,
  MAX_LINE_CHARS,
  MAX_LOG_BYTES,
  normalizeLine,
  pumpLines,
  RING_LINES,
} from "../../src/supervisor/logs.ts";
import { tempLayout } from "../helpers.ts";

function jsonLine(program: string, msg: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ ts: new Date().toISOString(), level: "info", program, msg, ...extra });
}

Deno.test("LogBook: lines in order across services, to files and the pass-through", async () => {
  const temp = await tempLayout();
  try {
    const passed: string[] = [];
    const book = new LogBook(temp.layout, ["a", "b"], (s, l) => passed.push(`${s} ${l}`));
    book.add("a", jsonLine("a", "one"));
    book.add("b", "a panic, not JSON");
    book.add("a", jsonLine("a", "two"));
    book.add("nope", "ignored");
    const all = book.read({ lines: 10 });
    assert.deepEqual(all.lines.map((l) => JSON.parse(l.line).msg), [
      "one",
      "a panic, not JSON",
      "two",
    ]);
    assert.equal(JSON.parse(all.lines[1].line).program, "b");
    assert.equal(passed.length, 3);
    assert.deepEqual(
      book.read({ service: "a", lines: 1 }).lines.map((l) => JSON.parse(l.line).msg),
      ["two"],
    );
    // following from a cursor returns only what came after
    book.add("b", jsonLine("b", "three"));
    const after = book.read({ lines: 10, after: all.next });
    assert.deepEqual(after.lines.map((l) => JSON.parse(l.line).msg), ["three"]);
    const dir = `${temp.layout.stateDir}/logs`;
    assert.equal(Deno.statSync(`${dir}/a.log`).mode! & 0o777, 0o600);
    assert.equal(Deno.readTextFileSync(`${dir}/a.log`).trimEnd().split("\n").length, 2);
    book.close();
    // a new book (a restarted supervisor) starts with what the files hold
    const again = new LogBook(temp.layout, ["a", "b"]);
    assert.equal(again.read({ lines: 10, service: "b" }).lines.length, 2);
    again.close();
  } finally {
    await temp.cleanup();
  }
});

Deno.test("LogBook: memory holds RING_LINES a service; a file rotates past MAX_LOG_BYTES", async () => {
  const temp = await tempLayout();
  try {
    const book = new LogBook(temp.layout, ["a"]);
    const pad = "x".repeat(4000);
    const count = Math.ceil(MAX_LOG_BYTES / 4000) + 10;
    for (let i = 0; i < count; i++) book.add("a", jsonLine("a", `line ${i}`, { pad }));
    const page = book.read({ lines: RING_LINES });
    // one answer is bounded in characters, the newest kept
    assert.ok(page.truncated);
    assert.equal(JSON.parse(page.lines.at(-1)!.line).msg, `line ${count - 1}`);
    const dir = `${temp.layout.stateDir}/logs`;
    assert.ok(Deno.statSync(`${dir}/a.log`).size <= MAX_LOG_BYTES);
    assert.ok(Deno.statSync(`${dir}/a.log.1`).size <= MAX_LOG_BYTES);
    assert.ok(Deno.statSync(`${dir}/a.log.1`).size > MAX_LOG_BYTES / 2);
    // a follower pages through everything after its cursor, losing nothing
    let after = 0;
    const seen: number[] = [];
    for (let guard = 0; guard < 100; guard++) {
      const p = book.read({ lines: RING_LINES, after });
      seen.push(...p.lines.map((l) => l.seq));
      after = p.next;
      if (!p.truncated) break;
    }
    assert.equal(seen.length, RING_LINES);
    assert.ok(seen.every((s, i) => i === 0 || s === seen[i - 1] + 1));
    book.close();
  } finally {
    await temp.cleanup();
  }
});

Deno.test("pumpLines: a child's pipe read in small pieces loses no line and splits none", async () => {
  // given a child that writes 3,000 lines and one of 6,000 characters, more than one read's bytes
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `i=0; while [ $i -lt 3000 ]; do echo "line $i é"; i=$((i+1)); done; head -c 6000 /dev/zero | tr '\\0' x; echo`,
    ],
    stdout: "piped",
  }).spawn();
  // when its stdout (a byte stream) is pumped
  const got: string[] = [];
  await pumpLines(child.stdout, (ls) => got.push(...ls));
  await child.status;
  // then every line arrives whole, in order
  assert.equal(got.length, 3001);
  for (let i = 0; i < 3000; i++) assert.equal(got[i], `line ${i} é`);
  assert.equal(got[3000], "x".repeat(6000));
});

Deno.test("pumpLines and normalizeLine: split, cut runaway lines, wrap what is not a log line", async () => {
  const got: string[] = [];
  const long = "y".repeat(MAX_LINE_CHARS + 5);
  const stream = ReadableStream.from([
    new TextEncoder().encode("first\r\nsec"),
    new TextEncoder().encode(`ond\n${long}`),
  ]);
  await pumpLines(stream, (ls) => got.push(...ls));
  assert.deepEqual(got, ["first", "second", "y".repeat(MAX_LINE_CHARS), "yyyyy"]);
  const kept = jsonLine("fs", "listening");
  assert.equal(normalizeLine("fs", kept, 0).line, kept);
  const wrapped = JSON.parse(normalizeLine("fs", "{not json", 0).line);
  assert.deepEqual(wrapped, {
    ts: "1970-01-01T00:00:00.000Z",
    level: "info",
    program: "fs",
    msg: "{not json",
  });
});
