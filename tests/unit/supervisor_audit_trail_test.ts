/**
 * Unit tests for src/supervisor/audit_trail.ts: the last events of the trail
 * across audit.log and audit.log.1, filters, and a follower's cursor that
 * misses nothing across a rotation or a line still being written.
 */

import assert from "node:assert/strict";
import { readAudit } from "../../src/supervisor/audit_trail.ts";
import { rejectsStrata } from "./support.ts";

function line(n: number, event = "fs.read", extra: Record<string, unknown> = {}): string {
  const ts = new Date(1_700_000_000_000 + n * 1000).toISOString();
  return JSON.stringify({ ts, event, program: "fs", n, ...extra }) + "\n";
}

function append(path: string, text: string): void {
  Deno.writeTextFileSync(path, text, { append: true });
}

Deno.test("readAudit: the last events across the rotated file, filtered, oldest first", async () => {
  const dir = Deno.makeTempDirSync();
  const files = { audit: `${dir}/audit.log`, auditOld: `${dir}/audit.log.1` };
  try {
    append(files.auditOld, line(1, "cap.issued", { cap_id: "c1" }) + line(2));
    append(files.audit, line(3, "cap.revoked", { by: "c1" }) + "torn{\n" + line(4));
    const all = await readAudit(files, { lines: 10 });
    assert.deepEqual(all.events.map((e) => e.n), [1, 2, 3, 4]);
    const last = await readAudit(files, { lines: 2 });
    assert.deepEqual(last.events.map((e) => e.n), [3, 4]);
    const cap = await readAudit(files, { lines: 10, capId: "c1" });
    assert.deepEqual(cap.events.map((e) => e.n), [1, 3]);
    const prefix = await readAudit(files, { lines: 10, event: "cap" });
    assert.deepEqual(prefix.events.map((e) => e.n), [1, 3]);
    const since = await readAudit(files, { lines: 10, sinceMs: 1_700_000_003_000 });
    assert.deepEqual(since.events.map((e) => e.n), [3, 4]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("readAudit: following from a cursor misses nothing across a rotation", async () => {
  const dir = Deno.makeTempDirSync();
  const files = { audit: `${dir}/audit.log`, auditOld: `${dir}/audit.log.1` };
  try {
    append(files.audit, line(1));
    const first = await readAudit(files, { lines: 10 });
    // a line still being written is left for the next call
    append(files.audit, line(2) + line(3).slice(0, 10));
    const a = await readAudit(files, { lines: 10, after: first.next });
    assert.deepEqual(a.events.map((e) => e.n), [2]);
    append(files.audit, line(3).slice(10));
    // rotated: the rest of the old file, then the new one from its start
    Deno.renameSync(files.audit, files.auditOld);
    append(files.audit, line(4) + line(5));
    const b = await readAudit(files, { lines: 10, after: a.next });
    assert.deepEqual(b.events.map((e) => e.n), [3, 4, 5]);
    const c = await readAudit(files, { lines: 10, after: b.next });
    assert.deepEqual(c.events, []);
    // a page at a time: truncated, and the cursor picks up where it stopped
    append(files.audit, line(6) + line(7) + line(8));
    const d = await readAudit(files, { lines: 2, after: c.next });
    assert.deepEqual(d.events.map((e) => e.n), [6, 7]);
    assert.equal(d.truncated, true);
    const e = await readAudit(files, { lines: 2, after: d.next });
    assert.deepEqual(e.events.map((e) => e.n), [8]);
    await rejectsStrata(
      () => readAudit(files, { lines: 1, after: "nope" }),
      "INVALID_ARGUMENT",
      /^params\.after: expected a cursor/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
