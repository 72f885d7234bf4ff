/**
 * Unit tests for src/policy/constraints.ts: path normalisation, prefix
 * containment and delegation by attenuation.
 */

import assert from "node:assert/strict";
import { posix } from "node:path";
import {
  attenuate,
  DEFAULT_TTL_SECONDS,
  type GrantRequest,
  normalizeAbsolute,
  rateBuckets,
} from "../../src/policy/constraints.ts";
import { newCapId, rfc3339 } from "../../src/token/claims.ts";
import type { Constraints } from "../../src/token/claims.ts";
import { makeCap, throwsStrata } from "./support.ts";

const NOW = Date.UTC(2032, 3, 1, 12, 0, 0);
const HOUR = 3600_000;

/** A parent fs capability with the given constraints, expiring `expInMs` after NOW. */
function parent(constraints: Constraints = {}, expInMs = 24 * HOUR, service = "fs") {
  return makeCap({
    service,
    rights: ["fs.list", "fs.open", "fs.read"],
    constraints,
    exp: rfc3339(NOW + expInMs),
    nbf: rfc3339(NOW - HOUR),
    iat: rfc3339(NOW - HOUR),
  }, NOW);
}

function req(overrides: Partial<GrantRequest> = {}): GrantRequest {
  return { cap_id: newCapId(), service: "fs", rights: ["fs.read"], ...overrides };
}

Deno.test("normalizeAbsolute: collapses . and .., drops a trailing slash, keeps /", () => {
  assert.equal(normalizeAbsolute("/srv/./data/../files/", "f"), "/srv/files");
  assert.equal(normalizeAbsolute("//srv//data", "f"), "/srv/data");
  assert.equal(normalizeAbsolute("/", "f"), "/");
  assert.equal(normalizeAbsolute("/..", "f"), "/");
});

Deno.test("normalizeAbsolute: gives posix.normalize's answer (less a trailing slash) for every mix of names", () => {
  // given paths built from plain names, dot names, empty names and trailing slashes
  const parts = ["a", ".", "..", "", "...", ".x", "..y", "z."];
  for (const p of parts) {
    for (const q of parts) {
      for (const r of parts) {
        for (const end of ["", "/"]) {
          const path = `/${p}/${q}/${r}${end}`;
          // then the result is the normal form, whether or not the path was normal already
          const n = posix.normalize(path);
          const want = n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
          assert.equal(normalizeAbsolute(path, "f"), want, path);
        }
      }
    }
  }
});

Deno.test("normalizeAbsolute: relative paths and NUL bytes are INVALID_ARGUMENT naming the field", () => {
  throwsStrata(
    () => normalizeAbsolute("srv/data", "params.path_prefix"),
    "INVALID_ARGUMENT",
    /^params\.path_prefix: must be an absolute path/,
  );
  throwsStrata(() => normalizeAbsolute("", "p"), "INVALID_ARGUMENT", /^p: must be an absolute/);
  throwsStrata(
    () => normalizeAbsolute("/srv/\0x", "p"),
    "INVALID_ARGUMENT",
    /^p: contains a NUL byte/,
  );
});

Deno.test("attenuate: a subset of rights is granted with the parent's service", () => {
  const g = attenuate(parent(), req({ rights: ["fs.list", "fs.read"] }), NOW);
  assert.deepEqual(g.rights, ["fs.list", "fs.read"]);
  assert.equal(g.service, "fs");
  assert.deepEqual(g.constraints, {});
});

Deno.test("attenuate: the root capability delegates any right, also one it does not list", () => {
  const root = makeCap({ service: "*", rights: ["fs.list"], exp: rfc3339(NOW + HOUR) }, NOW);
  const g = attenuate(root, req({ rights: ["fs.stat"] }), NOW);
  assert.deepEqual(g.rights, ["fs.stat"]);
  // a delegated * token (it has a parent) delegates only what it lists
  const star = makeCap({ service: "*", rights: ["fs.list"], parent: newCapId() }, NOW);
  throwsStrata(() => attenuate(star, req({ rights: ["fs.stat"] }), NOW), "PERMISSION_DENIED");
});

