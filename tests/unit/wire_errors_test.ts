/**
 * Unit tests for src/wire/errors.ts: codes, names, wire bodies, and the
 * mapping of anything thrown to a protocol error.
 */

import assert from "node:assert/strict";
import {
  ErrorCode,
  errorName,
  invalidArgument,
  notFound,
  permissionDenied,
  StrataError,
  toStrataError,
  unauthenticated,
} from "../../src/wire/errors.ts";

Deno.test("ErrorCode: the numeric codes are the ones api/protocol.md fixes", () => {
  assert.deepEqual({ ...ErrorCode }, {
    INVALID_ARGUMENT: 1,
    UNAUTHENTICATED: 2,
    PERMISSION_DENIED: 3,
    NOT_FOUND: 4,
    INTERNAL: 5,
    UNAVAILABLE: 6,
    RESOURCE_EXHAUSTED: 7,
    CONFLICT: 8,
  });
});

Deno.test("errorName: maps each code back to its name and unknown codes to undefined", () => {
  for (const [name, code] of Object.entries(ErrorCode)) assert.equal(errorName(code), name);
  assert.equal(errorName(0), undefined);
  assert.equal(errorName(9), undefined);
});

Deno.test("StrataError.toBody: carries code, name and message, and details only when given", () => {
  // given errors with and without details
  const plain = new StrataError("NOT_FOUND", "handle: gone");
  const detailed = new StrataError("RESOURCE_EXHAUSTED", "slow down", { retry_after_ms: 5 });
  // then their wire bodies are exactly these
  assert.deepEqual(plain.toBody(), { code: 4, name: "NOT_FOUND", message: "handle: gone" });
  assert.equal("details" in plain.toBody(), false);
  assert.deepEqual(detailed.toBody(), {
    code: 7,
    name: "RESOURCE_EXHAUSTED",
    message: "slow down",
    details: { retry_after_ms: 5 },
  });
  assert.equal(detailed.code, 7);
  assert.ok(detailed instanceof Error);
});

Deno.test("shorthands build the error they are named after", () => {
  assert.equal(invalidArgument("a").errorName, "INVALID_ARGUMENT");
  assert.equal(permissionDenied("b").errorName, "PERMISSION_DENIED");
  assert.equal(unauthenticated("c", { reason: "x" }).details?.reason, "x");
  assert.equal(notFound("d").code, 4);
});

Deno.test("toStrataError: a StrataError passes through unchanged", () => {
  const e = new StrataError("CONFLICT", "taken");
  assert.equal(toStrataError(e), e);
});

Deno.test("toStrataError: Deno's refusals and file errors become protocol errors", () => {
  // given the errors Deno throws for sandbox refusals and common file problems
  const cases: [Error, string][] = [
    [new Deno.errors.NotCapable("no"), "PERMISSION_DENIED"],
    [new Deno.errors.PermissionDenied("no"), "PERMISSION_DENIED"],
    [new Deno.errors.NotFound("gone"), "NOT_FOUND"],
    [new Deno.errors.IsADirectory("dir"), "INVALID_ARGUMENT"],
    [new Deno.errors.NotADirectory("file"), "INVALID_ARGUMENT"],
  ];
  // then each maps to its code
  for (const [err, name] of cases) assert.equal(toStrataError(err).errorName, name, err.name);
});

Deno.test("toStrataError: anything else is INTERNAL and does not leak its message", () => {
  // given a bug's error carrying a secret-looking message
  const e = toStrataError(new TypeError("cannot read secret-key-material of undefined"));
  // then the wire error is INTERNAL with a generic message
  assert.equal(e.errorName, "INTERNAL");
  assert.doesNotMatch(e.message, /secret-key-material/);
  assert.equal(toStrataError("a string").errorName, "INTERNAL");
});
