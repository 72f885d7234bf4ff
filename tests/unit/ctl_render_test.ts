/**
 * Unit tests for src/ctl/render.ts: the human form of each result.
 */

import assert from "node:assert/strict";
import { PLAIN, stripAnsi } from "../../src/ctl/format.ts";
import {
  renderIntrospection,
  renderIssued,
  renderListing,
  renderRegistryList,
  renderResolved,
  renderRevoked,
  renderStatus,
  renderSvcAction,
  renderSvcList,
  stateText,
  type SvcEntry,
} from "../../src/ctl/render.ts";
import type { Claims } from "../../src/token/claims.ts";

const NOW = Date.parse("2026-12-01T10:00:00Z");
const COLOR = { color: true };

function svc(overrides: Partial<SvcEntry>): SvcEntry {
  return {
    name: "fs",
    state: "Healthy",
    pid: 4242,
    restarts: 0,
    last_exit: null,
    since: "2026-12-01T09:58:00Z",
    ...overrides,
  };
}

const CLAIMS: Claims = {
  jti: "5f0399f4119b2e52c3446ba9410f5a93",
  sub: "operator",
  iss: "identity@local",
  aud: "strata",
  iat: "2026-12-01T09:00:00Z",
  nbf: "2026-12-01T09:00:00Z",
  exp: "2026-12-01T11:00:00Z",
  service: "fs",
  actions: ["list", "read"],
  rights: ["fs.list", "fs.read"],
  constraints: {
    path_prefix: "/srv/data",
    rate_limit: "50rps",
    rate_buckets: [{ cap_id: "5f0399f4119b2e52c3446ba9410f5a93", rate_limit: "50rps" }],
  },
  parent: "6709a3dd4e17dead7286c50d17fe7d54",
  chain: ["6709a3dd4e17dead7286c50d17fe7d54"],
};

Deno.test("renderSvcList: one aligned row per service with state, pid, restarts, since, last exit", () => {
  // given a healthy service, a crashed one and one waiting for another
  const text = renderSvcList({
    services: [
      svc({ name: "registry" }),
      svc({
        name: "fs",
        state: "Crashed",
        pid: null,
        restarts: 3,
        last_exit: { code: 1, signal: null },
      }),
      svc({ name: "identity", state: "Declared", pid: null, waiting_for: ["registry"] }),
    ],
  }, { style: PLAIN, now: NOW });
  const lines = text.split("\n");
  // then the header and the rows line up
  assert.match(lines[0], /^NAME\s+STATE\s+PID\s+RESTARTS\s+SINCE\s+LAST EXIT$/);
  assert.match(lines[1], /^registry\s+Healthy\s+4242\s+0\s+2m ago\s+-$/);
  assert.match(lines[2], /^fs\s+Crashed\s+-\s+3\s+2m ago\s+code 1$/);
  assert.match(lines[3], /^identity\s+Declared \(waits for registry\)/);
  const col = lines[0].indexOf("STATE");
  for (const l of lines.slice(1)) assert.match(l.slice(col), /^(Healthy|Crashed|Declared)/);
});

Deno.test("renderSvcList: a signal shows as the last exit", () => {
  const text = renderSvcList({
    services: [svc({ last_exit: { code: 137, signal: "SIGKILL" } })],
  }, { style: PLAIN, now: NOW });
  assert.match(text, /signal SIGKILL$/);
});

Deno.test("stateText: green when healthy, red when crashed, only with colour", () => {
  assert.equal(stateText("Healthy", PLAIN), "Healthy");
  assert.equal(stateText("Healthy", COLOR), "\x1b[32mHealthy\x1b[0m");
  assert.equal(stateText("Quarantined", COLOR), "\x1b[31mQuarantined\x1b[0m");
});

Deno.test("renderSvcAction: what was done, the state and the pid", () => {
  assert.equal(
    renderSvcAction("started", svc({}), { style: PLAIN }),
    "started fs: Healthy, pid 4242",
  );
  assert.equal(
    renderSvcAction("stopped", svc({ state: "Stopped", pid: null }), { style: PLAIN }),
    "stopped fs: Stopped",
  );
});

Deno.test("renderStatus: node, version, uptime, health; a pointer when something is unhealthy", () => {
  const ok = renderStatus({
    node_id: "local",
    uptime_sec: 3725,
    version: "0.4.0",
    services: { total: 3, healthy: 3 },
  }, { style: PLAIN });
  assert.equal(ok, "node      local\nversion   0.4.0\nuptime    1h 2m\nservices  3 of 3 healthy");
  const bad = renderStatus({
    node_id: "local",
    uptime_sec: 5,
    version: "0.4.0",
    services: { total: 3, healthy: 2 },
  }, { style: PLAIN });
  assert.match(bad, /2 of 3 healthy\nsee which with `strata-ctl svc list`$/);
});

