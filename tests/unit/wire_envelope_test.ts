/**
 * Unit tests for src/wire/envelope.ts: request validation names the field at
 * fault and salvages the req_id; response builders and parsing.
 */

import assert from "node:assert/strict";
import {
  EnvelopeError,
  errorResponse,
  MAX_REQ_ID,
  MAX_TOKEN,
  okResponse,
  parseRequest,
  parseResponse,
} from "../../src/wire/envelope.ts";
import { StrataError } from "../../src/wire/errors.ts";

const encoder = new TextEncoder();

function body(value: unknown): Uint8Array {
  return encoder.encode(typeof value === "string" ? value : JSON.stringify(value));
}

/** Parses `raw`, which must fail; returns the EnvelopeError. */
function refused(raw: Uint8Array): EnvelopeError {
  try {
    parseRequest(raw);
  } catch (err) {
    assert.ok(err instanceof EnvelopeError, `expected EnvelopeError, got ${err}`);
    assert.equal(err.errorName, "INVALID_ARGUMENT");
    assert.equal(err.code, 1);
    return err;
  }
  assert.fail("the request was accepted");
}

Deno.test("parseRequest: a full valid request comes back with exactly its fields", () => {
  // given a request with auth, params and an extra top-level field
  const raw = body({
    v: 1,
    req_id: "c1-17",
    method: "fs.read",
    auth: { token: "v4.public.x" },
    params: { handle: "h1" },
    extra: true,
  });
  // when parsed
  const req = parseRequest(raw);
  // then it holds the envelope fields only
  assert.deepEqual(req, {
    v: 1,
    req_id: "c1-17",
    method: "fs.read",
    auth: { token: "v4.public.x" },
    params: { handle: "h1" },
  });
});

Deno.test("parseRequest: auth and params are optional, null means absent", () => {
  // given a minimal request and one with null auth and params
  const min = parseRequest(body({ v: 1, req_id: "a", method: "fs.health" }));
  const nulls = parseRequest(
    body({ v: 1, req_id: "b", method: "supervisor.svc.list", auth: null, params: null }),
  );
  // then neither has auth or params
  assert.deepEqual(min, { v: 1, req_id: "a", method: "fs.health" });
  assert.deepEqual(nulls, { v: 1, req_id: "b", method: "supervisor.svc.list" });
});

