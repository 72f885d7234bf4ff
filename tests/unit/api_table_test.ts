/**
 * Unit tests for src/api/ (the method table) and server/bind.ts: each
 * service serves exactly the methods it declares, and what is derived from
 * the table (rights, the supervisor's and registry's service
 * lists, strata-ctl's list) follows it.
 * @module
 */

import assert from "node:assert/strict";
import {
  API,
  findMethod,
  METHODS,
  methodsOf,
  SERVICE_RIGHTS,
  SERVICES,
  SUPERVISED,
} from "../../src/api/mod.ts";
import type { MethodSpec } from "../../src/api/method.ts";
import { bindMethods } from "../../src/server/bind.ts";
import { fsMethods } from "../../src/fs/service.ts";
import { Registry, RESERVED } from "../../src/registry/service.ts";
import { supervisorMethods } from "../../src/supervisor/service.ts";
import { IdentityService } from "../../src/identity/service.ts";
import { METHODS as CTL_METHODS } from "../../src/ctl/methods.ts";
import { CHILD_SERVICES } from "../../src/runtime/config.ts";
import { allRights, rightsOf } from "../../src/policy/rights.ts";

const SPECS: MethodSpec[] = [
  { name: "t.health", access: "public", params: {}, summary: "h", servedBy: "server" },
  { name: "t.a", access: { right: "t.a" }, params: { x: { type: "string" } }, summary: "a" },
  { name: "t.b", access: "public", params: {}, summary: "b" },
];

Deno.test("bindMethods: name, right and params come from the declaration, the work from the handler", () => {
  const cost = () => 7;
  const bound = bindMethods(SPECS, {
    "t.a": { cost, handler: () => 1 },
    "t.b": { handler: () => 2 },
  });
  assert.deepEqual(bound.map((m) => m.name), ["t.a", "t.b"]);
  assert.deepEqual(bound[0].access, { right: "t.a" });
  assert.deepEqual(bound[0].params, { x: { type: "string" } });
  assert.equal(bound[0].cost, cost);
  assert.equal(bound[1].handler({}, { reqId: "r", connId: 1 }), 2);
});

Deno.test("bindMethods: refuses a declaration without a handler and a handler without a declaration", () => {
  assert.throws(
    () => bindMethods(SPECS, { "t.a": { handler: () => 1 } }),
    /declared without a handler: t\.b/,
  );
  assert.throws(
    () =>
      bindMethods(SPECS, {
        "t.a": { handler: () => 1 },
        "t.b": { handler: () => 2 },
        "t.c": { handler: () => 3 },
      }),
    /handled without a declaration in src\/api\/: t\.c/,
  );
  // health is the server's: a service may not answer it itself.
  assert.throws(
    () =>
      bindMethods(SPECS, {
        "t.a": { handler: () => 1 },
        "t.b": { handler: () => 2 },
        "t.health": { handler: () => 3 },
      }),
    /handled without a declaration in src\/api\/: t\.health/,
  );
});

/** The names a service answers: its bound methods and the server's health. */
function served(service: string, own: { name: string }[]): string[] {
  return [`${service}.health`, ...own.map((m) => m.name)].sort();
}

Deno.test("each service binds a handler to every method it declares, and to no other", () => {
  const stub = {} as never;
  const own: Record<string, { name: string }[]> = {
    fs: fsMethods({ roots: [], handles: stub, audit: stub }),
    registry: new Registry().methods(),
    identity: new IdentityService({
      layout: { runtimeDir: "/r", stateDir: "/s", nodeId: "n", fsRoots: [] },
      ring: stub,
      revocations: stub,
      trust: stub,
      audit: stub,
      log: stub,
      issued: stub,
    }).methods(),
    supervisor: supervisorMethods({
      manager: stub,
      logs: stub,
      audit: stub,
      nodeId: "n",
      startedAt: 0,
    }),
  };
  assert.deepEqual(Object.keys(own).sort(), [...SERVICES].sort());
  for (const s of SERVICES) {
    assert.deepEqual(served(s, own[s]), methodsOf(s).map((m) => m.name).sort(), s);
  }
});

Deno.test("the table: names are unique and each is its service's; every right is a method name", () => {
  const names = METHODS.map((m) => m.name);
  assert.equal(new Set(names).size, names.length);
  for (const [service, specs] of Object.entries(API)) {
    for (const m of specs) {
      assert.ok(m.name.startsWith(`${service}.`), m.name);
      assert.ok(m.summary.length > 0, m.name);
      if (m.access !== "public") {
        assert.ok(m.access.right.startsWith(`${service}.`), m.name);
        assert.ok(findMethod(m.access.right), `${m.name}: right ${m.access.right} is a method`);
      }
    }
  }
  assert.deepEqual(methodsOf("nope"), []);
  assert.deepEqual(methodsOf("constructor"), []);
});

Deno.test("derived from the table: rights, supervised services, reserved names, ctl's list", () => {
  assert.deepEqual(SERVICE_RIGHTS.fs, ["fs.list", "fs.open", "fs.read"]);
  assert.deepEqual(SERVICE_RIGHTS.registry, ["registry.register"]);
  assert.deepEqual(rightsOf("*"), allRights());
  assert.equal(allRights().length, 13);
  // No service takes revocation pushes any more: they read identity's list file.
  for (const s of SERVICES) assert.ok(!findMethod(`${s}.sync`), s);
  assert.deepEqual([...SUPERVISED], ["registry", "identity", "fs"]);
  assert.deepEqual(CHILD_SERVICES, SUPERVISED);
  assert.deepEqual([...RESERVED].sort(), ["fs", "identity", "registry", "supervisor"]);
  assert.deepEqual(
    CTL_METHODS.map((m) => m.method),
    METHODS.map((m) => m.name),
  );
  for (const m of CTL_METHODS) {
    assert.equal(m.protected, findMethod(m.method)!.access !== "public", m.method);
  }
});
