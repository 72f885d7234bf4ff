/**
 * Unit tests for src/fs/handles.ts: handles bound to the capability that
 * opened them, their limits, revocation and expiry. Handles hold real file
 * descriptors on a temp file; a closed descriptor no longer answers fstat.
 */

import assert from "node:assert/strict";
import { closeSync, fstatSync, openSync } from "node:fs";
import { HandleTable } from "../../src/fs/handles.ts";
import { newCapId, rfc3339 } from "../../src/token/claims.ts";
import { makeCap, throwsStrata, withTempDir } from "./support.ts";

/** Whether `fd` is still an open descriptor. */
function isOpen(fd: number): boolean {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

/** Runs `fn` with an opener of fresh descriptors on a temp file; closes any left open. */
async function withFiles(fn: (open: () => number) => void | Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    const path = `${dir}/f.txt`;
    Deno.writeTextFileSync(path, "content");
    const fds: number[] = [];
    try {
      await fn(() => {
        const fd = openSync(path, "r");
        fds.push(fd);
        return fd;
      });
    } finally {
      for (const fd of fds) {
        try {
          closeSync(fd);
        } catch { /* closed by the table */ }
      }
    }
  });
}

Deno.test("HandleTable: a handle is returned only to the capability that opened it", async () => {
  await withFiles((open) => {
    // given a handle opened by cap A
    const table = new HandleTable();
    const a = makeCap();
    const b = makeCap();
    const fd = open();
    const id = table.add(a, fd, "/srv/x");
    // then A gets it back with its descriptor and path
    assert.match(id, /^h\d+$/);
    assert.equal(table.get(id, a).path, "/srv/x");
    assert.equal(table.get(id, a).fd, fd);
    // and B gets NOT_FOUND, worded as for a handle that does not exist
    const other = throwsStrata(() => table.get(id, b), "NOT_FOUND");
    const missing = throwsStrata(() => table.get("h999", a), "NOT_FOUND");
    assert.equal(other.message.replace(id, "ID"), missing.message.replace("h999", "ID"));
    // and B cannot close it either
    throwsStrata(() => table.close(id, b), "NOT_FOUND");
    assert.equal(table.size, 1);
    assert.ok(isOpen(fd));
    table.closeAll();
  });
});

Deno.test("HandleTable: close by the owner closes the descriptor and forgets the handle", async () => {
  await withFiles((open) => {
    const table = new HandleTable();
    const a = makeCap();
    const fd = open();
    const id = table.add(a, fd, "/srv/x");
    table.close(id, a);
    assert.ok(!isOpen(fd));
    assert.equal(table.size, 0);
    throwsStrata(() => table.get(id, a), "NOT_FOUND");
  });
});

Deno.test("HandleTable: handle ids are not reused", async () => {
  await withFiles((open) => {
    const table = new HandleTable();
    const a = makeCap();
    const first = table.add(a, open(), "/1");
    table.close(first, a);
    const second = table.add(a, open(), "/2");
    assert.notEqual(second, first);
    table.closeAll();
  });
});

Deno.test("HandleTable: the per-capability limit is RESOURCE_EXHAUSTED and closes the refused descriptor", async () => {
  await withFiles((open) => {
    // given a limit of two handles per capability, both used
    const table = new HandleTable({ perCapability: 2 });
    const a = makeCap();
    table.add(a, open(), "/1");
    table.add(a, open(), "/2");
    // when a third is added
    const third = open();
    throwsStrata(
      () => table.add(a, third, "/3"),
      "RESOURCE_EXHAUSTED",
      /already has 2 open handles; close some with fs\.close/,
    );
    // then its descriptor is not leaked, and other capabilities are not affected
    assert.ok(!isOpen(third));
    table.add(makeCap(), open(), "/4");
    assert.equal(table.size, 3);
    table.closeAll();
  });
});

Deno.test("HandleTable: closing a handle frees a slot of the per-capability limit", async () => {
  await withFiles((open) => {
    const table = new HandleTable({ perCapability: 1 });
    const a = makeCap();
    const id = table.add(a, open(), "/1");
    throwsStrata(() => table.add(a, open(), "/2"), "RESOURCE_EXHAUSTED");
    table.close(id, a);
    table.add(a, open(), "/2");
    assert.equal(table.size, 1);
    table.closeAll();
  });
});

Deno.test("HandleTable: the total limit is RESOURCE_EXHAUSTED across capabilities", async () => {
  await withFiles((open) => {
    const table = new HandleTable({ total: 2 });
    table.add(makeCap(), open(), "/1");
    table.add(makeCap(), open(), "/2");
    const fd = open();
    throwsStrata(
      () => table.add(makeCap(), fd, "/3"),
      "RESOURCE_EXHAUSTED",
      /too many open handles/,
    );
    assert.ok(!isOpen(fd));
    table.closeAll();
  });
});

