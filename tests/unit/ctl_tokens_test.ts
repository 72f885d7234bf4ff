/**
 * Unit tests for src/ctl/tokens.ts: the `token` commands' flags turned into
 * identity's params.
 */

import assert from "node:assert/strict";
import {
  issueParams,
  MAX_TTL_SECONDS,
  prefixWarning,
  rateLimit,
  revokeParams,
  splitList,
  ttlSeconds,
} from "../../src/ctl/tokens.ts";
import { assertUsage } from "./support.ts";

Deno.test("issueParams: the issue's own example", () => {
  // given the flags of `token issue --service fs --rights fs.read,fs.list --path-prefix /srv/data --ttl 1h --rate 50rps`
  const p = issueParams({
    service: "fs",
    rights: "fs.read,fs.list",
    "path-prefix": "/srv/data",
    ttl: "1h",
    rate: "50rps",
  });
  // then identity gets exactly these params
  assert.deepEqual(p, {
    service: "fs",
    rights: ["fs.read", "fs.list"],
    path_prefix: "/srv/data",
    ttl_seconds: 3600,
    rate_limit: "50rps",
  });
});

Deno.test("issueParams: --actions, --sub, and both lists together", () => {
  assert.deepEqual(issueParams({ service: "fs", actions: "open, read", sub: "backup" }), {
    service: "fs",
    actions: ["open", "read"],
    sub: "backup",
  });
  assert.deepEqual(issueParams({ service: "fs", rights: "fs.list", actions: "read" }), {
    service: "fs",
    rights: ["fs.list"],
    actions: ["read"],
  });
  // the operator's own service "*" takes any right
  assert.deepEqual(issueParams({ service: "*", rights: "fs.read,identity.issue" }).rights, [
    "fs.read",
    "identity.issue",
  ]);
});

Deno.test("issueParams: each mistake names the flag and the fix", () => {
  assertUsage(() => issueParams({ rights: "fs.read" }), /needs --service/, /--service fs/);
  assertUsage(
    () => issueParams({ service: "fss", rights: "fs.read" }),
    /no service fss/,
    /did you mean fs\?/,
  );
  assertUsage(
    () => issueParams({ service: "fs" }),
    /needs --rights or --actions/,
    /--rights fs\.read/,
  );
  assertUsage(
    () => issueParams({ service: "fs", rights: "read" }),
    /read is not a full right/,
    /fs\.read, or pass it as --actions read/,
  );
  assertUsage(
    () => issueParams({ service: "fs", rights: "fs.raed" }),
    /fs has no right fs\.raed/,
    /did you mean fs\.read\?/,
  );
  assertUsage(
    () => issueParams({ service: "fs", actions: "lsit" }),
    /fs has no action lsit/,
    /did you mean list\?/,
  );
  assertUsage(() => issueParams({ service: "fs", rights: "fs.read", ttl: "soon" }), /--ttl/);
  assertUsage(() => issueParams({ service: "fs", rights: "fs.read", rate: "fast" }), /--rate/);
});

Deno.test("ttlSeconds: durations and plain seconds, 1 s to a year", () => {
  assert.equal(ttlSeconds("90s"), 90);
  assert.equal(ttlSeconds("15m"), 900);
  assert.equal(ttlSeconds("7d"), 604_800);
  assert.equal(ttlSeconds("3600"), 3600);
  assert.equal(ttlSeconds("365d"), MAX_TTL_SECONDS);
  assertUsage(() => ttlSeconds("366d"), /longer than a year/, /365d/);
  // 0 is no lifetime (not "no expiry"): said so, and what to give instead
  assertUsage(() => ttlSeconds("0"), /^--ttl: 0 is no lifetime; a token lives 1s to 365d/, /1h/);
  assertUsage(() => ttlSeconds("0s"), /0s is no lifetime/);
  assertUsage(() => ttlSeconds("500ms"), /500ms is shorter than a second/);
  assertUsage(() => ttlSeconds("1500ms"), /whole number of seconds/);
  assertUsage(() => ttlSeconds("1y"), /cannot read "1y" as a duration/, /90s, 15m, 1h, 7d/);
});

Deno.test("rateLimit: 50rps, 50/s and a bare 50 all mean 50rps", () => {
  assert.equal(rateLimit("50rps"), "50rps");
  assert.equal(rateLimit("50/s"), "50rps");
  assert.equal(rateLimit("50"), "50rps");
  assertUsage(() => rateLimit("0rps"), /cannot read "0rps" as a rate/, /50rps/);
  assertUsage(() => rateLimit("50rpm"), /cannot read/);
});

Deno.test("revokeParams: a token goes as params.token, a cap_id as params.cap_id", () => {
  assert.deepEqual(revokeParams("v4.public.abc"), { token: "v4.public.abc" });
  const cap = "0123456789abcdef0123456789abcdef";
  assert.deepEqual(revokeParams(cap), { cap_id: cap });
  assertUsage(() => revokeParams("h1"), /neither a cap_id .* nor a token/, /token issue/);
  assertUsage(() => revokeParams(cap.toUpperCase()), /neither/);
});

Deno.test("splitList: trimmed, without empty items", () => {
  assert.deepEqual(splitList(" a, b,,c "), ["a", "b", "c"]);
  assert.deepEqual(splitList(undefined), []);
});

Deno.test("prefixWarning: a prefix outside every root fs serves is named, with the roots", () => {
  const roots = ["/srv/data", "/tmp"];
  assert.equal(prefixWarning("/srv/data", roots), undefined);
  assert.equal(prefixWarning("/srv/data/sub/", roots), undefined);
  assert.equal(prefixWarning("/tmp/x/../y", roots), undefined);
  assert.match(
    prefixWarning("/srv/database", roots)!,
    /--path-prefix \/srv\/database lies outside the roots fs serves \(\/srv\/data, \/tmp\)/,
  );
  assert.match(prefixWarning("/tmp/../etc", roots)!, /outside/);
  assert.match(prefixWarning("/srv", [])!, /\(none\)/);
  // a relative prefix is identity's to refuse
  assert.equal(prefixWarning("srv", roots), undefined);
  // a prefix that holds a root lets the token use it: no warning
  assert.equal(prefixWarning("/tmp", ["/tmp/node-a/export"]), undefined);
  assert.equal(prefixWarning("/", ["/srv/data"]), undefined);
  // in cluster mode the roots named are this node's, and another node's fs may serve the prefix
  assert.match(
    prefixWarning("/srv/b", ["/srv/a"], { cluster: true })!,
    /outside the roots this node's fs serves \(\/srv\/a\); .*another node's fs may serve it/,
  );
});
