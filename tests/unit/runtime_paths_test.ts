/**
 * Unit tests for src/runtime/paths.ts: prefix containment on normalised paths.
 */

import assert from "node:assert/strict";
import { isWithin } from "../../src/runtime/paths.ts";

Deno.test("isWithin: the prefix itself and paths below it, never a sibling with a longer name", () => {
  assert.ok(isWithin("/tmp", "/tmp"));
  assert.ok(isWithin("/tmp/a/b", "/tmp"));
  assert.ok(!isWithin("/tmpfoo", "/tmp"));
  assert.ok(!isWithin("/tmpfoo/a", "/tmp"));
  assert.ok(!isWithin("/", "/tmp"));
  assert.ok(isWithin("/anything", "/"));
});
