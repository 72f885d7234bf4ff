/**
 * Unit tests for src/supervisor/manager.ts: the dependency order the
 * supervisor starts services in (the process handling is covered by the
 * integration tests), and what counts as a child's answer to its health call.
 */

import assert from "node:assert/strict";
import type { ChildService } from "../../src/runtime/config.ts";
import { dependencyOrder, Manager, type ServiceSpec } from "../../src/supervisor/manager.ts";
import { Audit } from "../../src/runtime/audit.ts";
import { logger } from "../../src/runtime/log.ts";
import { LogBook } from "../../src/supervisor/logs.ts";
import { callOnce } from "../../src/server/client.ts";
import type { StrataError } from "../../src/wire/errors.ts";
import { socketFixtureArgs, waitFor } from "../helpers.ts";

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

/** A Manager of one "fs", tests/fixtures/full_service.ts in `mode`, health checks every 100 ms. */
async function withFullService(
  mode: "answering" | "stuck",
  fn: (manager: Manager, path: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "strata-unit-" });
  const path = `${dir}/fs.sock`;
  const manager = new Manager({
    specs: [{
      name: "fs",
      deps: [],
      command: { cmd: Deno.execPath(), args: socketFixtureArgs("full_service.ts", path, mode) },
      endpoint: `unix://${path}`,
    }],
    audit: new Audit({ path: `${dir}/audit.log`, program: "supervisor" }),
    log: logger("supervisor"),
    readyTimeoutMs: 5000,
    healthIntervalMs: 100,
    logs: new LogBook(
      { runtimeDir: dir, stateDir: dir, nodeId: "t", fsRoots: [] },
      ["fs"],
      () => {},
    ),
  });
  try {
    manager.begin();
    await manager.startAll();
    await fn(manager, path);
  } finally {
    await manager.stopAll(500);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "Manager: a child refusing its health call for load while it answers its clients is alive, not restarted",
  sanitizeResources: false,
  async fn() {
    await withFullService("answering", async (manager, path) => {
      // given fs at its connection limit, answering the one connection it holds
      const first = manager.status("fs");
      assert.equal(first.state, "Healthy");
      const refused = await callOnce(path, "fs.health", {}).then(() => undefined, (e) => e);
      assert.equal((refused as StrataError | undefined)?.errorName, "RESOURCE_EXHAUSTED");
      assert.equal((refused as StrataError).details?.reason, "connection_limit");
      assert.equal(typeof (refused as StrataError).details?.finished, "number");
      // then ten health checks later (three misses kill) it is the same process
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(manager.status("fs").state, "Healthy");
      assert.equal(manager.status("fs").pid, first.pid);
    });
  },
});

Deno.test({
  name:
    "Manager: a child refusing its health call for load while it answers nothing misses, and is restarted",
  sanitizeResources: false,
  async fn() {
    await withFullService("stuck", async (manager) => {
      // given fs at its connection limit, its one connection answered nothing
      const first = manager.status("fs");
      // then its refusals, with no request answered between them, count as misses
      await waitFor("fs restarted", () => {
        const now = manager.status("fs");
        return now.pid !== first.pid || now.restarts > first.restarts;
      }, 5000);
    });
  },
});
