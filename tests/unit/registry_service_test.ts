/**
 * Unit tests for src/registry/service.ts: the registry's table, endpoint
 * checks and ownership rules, and its methods.
 */

import assert from "node:assert/strict";
import { type MethodContext, Server } from "../../src/server/server.ts";
import { StrataError } from "../../src/wire/errors.ts";
import { encodeFrame } from "../../src/wire/frame.ts";
import { decodeFrames } from "../helpers.ts";
import type { Capability } from "../../src/token/claims.ts";
import {
  checkEndpoint,
  Registry,
  REGISTRY_LIMITS,
  SUPERVISOR,
  SUPERVISOR_OWNER,
} from "../../src/registry/service.ts";
import { ManualClock } from "../../src/runtime/clock.ts";
import { makeCap, throwsStrata, withTempDir } from "./support.ts";

const OWNER_A = makeCap({ jti: "a".repeat(32) });
const OWNER_B = makeCap({ jti: "b".repeat(32) });

Deno.test("Registry: register then resolve returns the entry", () => {
  // given an empty registry
  const r = new Registry();
  // when a service is registered
  const e = r.register(
    { service: "fs", endpoint: "unix:///run/strata/fs.sock", api_v: 1 },
    SUPERVISOR,
  );
  // then resolve finds it with its fields
  assert.deepEqual(r.resolve("fs"), e);
  assert.equal(e.endpoint, "unix:///run/strata/fs.sock");
  assert.equal(e.api_v, 1);
  assert.equal(e.owner, SUPERVISOR_OWNER);
  assert.ok(!Number.isNaN(Date.parse(e.registered_at)));
});

Deno.test("Registry.resolve: an unregistered service is NOT_FOUND pointing at registry.list", () => {
  throwsStrata(
    () => new Registry().resolve("mail"),
    "NOT_FOUND",
    /service mail is not registered; registry\.list/,
  );
});

Deno.test("Registry.list: every entry, sorted by service name", () => {
  const r = new Registry();
  r.register({ service: "registry", endpoint: "unix:///r.sock", api_v: 1 }, SUPERVISOR);
  r.register({ service: "fs", endpoint: "unix:///f.sock", api_v: 1 }, SUPERVISOR);
  r.register({ service: "my-identity", endpoint: "unix:///i.sock", api_v: 2 }, OWNER_A);
  assert.deepEqual(r.list().map((e) => e.service), ["fs", "my-identity", "registry"]);
  // by code unit, as fs.list sorts, the same in every locale: "-" and digits before "_" and letters
  for (const service of ["a_b", "a1", "a-b", "ab"]) {
    r.register({ service, endpoint: `unix:///${service}.sock`, api_v: 1 }, OWNER_A);
  }
  assert.deepEqual(r.list().map((e) => e.service).slice(0, 4), ["a-b", "a1", "a_b", "ab"]);
});

Deno.test("Registry.register: a different owner overwriting an entry is CONFLICT, and the entry is kept", () => {
  // given an entry owned by capability A
  const r = new Registry();
  r.register({ service: "my-svc", endpoint: "unix:///run/a.sock", api_v: 1 }, OWNER_A);
  // when B tries to replace it
  throwsStrata(
    () => r.register({ service: "my-svc", endpoint: "unix:///run/b.sock", api_v: 1 }, OWNER_B),
    "CONFLICT",
    new RegExp(`service my-svc is registered by ${OWNER_A.capId}; only it may change the entry`),
  );
  // then A's entry stands
  assert.equal(r.resolve("my-svc").endpoint, "unix:///run/a.sock");
  // and A itself may update it
  assert.equal(
    r.register({ service: "my-svc", endpoint: "unix:///run/a2.sock", api_v: 2 }, OWNER_A).api_v,
    2,
  );
});

