/**
 * Unit tests for src/supervisor/manager.ts: the dependency order the
 * supervisor starts services in (the process handling is covered by the
 * integration tests).
 */

import assert from "node:assert/strict";
import type { ChildService } from "../../src/runtime/config.ts";
import { dependencyOrder, type ServiceSpec } from "../../src/supervisor/manager.ts";

function spec(name: string, deps: string[]): ServiceSpec {
  return {
    name: name as ChildService,
    deps: deps as ChildService[],
    command: { cmd: "/bin/true", args: [] },
    endpoint: `unix:///run/x/${name}.sock`,
  };
}

Deno.test("dependencyOrder: dependencies come first, whatever order the specs are given in", () => {
  // given fs → identity → registry, declared backwards
  const specs = [
    spec("fs", ["identity", "registry"]),
    spec("identity", ["registry"]),
    spec("registry", []),
  ];
  // then registry starts first and fs last
  assert.deepEqual(dependencyOrder(specs), ["registry", "identity", "fs"]);
  assert.deepEqual(dependencyOrder([...specs].reverse()), ["registry", "identity", "fs"]);
});

Deno.test("dependencyOrder: independent services keep their declared order", () => {
  assert.deepEqual(dependencyOrder([spec("fs", []), spec("registry", [])]), ["fs", "registry"]);
  assert.deepEqual(dependencyOrder([]), []);
});

Deno.test("dependencyOrder: every service appears once, after each of its dependencies", () => {
  const specs = [spec("fs", ["registry"]), spec("identity", ["registry"]), spec("registry", [])];
  const order = dependencyOrder(specs);
  assert.equal(new Set(order).size, 3);
  for (const s of specs) {
    for (const d of s.deps) {
      assert.ok(order.indexOf(d) < order.indexOf(s.name), `${d} before ${s.name}`);
    }
  }
});

Deno.test("dependencyOrder: a cycle throws, naming the cycle", () => {
  const specs = [
    spec("registry", ["fs"]),
    spec("identity", ["registry"]),
    spec("fs", ["identity"]),
  ];
  assert.throws(
    () => dependencyOrder(specs),
    /dependency cycle: registry → fs → identity → registry/,
  );
  assert.throws(() => dependencyOrder([spec("fs", ["fs"])]), /dependency cycle: fs → fs/);
});

Deno.test("dependencyOrder: a dependency that is not declared throws, naming both", () => {
  assert.throws(
    () => dependencyOrder([spec("fs", ["identity"]), spec("registry", [])]),
    /fs depends on identity, which is not declared/,
  );
});