Deno.test("parseRequest: a body that is not UTF-8 is refused as a frame error with no req_id", () => {
  // given invalid UTF-8 bytes
  const err = refused(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
  // then the message names the frame, and no req_id can be echoed
  assert.match(err.message, /^frame: .*UTF-8/);
  assert.equal(err.reqId, "");
});

Deno.test("parseRequest: invalid UTF-8 anywhere is refused, and U+FFFD sent as such is kept", () => {
  // given invalid bytes inside a string value (a lone continuation byte, a cut sequence, an overlong form)
  const enc = new TextEncoder();
  const ok = enc.encode('{"v":1,"req_id":"r","method":"fs.list","params":{"path":"/a\uFFFDb"}}');
  for (const bad of [[0x80], [0xe2, 0x82], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
    const at = ok.indexOf(0x61); // the "a" of the path
    const raw = new Uint8Array([...ok.subarray(0, at), ...bad, ...ok.subarray(at)]);
    // then each is refused as a frame error
    assert.match(refused(raw).message, /^frame: body is not valid UTF-8/, String(bad));
  }
  // and a valid U+FFFD (EF BF BD) is read as the character it is
  assert.equal(parseRequest(ok).params?.path, "/a\uFFFDb");
});

Deno.test("parseRequest: a body that is not JSON is refused as a frame error", () => {
  const err = refused(body("{not json"));
  assert.match(err.message, /^frame: .*JSON/);
  assert.equal(err.reqId, "");
});

Deno.test("parseRequest: JSON that is not an object is refused naming the request", () => {
  // given an array, a string and null
  for (const raw of ["[1,2]", '"text"', "null", "42"]) {
    const err = refused(body(raw));
    // then each is refused as "request:"
    assert.match(err.message, /^request: must be a JSON object/, raw);
    assert.equal(err.reqId, "");
  }
});

Deno.test("parseRequest: a wrong or missing v names v and still salvages the req_id", () => {
  // given v = 2 and no v, each with a readable req_id
  const wrong = refused(body({ v: 2, req_id: "keep-me", method: "fs.list" }));
  const missing = refused(body({ req_id: "keep-me-too", method: "fs.list" }));
  const text = refused(body({ v: "1", req_id: "r3", method: "fs.list" }));
  // then the message starts with "v:" and the req_id is kept for the response
  assert.match(wrong.message, /^v: protocol version must be 1 \(got 2\)/);
  assert.equal(wrong.reqId, "keep-me");
  assert.match(missing.message, /^v: .*got nothing/);
  assert.equal(missing.reqId, "keep-me-too");
  assert.match(text.message, /^v: /);
  assert.equal(text.reqId, "r3");
});

Deno.test("parseRequest: a missing, empty or non-string req_id names req_id", () => {
  for (const reqId of [undefined, "", 17, null, ["a"]]) {
    // given a request with that req_id
    const err = refused(body({ v: 1, req_id: reqId, method: "fs.list" }));
    // then req_id is named and nothing is salvaged
    assert.match(err.message, /^req_id: must be a non-empty string/, String(reqId));
    assert.equal(err.reqId, "");
  }
});

Deno.test("parseRequest: req_id of MAX_REQ_ID characters is accepted, one more is refused and not echoed", () => {
  // given req_ids at and over the limit
  const ok = parseRequest(body({ v: 1, req_id: "r".repeat(MAX_REQ_ID), method: "fs.list" }));
  const err = refused(body({ v: 1, req_id: "r".repeat(MAX_REQ_ID + 1), method: "fs.list" }));
  // then the longest passes and the too-long one is named without being echoed back
  assert.equal(ok.req_id.length, MAX_REQ_ID);
  assert.match(err.message, /^req_id: must be at most 128 characters/);
  assert.equal(err.reqId, "");
});

Deno.test("parseRequest: a method not of the form service.action names method and salvages req_id", () => {
  for (
    const method of [undefined, 5, "", "nodot", "FS.list", "fs.", ".list", "a.b.c.d.e", "fs.li st"]
  ) {
    // given a bad method
    const err = refused(body({ v: 1, req_id: "m1", method }));
    // then method is named with an example, and the req_id survives
    assert.match(
      err.message,
      /^method: must be a string of the form "service\.action"/,
      String(method),
    );
    assert.equal(err.reqId, "m1");
  }
});

Deno.test("parseRequest: methods of two to four dotted lowercase parts are accepted", () => {
  for (const method of ["fs.list", "supervisor.svc.list", "a.b.c.d", "my_svc.do_it2"]) {
    assert.equal(parseRequest(body({ v: 1, req_id: "x", method })).method, method);
  }
});

Deno.test("parseRequest: auth that is not {token: string} names auth and salvages req_id", () => {
  for (const auth of ["v4.public.x", { token: 5 }, {}, ["t"], true]) {
    // given a malformed auth
    const err = refused(body({ v: 1, req_id: "a1", method: "fs.list", auth }));
    // then auth is named
    assert.match(err.message, /^auth: must be an object \{token: string\}/, JSON.stringify(auth));
    assert.equal(err.reqId, "a1");
  }
});

Deno.test("parseRequest: a token longer than MAX_TOKEN names auth.token", () => {
  // given tokens at and over the limit
  const ok = parseRequest(
    body({ v: 1, req_id: "t", method: "fs.list", auth: { token: "t".repeat(MAX_TOKEN) } }),
  );
  const err = refused(
    body({ v: 1, req_id: "t2", method: "fs.list", auth: { token: "t".repeat(MAX_TOKEN + 1) } }),
  );
  // then the longest is kept and the one over is refused naming auth.token
  assert.equal(ok.auth?.token.length, MAX_TOKEN);
  assert.match(err.message, /^auth\.token: longer than 8192 characters/);
  assert.equal(err.reqId, "t2");
});

Deno.test("parseRequest: params that are not an object name params and salvage req_id", () => {
  for (const params of [[1, 2], "x", 3, true]) {
    // given params of the wrong type
    const err = refused(body({ v: 1, req_id: "p1", method: "fs.list", params }));
    // then params is named
    assert.match(err.message, /^params: must be a JSON object/, JSON.stringify(params));
    assert.equal(err.reqId, "p1");
  }
});

Deno.test("okResponse and errorResponse build v1 envelopes", () => {
  // given a result and an error with details
  const ok = okResponse("r1", { n: 1 });
  const err = errorResponse(
    "r2",
    new StrataError("PERMISSION_DENIED", "token: nope", { reason: "missing_right" }),
  );
  // then both carry v, req_id and ok, and the error its wire body
  assert.deepEqual(ok, { v: 1, req_id: "r1", ok: true, result: { n: 1 } });
  assert.deepEqual(err, {
    v: 1,
    req_id: "r2",
    ok: false,
    error: {
      code: 3,
      name: "PERMISSION_DENIED",
      message: "token: nope",
      details: { reason: "missing_right" },
    },
  });
});

Deno.test("parseResponse: accepts ok and error envelopes, refuses anything else", () => {
  // given two valid envelopes
  const ok = { v: 1, req_id: "a", ok: true, result: {} };
  const bad = { v: 1, req_id: "b", ok: false, error: { code: 4, name: "NOT_FOUND", message: "x" } };
  // then they come back as they are
  assert.deepEqual(parseResponse(ok), ok);
  assert.deepEqual(parseResponse(bad), bad);
  // and malformed ones are INVALID_ARGUMENT
  for (
    const raw of [
      null,
      [],
      { v: 2, req_id: "a", ok: true, result: {} },
      { v: 1, ok: true, result: {} },
      { v: 1, req_id: "a" },
      { v: 1, req_id: "a", ok: false },
      { v: 1, req_id: "a", ok: false, error: "boom" },
    ]
  ) {
    assert.throws(
      () => parseResponse(raw),
      (e: unknown) => e instanceof StrataError && e.errorName === "INVALID_ARGUMENT",
      JSON.stringify(raw),
    );
  }
});