Deno.test("Registry.register: a token cannot overwrite the supervisor's entry; the supervisor may overwrite any", () => {
  const r = new Registry();
  r.register({ service: "fs", endpoint: "unix:///run/strata/fs.sock", api_v: 1 }, SUPERVISOR);
  throwsStrata(
    () => r.register({ service: "fs", endpoint: "unix:///tmp/evil.sock", api_v: 1 }, OWNER_A),
    "PERMISSION_DENIED",
    /run by the supervisor/,
  );
  assert.equal(r.resolve("fs").endpoint, "unix:///run/strata/fs.sock");
  r.register({ service: "mine", endpoint: "unix:///run/m.sock", api_v: 1 }, OWNER_A);
  assert.equal(
    r.register({ service: "mine", endpoint: "unix:///run/sup.sock", api_v: 1 }, SUPERVISOR).owner,
    SUPERVISOR_OWNER,
  );
});

Deno.test("checkEndpoint: unix:///absolute paths and tcp://host:port pass", () => {
  assert.equal(checkEndpoint("unix:///run/strata/fs.sock"), "unix:///run/strata/fs.sock");
  assert.equal(checkEndpoint("tcp://127.0.0.1:9000"), "tcp://127.0.0.1:9000");
  assert.equal(checkEndpoint("tcp://node-b.example:7402"), "tcp://node-b.example:7402");
  for (
    const bad of ["tcp://127.0.0.1", "tcp://h:0", "tcp://h:99999", "tcp://h:80/x", "tcp://[::1]:80"]
  ) {
    throwsStrata(
      () => checkEndpoint(bad),
      "INVALID_ARGUMENT",
      /^params\.endpoint: must be "tcp:\/\/host:port"/,
    );
  }
});

Deno.test("checkEndpoint: relative, dotted, NUL and other schemes are INVALID_ARGUMENT", () => {
  for (
    const bad of [
      "unix://run/fs.sock",
      "unix:/run/fs.sock",
      "/run/fs.sock",
      "http://x/y",
      "unix:///run/../etc/x.sock",
      "unix:///run/./x.sock",
      "unix:///run/x/..",
      "unix:///run/x\0.sock",
      "",
    ]
  ) {
    throwsStrata(
      () => checkEndpoint(bad),
      "INVALID_ARGUMENT",
      /^params\.endpoint: must be "unix:\/\/\/absolute\/path\.sock"/,
    );
  }
  // names that merely contain dots are fine
  assert.equal(checkEndpoint("unix:///run/my..svc.sock"), "unix:///run/my..svc.sock");
});

Deno.test("Registry.register: a refused endpoint leaves the table unchanged", () => {
  const r = new Registry();
  r.register({ service: "my-svc", endpoint: "unix:///run/a.sock", api_v: 1 }, OWNER_A);
  throwsStrata(
    () => r.register({ service: "my-svc", endpoint: "tcp://1.2.3.4", api_v: 1 }, OWNER_A),
    "INVALID_ARGUMENT",
  );
  throwsStrata(
    () => r.register({ service: "other", endpoint: "http://1.2.3.4:5", api_v: 1 }, OWNER_A),
    "INVALID_ARGUMENT",
  );
  assert.equal(r.resolve("my-svc").endpoint, "unix:///run/a.sock");
  assert.deepEqual(r.list().map((e) => e.service), ["my-svc"]);
});

Deno.test("Registry.deregister: the owner and the supervisor may remove; others get CONFLICT; missing is false", () => {
  const r = new Registry();
  r.register({ service: "a-svc", endpoint: "unix:///run/a.sock", api_v: 1 }, OWNER_A);
  r.register({ service: "b-svc", endpoint: "unix:///run/b.sock", api_v: 1 }, OWNER_B);
  r.register({ service: "fs", endpoint: "unix:///run/fs.sock", api_v: 1 }, SUPERVISOR);
  // another owner is refused and the entry stays
  throwsStrata(() => r.deregister("a-svc", OWNER_B), "CONFLICT", /registered by a{32}/);
  throwsStrata(() => r.deregister("fs", OWNER_A), "CONFLICT");
  assert.ok(r.resolve("a-svc"));
  // the owner removes its own, the supervisor anyone's
  assert.equal(r.deregister("a-svc", OWNER_A), true);
  assert.equal(r.deregister("b-svc", SUPERVISOR), true);
  assert.deepEqual(r.list().map((e) => e.service), ["fs"]);
  // removing what is not there says so
  assert.equal(r.deregister("a-svc", OWNER_A), false);
});

