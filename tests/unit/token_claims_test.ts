/**
 * Unit tests for src/token/claims.ts: strict parsing of a verified payload
 * (issuer, audience, times, shape, chain) and the time helpers.
 */

import assert from "node:assert/strict";
import {
  AUDIENCE,
  type Claims,
  ClaimsError,
  MAX_CHAIN,
  newCapId,
  parseClaims,
  parseRfc3339,
  rfc3339,
} from "../../src/token/claims.ts";
import { ISSUER, makeClaims } from "./support.ts";

type Reason = ClaimsError["reason"];

/** Parses `payload`, which must fail with `reason`; returns the error. */
function refused(payload: unknown, reason: Reason, message?: RegExp): ClaimsError {
  try {
    parseClaims(payload, { issuer: ISSUER });
  } catch (err) {
    assert.ok(err instanceof ClaimsError, `expected ClaimsError, got ${err}`);
    assert.equal(err.reason, reason, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`payload was accepted; expected ${reason}`);
}

function withField(field: string, value: unknown): Record<string, unknown> {
  return { ...makeClaims(), [field]: value };
}

Deno.test("parseClaims: a well-formed payload becomes a capability with parsed times and lineage", () => {
  // given claims of a delegated token with a chain of two ancestors
  const a = newCapId();
  const b = newCapId();
  const claims = makeClaims({ chain: [a, b], parent: b });
  // when parsed
  const cap = parseClaims(claims, { issuer: ISSUER });
  // then ids, times and lineage (ancestors first, then itself) are set
  assert.equal(cap.capId, claims.jti);
  assert.equal(cap.expMs, Date.parse(claims.exp));
  assert.equal(cap.nbfMs, Date.parse(claims.nbf));
  assert.deepEqual(cap.lineage, [a, b, claims.jti]);
  assert.deepEqual(cap.claims, claims);
});

Deno.test("parseClaims: a root token's lineage is just itself", () => {
  const claims = makeClaims();
  assert.deepEqual(parseClaims(claims, { issuer: ISSUER }).lineage, [claims.jti]);
});

Deno.test("parseClaims: a wrong issuer is wrong_issuer and names both issuers", () => {
  refused(
    withField("iss", "identity@elsewhere"),
    "wrong_issuer",
    /identity@elsewhere.*identity@unit/,
  );
  refused(withField("iss", undefined), "wrong_issuer");
});

Deno.test("parseClaims: a wrong audience is wrong_audience", () => {
  refused(withField("aud", "other"), "wrong_audience", new RegExp(AUDIENCE));
  refused(withField("aud", ["strata"]), "wrong_audience");
});

Deno.test("parseClaims: a jti that is not 32 hex digits is malformed", () => {
  for (const jti of [undefined, 5, "abc", "A".repeat(32), "g".repeat(32), "a".repeat(33)]) {
    refused(withField("jti", jti), "malformed_claims", /jti/);
  }
});

Deno.test("parseClaims: exp, nbf and iat must be RFC 3339 times", () => {
  for (const field of ["exp", "nbf", "iat"]) {
    for (
      const bad of [
        undefined,
        1_700_000_000,
        "2030-01-01",
        "2030-01-01 00:00:00Z",
        "2030-13-40T00:00:00Z",
        "tomorrow",
      ]
    ) {
      refused(withField(field, bad), "malformed_claims", new RegExp(`${field} is not an RFC 3339`));
    }
  }
});

Deno.test("parseClaims: sub, service, rights and actions must have their types", () => {
  refused(withField("sub", 5), "malformed_claims", /sub/);
  refused(withField("service", ["fs"]), "malformed_claims", /service/);
  refused(withField("rights", "fs.read"), "malformed_claims", /rights/);
  refused(withField("rights", ["fs.read", 7]), "malformed_claims", /rights/);
  refused(withField("rights", Array(65).fill("fs.read")), "malformed_claims", /rights/);
  refused(withField("actions", undefined), "malformed_claims", /actions/);
});

Deno.test("parseClaims: constraints must be an object with string fields", () => {
  refused(withField("constraints", []), "malformed_claims", /constraints/);
  refused(withField("constraints", "x"), "malformed_claims", /constraints/);
  refused(withField("constraints", { path_prefix: 5 }), "malformed_claims", /path_prefix/);
  refused(withField("constraints", { rate_limit: 5 }), "malformed_claims", /rate_limit/);
});

Deno.test("parseClaims: rate_buckets must be a short list of {cap_id, rate_limit}", () => {
  const bucket = { cap_id: newCapId(), rate_limit: "5rps" };
  for (
    const bad of [
      "5rps",
      [{ cap_id: "nothex", rate_limit: "5rps" }],
      [{ cap_id: newCapId(), rate_limit: 5 }],
      [null],
      Array.from({ length: MAX_CHAIN + 2 }, () => bucket),
    ]
  ) {
    refused(
      withField("constraints", { rate_limit: "5rps", rate_buckets: bad }),
      "malformed_claims",
      /rate_buckets/,
    );
  }
  const ok = makeClaims({ constraints: { rate_limit: "5rps", rate_buckets: [bucket] } });
  assert.deepEqual(parseClaims(ok, { issuer: ISSUER }).claims.constraints.rate_buckets, [bucket]);
});

Deno.test("parseClaims: a payload without constraints has none (claims.constraints is {})", () => {
  // given claims with no constraints field at all
  const payload: Record<string, unknown> = { ...makeClaims() };
  delete payload.constraints;
  // when parsed, it is accepted (constraints default to none)
  const cap = parseClaims(payload, { issuer: ISSUER });
  // then the capability's claims carry an empty constraints object, as the Claims type promises
  assert.deepEqual(cap.claims.constraints, {});
});

Deno.test("parseClaims: a bad chain or parent is malformed", () => {
  const a = newCapId();
  const b = newCapId();
  // a chain entry that is not a capability id
  refused(withField("chain", ["not-an-id"]), "malformed_claims", /chain/);
  refused(withField("chain", a), "malformed_claims", /chain/);
  // a chain longer than MAX_CHAIN
  refused(
    withField("chain", Array.from({ length: MAX_CHAIN + 1 }, newCapId)),
    "malformed_claims",
    /chain/,
  );
  // a parent that is not the last entry of the chain
  refused({ ...makeClaims({ chain: [a, b] }), parent: a }, "malformed_claims", /parent/);
  refused({ ...makeClaims(), parent: a }, "malformed_claims", /parent/);
  // while a chain of exactly MAX_CHAIN ids is fine
  const full = Array.from({ length: MAX_CHAIN }, newCapId);
  const cap = parseClaims(makeClaims({ chain: full, parent: full.at(-1) }), { issuer: ISSUER });
  assert.equal(cap.lineage.length, MAX_CHAIN + 1);
});

Deno.test("parseClaims: a payload that is not an object is malformed", () => {
  for (const p of [null, "x", 5, [makeClaims()]]) refused(p, "malformed_claims", /not an object/);
});

Deno.test("rfc3339: formats UTC with whole seconds", () => {
  assert.equal(rfc3339(0), "1970-01-01T00:00:00Z");
  assert.equal(rfc3339(1999), "1970-01-01T00:00:01Z");
  assert.equal(rfc3339(Date.UTC(2030, 5, 15, 12, 30, 45, 999)), "2030-06-15T12:30:45Z");
});

Deno.test("parseRfc3339: parses Z, offsets and fractions; NaN for anything else", () => {
  assert.equal(parseRfc3339("2030-06-15T12:30:45Z"), Date.UTC(2030, 5, 15, 12, 30, 45));
  assert.equal(parseRfc3339("2030-06-15T14:30:45+02:00"), Date.UTC(2030, 5, 15, 12, 30, 45));
  assert.equal(parseRfc3339("2030-06-15T12:30:45.250Z"), Date.UTC(2030, 5, 15, 12, 30, 45, 250));
  for (const bad of ["2030-06-15", "2030-06-15T12:30:45", "2030-06-15t12:30:45z", 5, null]) {
    assert.ok(Number.isNaN(parseRfc3339(bad)), String(bad));
  }
  // a round trip through rfc3339 is exact to the second
  const t = Date.UTC(2031, 0, 2, 3, 4, 5);
  assert.equal(parseRfc3339(rfc3339(t)), t);
});

Deno.test("newCapId: 32 lowercase hex digits, different every time", () => {
  const ids = new Set(Array.from({ length: 100 }, newCapId));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/);
});

Deno.test("makeClaims (test support) builds claims parseClaims accepts", () => {
  // a guard for every other test that builds tokens from makeClaims
  const claims: Claims = makeClaims();
  assert.equal(parseClaims(claims, { issuer: ISSUER }).capId, claims.jti);
});