Deno.test("HandleTable: revoking an ancestor closes the handles of every capability delegated from it", async () => {
  await withFiles((open) => {
    // given handles of root, of a child delegated from root, and of an unrelated capability
    const table = new HandleTable();
    const root = makeCap();
    const child = makeCap({ chain: [root.capId], parent: root.capId });
    const other = makeCap();
    const [r, c, o] = [open(), open(), open()];
    table.add(root, r, "/r");
    const cid = table.add(child, c, "/c");
    const oid = table.add(other, o, "/o");
    // when root is revoked
    const closed = table.revoke([root.capId]);
    // then both its handle and the child's are closed at once, the unrelated one is not
    assert.equal(closed, 2);
    assert.ok(!isOpen(r));
    assert.ok(!isOpen(c));
    assert.ok(isOpen(o));
    throwsStrata(() => table.get(cid, child), "NOT_FOUND");
    assert.equal(table.get(oid, other).path, "/o");
    // and revoking an unknown id closes nothing
    assert.equal(table.revoke([newCapId()]), 0);
    table.closeAll();
  });
});

Deno.test("HandleTable: revoking only the child leaves the parent's handles open", async () => {
  await withFiles((open) => {
    const table = new HandleTable();
    const root = makeCap();
    const child = makeCap({ chain: [root.capId], parent: root.capId });
    const rfd = open();
    table.add(root, rfd, "/r");
    table.add(child, open(), "/c");
    assert.equal(table.revoke([child.capId]), 1);
    assert.equal(table.size, 1);
    assert.ok(isOpen(rfd));
    table.closeAll();
  });
});

Deno.test("HandleTable.sweep: closes handles whose token expired, keeps live ones", async () => {
  await withFiles((open) => {
    // given a handle of an expired capability and one of a live capability
    const table = new HandleTable();
    const now = Date.now();
    const expired = makeCap({ exp: rfc3339(now - 1000) });
    const live = makeCap({ exp: rfc3339(now + 3600_000) });
    const [e, l] = [open(), open()];
    table.add(expired, e, "/e");
    table.add(live, l, "/l");
    // when swept now, then only the expired one is closed
    assert.equal(table.sweep(now), 1);
    assert.ok(!isOpen(e));
    assert.ok(isOpen(l));
    assert.equal(table.size, 1);
    // and once the live one's token expires, it goes too
    assert.equal(table.sweep(now + 3600_000), 1);
    assert.ok(!isOpen(l));
  });
});

Deno.test("HandleTable.sweep: closes handles left idle past idleMs, and use keeps them alive", async () => {
  await withFiles((open) => {
    // given two handles used just now, with a one-minute idle limit
    const table = new HandleTable({ idleMs: 60_000 });
    const cap = makeCap({ exp: rfc3339(Date.now() + 24 * 3600_000) });
    const idle = open();
    table.add(cap, idle, "/idle");
    const now = Date.now();
    // then a sweep within the minute keeps them, and one after closes them
    assert.equal(table.sweep(now + 30_000), 0);
    assert.equal(table.sweep(now + 61_000), 1);
    assert.ok(!isOpen(idle));
    assert.equal(table.size, 0);
  });
});

Deno.test("HandleTable.closeAll: closes every handle", async () => {
  await withFiles((open) => {
    const table = new HandleTable();
    const fds = [open(), open(), open()];
    for (const fd of fds) table.add(makeCap(), fd, "/x");
    table.closeAll();
    assert.equal(table.size, 0);
    assert.deepEqual(fds.map(isOpen), [false, false, false]);
  });
});

Deno.test("HandleTable: a delegation tree shares one limit, below the root token", async () => {
  await withFiles((open) => {
    // given a tenant T delegated from the operator O, and T's two children
    const table = new HandleTable({ perCapability: 2, perTree: 3 });
    const o = makeCap();
    const t = makeCap({ chain: [o.capId], parent: o.capId });
    const under = [o.capId, t.capId];
    const c1 = makeCap({ chain: under, parent: t.capId });
    const c2 = makeCap({ chain: under, parent: t.capId });
    const first = table.add(c1, open(), "/1");
    table.add(c1, open(), "/2");
    table.add(c2, open(), "/3");
    // when a child opens a fourth handle in the tree
    const fd = open();
    throwsStrata(
      () => table.add(c2, fd, "/4"),
      "RESOURCE_EXHAUSTED",
      new RegExp(`delegation tree of capability ${t.capId} already has 3 open handles`),
    );
    assert.ok(!isOpen(fd));
    // then another tenant of the same operator, and the operator itself, still open
    table.add(makeCap({ chain: [o.capId], parent: o.capId }), open(), "/5");
    table.add(o, open(), "/6");
    // and closing a handle of the tree frees its slot
    table.close(first, c1);
    table.add(c2, open(), "/7");
    table.closeAll();
  });
});