Deno.test("attenuate: a right the parent lacks is PERMISSION_DENIED naming rights", () => {
  const p = makeCap({ rights: ["fs.list"], exp: rfc3339(NOW + HOUR) }, NOW);
  const err = throwsStrata(
    () => attenuate(p, req({ rights: ["fs.list", "fs.read"] }), NOW),
    "PERMISSION_DENIED",
    /^params\.rights: fs\.read not held by your capability/,
  );
  assert.deepEqual(err.details, { reason: "broader_than_parent", field: "rights" });
});

Deno.test("attenuate: path_prefix inside the parent's is granted, normalised", () => {
  const g = attenuate(
    parent({ path_prefix: "/srv/data" }),
    req({ path_prefix: "/srv/data/a/../b/" }),
    NOW,
  );
  assert.equal(g.constraints.path_prefix, "/srv/data/b");
  const same = attenuate(
    parent({ path_prefix: "/srv/data" }),
    req({ path_prefix: "/srv/data" }),
    NOW,
  );
  assert.equal(same.constraints.path_prefix, "/srv/data");
});

Deno.test("attenuate: path_prefix outside the parent's (or a sibling, or via ..) is PERMISSION_DENIED", () => {
  for (const prefix of ["/srv", "/srv/database", "/srv/data/../other", "/etc"]) {
    const err = throwsStrata(
      () => attenuate(parent({ path_prefix: "/srv/data" }), req({ path_prefix: prefix }), NOW),
      "PERMISSION_DENIED",
      /^params\.path_prefix: .* is outside your capability's path_prefix \/srv\/data/,
    );
    assert.equal(err.details?.field, "path_prefix");
  }
});

Deno.test("attenuate: path_prefix is inherited when omitted, and any absolute one is allowed without a parent prefix", () => {
  assert.equal(
    attenuate(parent({ path_prefix: "/srv/data" }), req(), NOW).constraints.path_prefix,
    "/srv/data",
  );
  assert.equal(attenuate(parent(), req({ path_prefix: "/x" }), NOW).constraints.path_prefix, "/x");
  assert.equal("path_prefix" in attenuate(parent(), req(), NOW).constraints, false);
});

Deno.test("attenuate: a relative path_prefix is INVALID_ARGUMENT", () => {
  throwsStrata(
    () => attenuate(parent(), req({ path_prefix: "data" }), NOW),
    "INVALID_ARGUMENT",
    /^params\.path_prefix: must be an absolute path/,
  );
});

Deno.test("attenuate: ttl_seconds that outlives the parent is PERMISSION_DENIED naming ttl_seconds and the most allowed", () => {
  // given a parent expiring in 10 minutes
  const p = parent({}, 10 * 60_000);
  // when 601 seconds are asked for
  const err = throwsStrata(
    () => attenuate(p, req({ ttl_seconds: 601 }), NOW),
    "PERMISSION_DENIED",
    /^params\.ttl_seconds: would outlive your capability.*ask for at most 600/,
  );
  // then the details name the field
  assert.deepEqual(err.details, { reason: "broader_than_parent", field: "ttl_seconds" });
  // and exactly the remaining 600 seconds are fine
  assert.equal(attenuate(p, req({ ttl_seconds: 600 }), NOW).expMs, NOW + 600_000);
});

Deno.test("attenuate: without ttl_seconds the default lifetime applies, capped by the parent's expiry", () => {
  // given a long-lived parent, the child gets the default hour
  assert.equal(attenuate(parent(), req(), NOW).expMs, NOW + DEFAULT_TTL_SECONDS * 1000);
  // given a parent expiring in 10 minutes, the child expires with it
  const p = parent({}, 10 * 60_000);
  assert.equal(attenuate(p, req(), NOW).expMs, p.expMs);
});