Deno.test("Registry.methods: resolve and list are public, register and deregister need registry.register", () => {
  const methods = new Map(new Registry().methods().map((m) => [m.name, m]));
  assert.equal(methods.get("registry.resolve")?.access, "public");
  assert.equal(methods.get("registry.list")?.access, "public");
  assert.deepEqual(methods.get("registry.register")?.access, { right: "registry.register" });
  assert.deepEqual(methods.get("registry.deregister")?.access, { right: "registry.register" });
});

Deno.test("Registry.methods: register through the method is owned by the caller's cap_id", async () => {
  // given the registry's methods and two callers
  const r = new Registry();
  const m = new Map(r.methods().map((x) => [x.name, x]));
  const a = makeCap({ service: "registry", rights: ["registry.register"] });
  const b = makeCap({ service: "registry", rights: ["registry.register"] });
  const ctx = (cap: typeof a): MethodContext<Capability> => ({ cap, reqId: "r", connId: 1 });
  // when A registers through the method
  const view = await m.get("registry.register")!.handler(
    { service: "my-svc", endpoint: "unix:///run/my.sock", api_v: 1 },
    ctx(a),
  );
  // then the answer has no owner, but list shows A's cap_id as the owner
  assert.deepEqual(view, { service: "my-svc", endpoint: "unix:///run/my.sock", api_v: 1 });
  assert.deepEqual(await m.get("registry.list")!.handler({}, ctx(a)), {
    services: [{ service: "my-svc", endpoint: "unix:///run/my.sock", api_v: 1, owner: a.capId }],
  });
  assert.deepEqual(await m.get("registry.resolve")!.handler({ service: "my-svc" }, ctx(b)), view);
  // and B can neither deregister nor overwrite it
  assert.throws(
    () => m.get("registry.deregister")!.handler({ service: "my-svc" }, ctx(b)),
    /registered by/,
  );
  assert.deepEqual(await m.get("registry.deregister")!.handler({ service: "my-svc" }, ctx(a)), {
    removed: true,
  });
});

Deno.test("Registry.methods: the service name pattern is enforced by the params schema", () => {
  const m = new Map(new Registry().methods().map((x) => [x.name, x]));
  const pattern = (m.get("registry.resolve")!.params.service as { pattern: RegExp }).pattern;
  for (const ok of ["fs", "my-service", "a_b9"]) assert.ok(pattern.test(ok), ok);
  for (const bad of ["", "Fs", "9fs", "a".repeat(33), "fs.sock", "-x"]) {
    assert.ok(!pattern.test(bad), bad);
  }
});

Deno.test("Registry: names the supervisor runs are its own even while they are not registered", () => {
  const r = new Registry();
  for (const name of ["supervisor", "registry", "identity", "fs"]) {
    throwsStrata(
      () => r.register({ service: name, endpoint: "unix:///tmp/evil.sock", api_v: 1 }, OWNER_A),
      "PERMISSION_DENIED",
    );
  }
});

Deno.test("Registry: entries are bounded per owner and in total", () => {
  const r = new Registry();
  for (let i = 0; i < REGISTRY_LIMITS.perOwner; i++) {
    r.register({ service: `a-${i}`, endpoint: "unix:///run/a.sock", api_v: 1 }, OWNER_A);
  }
  throwsStrata(
    () => r.register({ service: "a-more", endpoint: "unix:///run/a.sock", api_v: 1 }, OWNER_A),
    "RESOURCE_EXHAUSTED",
  );
  // updating an entry it already has is still fine
  r.register({ service: "a-0", endpoint: "unix:///run/a2.sock", api_v: 1 }, OWNER_A);
});

