/**
 * Unit tests for src/ctl/errors.ts: exit codes, hints and the JSON form of
 * strata-ctl's failures.
 */

import assert from "node:assert/strict";
import {
  CtlError,
  errorLine,
  EXIT,
  hintFor,
  refusal,
  unknownName,
  usage,
} from "../../src/ctl/errors.ts";

Deno.test("refusal: exit 1, the service's error as JSON, and a hint", () => {
  // given an UNAUTHENTICATED answer without a reason
  const err = refusal({ code: 2, name: "UNAUTHENTICATED", message: "token: no token" });
  // then it exits 1 and says how to pass a token
  assert.ok(err instanceof CtlError);
  assert.equal(err.exit, EXIT.REFUSED);
  assert.equal(err.message, "token: no token");
  assert.deepEqual(err.json, {
    code: 2,
    name: "UNAUTHENTICATED",
    message: "token: no token",
    hint: "pass a token with -token or STRATA_TOKEN, or check it with `strata-ctl token inspect`",
  });
});

Deno.test("refusal: the registry's NOT_FOUND names its listing itself, so no second pointer", () => {
  const message = "service nope is not registered; registry.list (`strata-ctl registry list`) " +
    "shows what is";
  const err = refusal({ code: 4, name: "NOT_FOUND", message }, "registry.resolve");
  assert.equal(err.hint, undefined);
  assert.equal(errorLine(err.message, err.hint), `strata-ctl: ${message}`);
  // fs's does not: strata-ctl says where to look
  const fs = refusal({ code: 4, name: "NOT_FOUND", message: "path: /x: no such file" }, "fs.open");
  assert.match(fs.hint ?? "", /strata-ctl fs ls/);
});

Deno.test("hintFor: the reason decides first", () => {
  const hint = (reason: string, name = "UNAUTHENTICATED") =>
    hintFor({ name: name as "UNAUTHENTICATED", details: { reason } });
  assert.match(hint("expired"), /strata-ctl token issue/);
  assert.match(hint("revoked"), /strata-ctl token issue/);
  assert.match(hint("missing_right", "PERMISSION_DENIED"), /token inspect.*right/);
  assert.match(hint("outside_prefix", "PERMISSION_DENIED"), /path prefix/);
  assert.match(hint("strata_private", "PERMISSION_DENIED"), /Strata's own .*never served/);
  assert.match(hint("rate_limited", "RESOURCE_EXHAUSTED"), /rate limit/);
});

Deno.test("hintFor: unendorsed_key names cluster endorse too (a rotated-in key of an endorsed node)", () => {
  const hint = hintFor({ name: "UNAUTHENTICATED", details: { reason: "unendorsed_key" } });
  assert.match(hint, /strata-ctl cluster join NODE/);
  assert.match(hint, /cluster endorse NODE/);
  assert.doesNotMatch(hint, /node is not endorsed/);
});

Deno.test("hintFor: NOT_FOUND points at the listing of the service that said it", () => {
  assert.match(hintFor({ name: "NOT_FOUND" }, "fs.open"), /strata-ctl fs ls/);
  assert.match(hintFor({ name: "NOT_FOUND" }, "supervisor.svc.start"), /strata-ctl svc list/);
  assert.match(hintFor({ name: "NOT_FOUND" }, "registry.resolve"), /strata-ctl registry list/);
  assert.equal(hintFor({ name: "NOT_FOUND" }), "check the name or path");
});

Deno.test("hintFor: every error name has something to try", () => {
  for (
    const name of [
      "INVALID_ARGUMENT",
      "UNAUTHENTICATED",
      "PERMISSION_DENIED",
      "NOT_FOUND",
      "INTERNAL",
      "UNAVAILABLE",
      "RESOURCE_EXHAUSTED",
      "CONFLICT",
    ] as const
  ) {
    assert.ok(hintFor({ name }).length > 10, name);
  }
});

Deno.test("usage: exit 2, name USAGE, with or without a hint", () => {
  const e = usage("fs get needs PATH", "usage: strata-ctl fs get PATH");
  assert.equal(e.exit, EXIT.USAGE);
  assert.deepEqual(e.json, {
    name: "USAGE",
    message: "fs get needs PATH",
    hint: "usage: strata-ctl fs get PATH",
  });
  assert.deepEqual(usage("bad").json, { name: "USAGE", message: "bad" });
});

Deno.test("unknownName: 'did you mean' when something is near, else the fallback", () => {
  assert.equal(
    unknownName("unknown command stauts", { near: "status", otherwise: "see --help" }).hint,
    "did you mean status?",
  );
  assert.equal(
    unknownName("unknown command zzz", { near: undefined, otherwise: "see --help" }).hint,
    "see --help",
  );
});

Deno.test("errorLine: 'strata-ctl: what went wrong; what to try'", () => {
  assert.equal(errorLine("it broke", "try again"), "strata-ctl: it broke; try again");
  assert.equal(errorLine("it broke"), "strata-ctl: it broke");
});

Deno.test("hintFor: no token at all says where the operator token comes from", () => {
  const hint = hintFor({ name: "UNAUTHENTICATED", details: { reason: "no_token" } });
  assert.match(hint, /operator token.*--state-dir/);
});

Deno.test("hintFor: a node cut off from etcd is not told to start a running service", () => {
  for (const reason of ["partitioned", "etcd_unreachable"]) {
    for (const method of ["fs.list", "identity.revoke"]) {
      const hint = hintFor({ name: "UNAVAILABLE", details: { reason } }, method);
      assert.doesNotMatch(hint, /svc start/);
      assert.match(hint, /cannot reach etcd.*strata-ctl cluster status/);
    }
  }
});
