/**
 * Unit tests for src/policy/rights.ts: the rights table and turning an issue
 * request's actions and rights into one list.
 */

import assert from "node:assert/strict";
import {
  actionOf,
  allRights,
  ANY_SERVICE,
  resolveRights,
  rightsOf,
  SERVICE_RIGHTS,
  SERVICES,
} from "../../src/policy/rights.ts";
import { throwsStrata } from "./support.ts";

Deno.test("SERVICE_RIGHTS: every right is named after its service", () => {
  for (const [service, rights] of Object.entries(SERVICE_RIGHTS)) {
    for (const r of rights) assert.ok(r.startsWith(service + "."), r);
  }
  assert.deepEqual([...SERVICES].sort(), ["fs", "identity", "registry", "supervisor"]);
});

Deno.test("rightsOf: a service's own rights; * has all; an unknown service has none", () => {
  assert.deepEqual(rightsOf("fs"), ["fs.list", "fs.open", "fs.read"]);
  assert.deepEqual(rightsOf(ANY_SERVICE), allRights());
  assert.equal(allRights().length, 13);
  assert.deepEqual(rightsOf("nope"), []);
});

Deno.test("actionOf: strips the service prefix only", () => {
  assert.equal(actionOf("fs.read"), "read");
  assert.equal(actionOf("supervisor.svc.start"), "svc.start");
});

Deno.test("resolveRights: actions map to the service's rights, sorted and without duplicates", () => {
  // given actions and rights that overlap
  const rights = resolveRights({ service: "fs", actions: ["read", "list"], rights: ["fs.read"] });
  // then one sorted list of full rights comes back
  assert.deepEqual(rights, ["fs.list", "fs.read"]);
  assert.deepEqual(resolveRights({ service: "supervisor", actions: ["svc.stop"] }), [
    "supervisor.svc.stop",
  ]);
});

Deno.test("resolveRights: for service * actions are full rights", () => {
  assert.deepEqual(resolveRights({ service: "*", actions: ["registry.register", "fs.open"] }), [
    "fs.open",
    "registry.register",
  ]);
  throwsStrata(
    () => resolveRights({ service: "*", actions: ["read"] }),
    "INVALID_ARGUMENT",
    /^params\.actions: \* has no action "read"/,
  );
});

Deno.test("resolveRights: an unknown action or right is INVALID_ARGUMENT listing the valid ones", () => {
  throwsStrata(
    () => resolveRights({ service: "fs", actions: ["write"] }),
    "INVALID_ARGUMENT",
    /^params\.actions: fs has no action "write"; expected list, open, read/,
  );
  throwsStrata(
    () => resolveRights({ service: "fs", rights: ["fs.write"] }),
    "INVALID_ARGUMENT",
    /^params\.rights: fs has no right "fs\.write"; expected fs\.list, fs\.open, fs\.read/,
  );
  // a real right of another service is not a right of this one
  throwsStrata(
    () => resolveRights({ service: "fs", rights: ["identity.issue"] }),
    "INVALID_ARGUMENT",
    /^params\.rights: fs has no right "identity\.issue"/,
  );
});

Deno.test("resolveRights: an unknown service is INVALID_ARGUMENT naming params.service", () => {
  throwsStrata(
    () => resolveRights({ service: "mail", actions: ["send"] }),
    "INVALID_ARGUMENT",
    /^params\.service: unknown service "mail"; expected one of supervisor, registry, identity, fs/,
  );
});

Deno.test("resolveRights: asking for nothing is INVALID_ARGUMENT", () => {
  throwsStrata(
    () => resolveRights({ service: "fs" }),
    "INVALID_ARGUMENT",
    /at least one of actions or rights/,
  );
  throwsStrata(
    () => resolveRights({ service: "fs", actions: [], rights: [] }),
    "INVALID_ARGUMENT",
    /at least one/,
  );
});