Deno.test("Registry: an entry goes when its owner's token expires or is revoked", () => {
  const clock = new ManualClock();
  const r = new Registry(undefined, { clock });
  const now = clock.now();
  const parent = makeCap();
  const short = makeCap({ exp: new Date(now + 50).toISOString() }, now);
  const child = makeCap({ parent: parent.capId, chain: [parent.capId] });
  r.register({ service: "short", endpoint: "unix:///run/s.sock", api_v: 1 }, short);
  // (the registry says it holds entries a revocation could drop: those of capabilities)
  const bare = new Registry(undefined, { clock });
  bare.register({ service: "registry", endpoint: "unix:///run/r.sock", api_v: 1 }, SUPERVISOR);
  assert.equal(bare.holdsGranted(), false);
  r.register({ service: "child", endpoint: "unix:///run/c.sock", api_v: 1 }, child);
  assert.equal(r.holdsGranted(), true);
  // revoking the parent removes what the child registered
  r.dropRevoked([parent.capId]);
  throwsStrata(() => r.resolve("child"), "NOT_FOUND");
  // the short-lived entry is there until its owner's token expires
  assert.equal(r.resolve("short").service, "short");
  // and gone once its time has passed
  clock.advance(60_000);
  throwsStrata(() => r.resolve("short"), "NOT_FOUND");
});

Deno.test("Registry: a delegation tree shares one limit and leaves room for root tokens", () => {
  const r = new Registry();
  const root = makeCap();
  const tenant = makeCap({ parent: root.capId, chain: [root.capId] });
  const child = () => makeCap({ parent: tenant.capId, chain: [root.capId, tenant.capId] });
  // given a tenant whose children have registered the tree's whole share
  let n = 0;
  for (let c = 0; c < REGISTRY_LIMITS.perTree / REGISTRY_LIMITS.perOwner; c++) {
    const owner = child();
    for (let i = 0; i < REGISTRY_LIMITS.perOwner; i++) {
      r.register({ service: `t-${n++}`, endpoint: "unix:///run/t.sock", api_v: 1 }, owner);
    }
  }
  // then a fresh child of the tenant is refused, naming the tree
  throwsStrata(
    () => r.register({ service: "t-more", endpoint: "unix:///run/t.sock", api_v: 1 }, child()),
    "RESOURCE_EXHAUSTED",
    new RegExp(`delegation tree of capability ${tenant.capId} already registered 64`),
  );
  // while other tenants fill the rest but the root's reserve
  const room = REGISTRY_LIMITS.entries - REGISTRY_LIMITS.operatorReserve;
  while (n < room) {
    const other = makeCap({ parent: root.capId, chain: [root.capId] });
    for (let i = 0; i < REGISTRY_LIMITS.perOwner && n < room; i++) {
      r.register({ service: `o-${n++}`, endpoint: "unix:///run/o.sock", api_v: 1 }, other);
    }
  }
  const late = makeCap({ parent: root.capId, chain: [root.capId] });
  throwsStrata(
    () => r.register({ service: "late", endpoint: "unix:///run/l.sock", api_v: 1 }, late),
    "RESOURCE_EXHAUSTED",
    /registry is full/,
  );
  // and the root token still registers
  r.register({ service: "ops", endpoint: "unix:///run/ops.sock", api_v: 1 }, root);
});