Deno.test("attenuate: a looser rate_limit is PERMISSION_DENIED; equal or tighter is granted", () => {
  const p = parent({ rate_limit: "10rps" });
  const err = throwsStrata(
    () => attenuate(p, req({ rate_limit: "11rps" }), NOW),
    "PERMISSION_DENIED",
    /^params\.rate_limit: 11rps is looser than your capability's 10rps/,
  );
  assert.equal(err.details?.field, "rate_limit");
  assert.equal(attenuate(p, req({ rate_limit: "10rps" }), NOW).constraints.rate_limit, "10rps");
  assert.equal(attenuate(p, req({ rate_limit: "1rps" }), NOW).constraints.rate_limit, "1rps");
});

Deno.test("attenuate: rate_limit is inherited when omitted, and free when the parent has none", () => {
  assert.equal(
    attenuate(parent({ rate_limit: "5rps" }), req(), NOW).constraints.rate_limit,
    "5rps",
  );
  assert.equal(
    attenuate(parent(), req({ rate_limit: "1000rps" }), NOW).constraints.rate_limit,
    "1000rps",
  );
  assert.equal("rate_limit" in attenuate(parent(), req(), NOW).constraints, false);
});

Deno.test("attenuate: a rate_limit that is not <n>rps is INVALID_ARGUMENT", () => {
  for (const rate of ["fast", "0rps", "10 rps", "10RPS", "-1rps", "1.5rps", ""]) {
    throwsStrata(
      () => attenuate(parent({ rate_limit: "10rps" }), req({ rate_limit: rate }), NOW),
      "INVALID_ARGUMENT",
      /^params\.rate_limit: must look like "50rps"/,
    );
  }
});

Deno.test("attenuate: another service is refused, unless the parent's service is *", () => {
  // given an fs parent, a registry grant is refused naming both
  throwsStrata(
    () => attenuate(parent(), req({ service: "registry", rights: ["fs.read"] }), NOW),
    "PERMISSION_DENIED",
    /^params\.service: your capability is for fs; it cannot mint tokens for registry/,
  );
  // given an operator parent (service *), any service may be minted
  const op = makeCap({
    service: "*",
    rights: ["fs.read", "registry.register"],
    exp: rfc3339(NOW + 24 * HOUR),
  }, NOW);
  const g = attenuate(op, req({ service: "registry", rights: ["registry.register"] }), NOW);
  assert.equal(g.service, "registry");
  assert.deepEqual(g.rights, ["registry.register"]);
});

Deno.test("rateBuckets: a root token draws from its own bucket; a token without a limit from none", () => {
  const limited = makeCap({ constraints: { rate_limit: "5rps" } });
  assert.deepEqual(rateBuckets(limited), [{ cap_id: limited.capId, rate_limit: "5rps" }]);
  assert.deepEqual(rateBuckets(makeCap()), []);
});

Deno.test("attenuate: an inherited rate_limit shares the parent's bucket instead of getting a new one", () => {
  // given a parent limited to 10rps
  const p = parent({ rate_limit: "10rps" });
  // when a child is minted without its own limit
  const g = attenuate(p, req(), NOW);
  // then it counts in the parent's bucket, keyed by the parent's cap_id
  assert.deepEqual(g.constraints.rate_buckets, [{ cap_id: p.capId, rate_limit: "10rps" }]);
});

Deno.test("attenuate: a child's own rate_limit adds its bucket to its ancestors'", () => {
  // given a parent at 10rps and a child asking for 2rps under a known cap_id
  const p = parent({ rate_limit: "10rps" });
  const childId = newCapId();
  const g = attenuate(p, req({ cap_id: childId, rate_limit: "2rps" }), NOW);
  // then the child draws from both buckets, ancestor first
  assert.deepEqual(g.constraints.rate_buckets, [
    { cap_id: p.capId, rate_limit: "10rps" },
    { cap_id: childId, rate_limit: "2rps" },
  ]);
  // and without a parent limit, only from its own
  const free = attenuate(parent(), req({ cap_id: childId, rate_limit: "3rps" }), NOW);
  assert.deepEqual(free.constraints.rate_buckets, [{ cap_id: childId, rate_limit: "3rps" }]);
});
