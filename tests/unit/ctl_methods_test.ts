/**
 * Unit tests for src/ctl/methods.ts: the method list and "did you mean"
 * suggestions.
 */

import assert from "node:assert/strict";
import { editDistance, METHODS, nearest } from "../../src/ctl/methods.ts";
import { SERVICE_RIGHTS } from "../../src/policy/rights.ts";

const NAMES = METHODS.map((m) => m.method);

Deno.test("nearest: fs.lsit suggests fs.list", () => {
  assert.equal(nearest("fs.lsit", NAMES), "fs.list");
});

Deno.test("nearest: other small typos find their method", () => {
  assert.equal(nearest("fs.opne", NAMES), "fs.open");
  assert.equal(nearest("registry.resolv", NAMES), "registry.resolve");
  assert.equal(nearest("identity.isue", NAMES), "identity.issue");
  assert.equal(nearest("supervisor.svc.lst", NAMES), "supervisor.svc.list");
});

Deno.test("nearest: garbage suggests nothing", () => {
  assert.equal(nearest("qwertyuiopasdfgh", NAMES), undefined);
  assert.equal(nearest("zzz", NAMES), undefined);
  assert.equal(nearest("anything", []), undefined);
});

Deno.test("editDistance: Levenshtein distance", () => {
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("abc", ""), 3);
  assert.equal(editDistance("same", "same"), 0);
  assert.equal(editDistance("fs.lsit", "fs.list"), 2);
});

Deno.test("METHODS: unique names, and every protected method is a right some service defines", () => {
  assert.equal(new Set(NAMES).size, NAMES.length);
  const rights = new Set(Object.values(SERVICE_RIGHTS).flat());
  for (const m of METHODS) {
    if (!m.protected) continue;
    // fs.close and registry.deregister are opened by fs.open and registry.register
    const right = m.method === "fs.close"
      ? "fs.open"
      : m.method === "registry.deregister"
      ? "registry.register"
      : m.method;
    assert.ok(rights.has(right), m.method);
  }
  for (const right of rights) assert.ok(NAMES.includes(right), `${right} has no CLI entry`);
});