Deno.test("Registry over a private connection: the supervisor's requests take the validated path", async () => {
  await withTempDir(async (dir) => {
    // given the registry's methods on a server whose chain refuses every token
    const registry = new Registry();
    const server = await Server.listen<Capability>({
      service: "registry",
      path: `${dir}/registry.sock`,
      methods: registry.methods(),
      chain: {
        authorize: () => {
          throw new StrataError("UNAUTHENTICATED", "token: none");
        },
      },
    });
    try {
      // when the supervisor's pipe sends a reserved name, a bad name and a bad endpoint
      const frames = [
        { req_id: "ok", params: { service: "fs", endpoint: "unix:///run/fs.sock" } },
        { req_id: "name", params: { service: "F S", endpoint: "unix:///run/x.sock" } },
        { req_id: "missing", params: { service: "mail" } },
        { req_id: "endpoint", params: { service: "mail", endpoint: "unix://relative" } },
      ].map((r) => encodeFrame({ v: 1, method: "registry.register", ...r }));
      const written: number[] = [];
      let sent = false;
      const bytes = new Uint8Array(frames.flatMap((f) => [...f]));
      await server.servePrivate({
        read: (p: Uint8Array) => {
          if (sent) return Promise.resolve(null);
          sent = true;
          p.set(bytes);
          return Promise.resolve(bytes.length);
        },
        write: (p: Uint8Array) => {
          written.push(...p);
          return Promise.resolve(p.length);
        },
        close: () => {},
      }, { principal: SUPERVISOR as unknown as Capability });
      // then the reserved name is registered as the supervisor's, and the rest get the socket's errors
      const answers = new Map(
        (decodeFrames(new Uint8Array(written)) as Record<string, unknown>[]).map((
          a,
        ) => [a.req_id as string, a]),
      );
      assert.equal(answers.get("ok")?.ok, true);
      assert.equal(registry.resolve("fs").owner, SUPERVISOR_OWNER);
      for (const id of ["name", "missing", "endpoint"]) {
        const err = answers.get(id)?.error as { name: string; message: string } | undefined;
        assert.equal(err?.name, "INVALID_ARGUMENT", id);
        assert.match(err!.message, /params\.(service|endpoint)/, id);
      }
      throwsStrata(() => registry.resolve("mail"), "NOT_FOUND");
    } finally {
      await server.drain(1000);
    }
  });
});

Deno.test("Registry: node in registry.resolve is refused on a single node; cluster answers carry node", () => {
  // given a single-node registry
  const single = new Registry();
  single.register({ service: "fs", endpoint: "unix:///r/fs.sock", api_v: 1 }, SUPERVISOR);
  // then asking for a node is bad input, not INTERNAL, and names the field
  throwsStrata(() => single.resolveOn("fs", "b"), "INVALID_ARGUMENT", /params\.node/);
  // given a cluster node "a" that sees node b's fs with a tcp:// endpoint
  const other = {
    node: "b",
    service: "fs",
    endpoints: ["unix:///rb/fs.sock", "tcp://10.0.0.2:7402"],
    api_v: 1,
    registered_at: new Date(0).toISOString(),
    owner: SUPERVISOR_OWNER,
  };
  const r = new Registry(undefined, {
    cluster: {
      node: "a",
      entries: () => [other],
      endpointsOf: (rec) => [rec.endpoint, "tcp://10.0.0.1:7402"],
    },
  });
  r.register({ service: "fs", endpoint: "unix:///ra/fs.sock", api_v: 1 }, SUPERVISOR);
  // then without node it is this node's entry, with both endpoints
  assert.deepEqual(r.resolveOn("fs").endpoints, ["unix:///ra/fs.sock", "tcp://10.0.0.1:7402"]);
  assert.equal(r.resolveOn("fs").node, "a");
  // and on b it is b's, answered with its tcp:// endpoint
  assert.equal(r.resolveOn("fs", "b").endpoint, "tcp://10.0.0.2:7402");
  throwsStrata(() => r.resolveOn("fs", "c"), "NOT_FOUND", /on node c/);
  // and the list holds both nodes' entries, sorted by node
  assert.deepEqual(r.listCluster().map((e) => `${e.node}/${e.service}`), ["a/fs", "b/fs"]);
});
