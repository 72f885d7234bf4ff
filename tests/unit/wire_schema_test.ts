/**
 * Unit tests for src/wire/schema.ts: params validation by a declared schema.
 */

import assert from "node:assert/strict";
import { type ParamsSchema, validateParams } from "../../src/wire/schema.ts";
import { throwsStrata } from "./support.ts";

const SCHEMA: ParamsSchema = {
  path: { type: "string", minLength: 1, maxLength: 8 },
  name: {
    type: "string",
    optional: true,
    pattern: /^[a-z]+$/,
    hint: "must be lowercase letters",
  },
  code: { type: "string", optional: true, minLength: 3, pattern: /^x/ },
  limit: { type: "integer", default: 10, min: 1, max: 100 },
  offset: { type: "integer", optional: true },
  recursive: { type: "boolean", default: false },
  follow: { type: "boolean", optional: true },
  tags: { type: "string[]", optional: true, maxItems: 2, maxItemLength: 3 },
};

function check(params: Record<string, unknown> | undefined) {
  return validateParams<Record<string, unknown>>(SCHEMA, params);
}

Deno.test("validateParams: fills defaults and leaves optional fields out", () => {
  // given only the required field
  const out = check({ path: "/a" });
  // then defaults are filled (including a false boolean) and optional fields are absent
  assert.deepEqual(out, { path: "/a", limit: 10, recursive: false });
});

Deno.test("validateParams: null counts as not given", () => {
  const out = check({ path: "/a", limit: null, name: null });
  assert.deepEqual(out, { path: "/a", limit: 10, recursive: false });
});

Deno.test("validateParams: returns a new object with every given field", () => {
  // given every field
  const input = {
    path: "/a",
    name: "abc",
    code: "xyz",
    limit: 100,
    offset: -3,
    recursive: true,
    follow: false,
    tags: ["a", "bcd"],
  };
  // when validated
  const out = check(input);
  // then the values are kept and the object is a copy
  assert.deepEqual(out, input);
  assert.notEqual(out, input);
});

Deno.test("validateParams: an unknown field is refused naming it and listing the known ones", () => {
  // given a typo'd field
  const err = throwsStrata(() => check({ path: "/a", limt: 5 }), "INVALID_ARGUMENT");
  // then the message names the field and the expected names
  assert.match(err.message, /^params\.limt: unknown field; expected path, name, code, limit/);
});

Deno.test("validateParams: any field for a method without params says it takes none", () => {
  throwsStrata(
    () => validateParams({}, { x: 1 }),
    "INVALID_ARGUMENT",
    /^params\.x: this method takes no params/,
  );
  assert.deepEqual(validateParams({}, undefined), {});
});

Deno.test("validateParams: prototype-looking keys are unknown fields, not schema lookups", () => {
  const params = JSON.parse('{"path":"/a","__proto__":{"x":1}}');
  throwsStrata(() => check(params), "INVALID_ARGUMENT", /^params\.__proto__: unknown field/);
  throwsStrata(
    () => check({ path: "/a", constructor: 1 }),
    "INVALID_ARGUMENT",
    /^params\.constructor: unknown field/,
  );
});

Deno.test("validateParams: a missing required field is named", () => {
  throwsStrata(() => check({}), "INVALID_ARGUMENT", /^params\.path: required$/);
  throwsStrata(() => check(undefined), "INVALID_ARGUMENT", /^params\.path: required$/);
});

Deno.test("validateParams: string type, length bounds and pattern", () => {
  throwsStrata(() => check({ path: 5 }), "INVALID_ARGUMENT", /^params\.path: must be a string$/);
  throwsStrata(() => check({ path: "" }), "INVALID_ARGUMENT", /^params\.path: must not be empty$/);
  throwsStrata(
    () => check({ path: "/123456789" }),
    "INVALID_ARGUMENT",
    /^params\.path: must be at most 8 characters$/,
  );
  throwsStrata(
    () => check({ path: "/a", code: "xy" }),
    "INVALID_ARGUMENT",
    /^params\.code: must be at least 3 characters$/,
  );
  // the hint is shown when there is one, the pattern otherwise
  throwsStrata(
    () => check({ path: "/a", name: "ABC" }),
    "INVALID_ARGUMENT",
    /^params\.name: must be lowercase letters$/,
  );
  throwsStrata(
    () => check({ path: "/a", code: "abc" }),
    "INVALID_ARGUMENT",
    /^params\.code: must match \/\^x\/$/,
  );
  // and the bounds themselves are allowed
  assert.equal(check({ path: "/2345678" }).path, "/2345678");
});

Deno.test("validateParams: integer type and bounds", () => {
  for (const limit of [1.5, "5", NaN, Infinity, 2 ** 53, true]) {
    throwsStrata(
      () => check({ path: "/a", limit }),
      "INVALID_ARGUMENT",
      /^params\.limit: must be an integer$/,
    );
  }
  throwsStrata(
    () => check({ path: "/a", limit: 0 }),
    "INVALID_ARGUMENT",
    /^params\.limit: must be at least 1 \(got 0\)$/,
  );
  throwsStrata(
    () => check({ path: "/a", limit: 101 }),
    "INVALID_ARGUMENT",
    /^params\.limit: must be at most 100 \(got 101\)$/,
  );
  assert.equal(check({ path: "/a", limit: 1 }).limit, 1);
  assert.equal(check({ path: "/a", limit: 100 }).limit, 100);
});

Deno.test("validateParams: boolean type", () => {
  for (const recursive of ["true", 1, 0, {}]) {
    throwsStrata(
      () => check({ path: "/a", recursive }),
      "INVALID_ARGUMENT",
      /^params\.recursive: must be true or false$/,
    );
  }
});

Deno.test("validateParams: string list type, item count and item length", () => {
  throwsStrata(
    () => check({ path: "/a", tags: "a" }),
    "INVALID_ARGUMENT",
    /^params\.tags: must be an array of strings$/,
  );
  throwsStrata(
    () => check({ path: "/a", tags: ["a", "b", "c"] }),
    "INVALID_ARGUMENT",
    /^params\.tags: at most 2 items$/,
  );
  throwsStrata(
    () => check({ path: "/a", tags: ["a", 2] }),
    "INVALID_ARGUMENT",
    /^params\.tags: every item must be a string$/,
  );
  throwsStrata(
    () => check({ path: "/a", tags: ["abcd"] }),
    "INVALID_ARGUMENT",
    /^params\.tags: items must be at most 3 characters$/,
  );
  assert.deepEqual(check({ path: "/a", tags: [] }).tags, []);
});