Deno.test("renderRegistryList and renderResolved: services and endpoints", () => {
  const list = renderRegistryList({
    services: [
      { service: "fs", endpoint: "unix:///run/strata/fs.sock", api_v: 1, owner: "supervisor" },
      { service: "my-svc", endpoint: "unix:///run/strata/my.sock", api_v: 2 },
    ],
  }, { style: PLAIN }).split("\n");
  assert.match(list[0], /^SERVICE\s+ENDPOINT\s+API\s+OWNER$/);
  assert.match(list[1], /^fs\s+unix:\/\/\/run\/strata\/fs\.sock\s+1\s+supervisor$/);
  assert.match(list[2], /^my-svc\s+unix:\/\/\/run\/strata\/my\.sock\s+2\s+-$/);
  // cluster mode: every node's entries, with a NODE column
  const all = renderRegistryList({
    services: [
      { node: "a", service: "fs", endpoint: "unix:///run/strata/fs.sock", api_v: 1 },
      { node: "b", service: "fs", endpoint: "tcp://10.0.0.2:7402", api_v: 1 },
    ],
  }, { style: PLAIN }).split("\n");
  assert.match(all[0], /^NODE\s+SERVICE\s+ENDPOINT\s+API\s+OWNER$/);
  assert.match(all[2], /^b\s+fs\s+tcp:\/\/10\.0\.0\.2:7402\s+1\s+-$/);
  assert.equal(
    renderResolved({ service: "fs", endpoint: "unix:///x.sock", api_v: 1 }, { style: PLAIN }),
    "service   fs\nendpoint  unix:///x.sock\napi       v1",
  );
});

Deno.test("renderListing: type, size (right-aligned, human), name; folders end in /, links in @", () => {
  const text = renderListing({
    path: "/srv/data",
    entries: [
      { name: "a.txt", is_dir: false, is_symlink: false, size: 13 },
      { name: "big.iso", is_dir: false, is_symlink: false, size: 3 * 1024 * 1024 },
      { name: "sub", is_dir: true, is_symlink: false, size: 4096 },
      { name: "ln", is_dir: false, is_symlink: true, size: 0 },
    ],
  }, { style: PLAIN });
  assert.equal(
    text,
    [
      "TYPE     SIZE  NAME",
      "file     13 B  a.txt",
      "file  3.0 MiB  big.iso",
      "dir         -  sub/",
      "link        -  ln@",
    ].join("\n"),
  );
});

Deno.test("renderListing: an empty folder says so; a truncated one says how to see more", () => {
  assert.equal(renderListing({ path: "/srv/e", entries: [] }, { style: PLAIN }), "/srv/e: empty");
  const t = renderListing({
    path: "/srv",
    entries: [{ name: "a", is_dir: false, is_symlink: false, size: 1 }],
    truncated: true,
  }, { style: PLAIN });
  assert.match(t, /only the first 1 entries; ask for more with --limit \(up to 5000\)$/);
});

Deno.test("renderIntrospection: valid, then every claim a person asks about", () => {
  const text = renderIntrospection({ valid: true, claims: CLAIMS }, {
    style: PLAIN,
    now: NOW,
    source: "-token",
  });
  assert.equal(
    text,
    [
      "valid    yes",
      "cap_id   5f0399f4119b2e52c3446ba9410f5a93",
      "subject  operator",
      "service  fs",
      "rights   fs.list, fs.read",
      "prefix   /srv/data",
      "rate     50rps",
      "issued   2026-12-01 09:00:00 UTC (1h ago)",
      "expires  2026-12-01 11:00:00 UTC (in 1h)",
      "parent   6709a3dd4e17dead7286c50d17fe7d54",
      "issuer   identity@local",
      "source   -token",
    ].join("\n"),
  );
});

Deno.test("renderIntrospection: why a token is not valid, with or without its claims", () => {
  const revoked = renderIntrospection({ valid: false, reason: "revoked", claims: CLAIMS }, {
    style: PLAIN,
    now: NOW,
  });
  assert.ok(revoked.startsWith("valid    no (revoked)\ncap_id"), revoked);
  assert.equal(
    renderIntrospection({ valid: false, reason: "bad_signature" }, { style: PLAIN, now: NOW }),
    "valid  no (bad_signature)",
  );
  const root = renderIntrospection({
    valid: true,
    claims: { ...CLAIMS, service: "*", parent: undefined, constraints: {} },
  }, { style: PLAIN, now: NOW });
  assert.ok(root.includes("service  * (every service)"), root);
  assert.ok(root.includes("prefix   -\n"), root);
  assert.ok(root.includes("rate     -\n"), root);
  assert.ok(root.includes("parent   - (a root token)"), root);
  assert.match(
    stripAnsi(renderIntrospection({ valid: true }, { style: COLOR, now: NOW })),
    /^valid {2}yes$/,
  );
});

Deno.test("renderIssued: the token first, on its own line, then what it allows", () => {
  const text = renderIssued("v4.public.T", CLAIMS, { style: PLAIN, now: NOW });
  const lines = text.split("\n");
  assert.equal(lines[0], "token    v4.public.T");
  assert.ok(lines.includes("rights   fs.list, fs.read"));
  assert.ok(!text.includes("issuer"));
  assert.equal(
    renderIssued("v4.public.T", undefined, { style: PLAIN, now: NOW }),
    "token  v4.public.T",
  );
});

Deno.test("renderRevoked: revoked and refused everywhere now; already revoked", () => {
  const cap = "5f0399f4119b2e52c3446ba9410f5a93";
  assert.equal(
    renderRevoked({ status: "revoked", cap_id: cap }, { style: PLAIN }),
    `revoked ${cap}; every service refuses it now`,
  );
  assert.equal(
    renderRevoked({ status: "revoked", cap_id: cap, already: true }, { style: PLAIN }),
    `${cap} was already revoked`,
  );
});
