/**
 * Unit tests for src/sources/registry_store.ts: the in-memory table, its
 * snapshot and change feed, and the registry kept in a store it is given.
 */

import assert from "node:assert/strict";
import {
  MemoryRegistryStore,
  type RegistryChange,
  type RegistryRecord,
} from "../../src/sources/registry_store.ts";
import { Registry, SUPERVISOR } from "../../src/registry/service.ts";
import { makeCap } from "./support.ts";

function record(service: string): RegistryRecord {
  return {
    service,
    endpoint: `unix:///run/${service}.sock`,
    api_v: 1,
    registered_at: "2030-01-01T00:00:00.000Z",
    owner: "supervisor",
    lineage: [],
    expMs: Infinity,
  };
}

Deno.test("MemoryRegistryStore: put, get, delete, snapshot in order, and a feed of each change", () => {
  const store = new MemoryRegistryStore();
  const changes: RegistryChange[] = [];
  const stop = store.subscribe((c) => changes.push(c));
  store.put(record("b"));
  store.put(record("a"));
  store.put({ ...record("b"), api_v: 2 });
  assert.equal(store.size, 2);
  assert.equal(store.get("b")?.api_v, 2);
  assert.deepEqual(store.snapshot().map((r) => r.service), ["b", "a"]);
  assert.equal(store.delete("a"), true);
  assert.equal(store.delete("a"), false);
  assert.deepEqual(changes.map((c) => c.op), ["put", "put", "put", "delete"]);
  stop();
  store.put(record("c"));
  assert.equal(changes.length, 4);
});

Deno.test("Registry: keeps its table in the store it is given, and removes revoked owners' rows there", () => {
  const store = new MemoryRegistryStore();
  const registry = new Registry(undefined, { store });
  const owner = makeCap();
  registry.register({ service: "fs", endpoint: "unix:///run/fs.sock", api_v: 1 }, SUPERVISOR);
  registry.register({ service: "mail", endpoint: "unix:///run/m.sock", api_v: 1 }, owner);
  assert.deepEqual(store.snapshot().map((r) => r.service), ["fs", "mail"]);
  assert.deepEqual(store.get("mail")?.lineage, owner.lineage);
  registry.dropRevoked([owner.capId]);
  assert.deepEqual(store.snapshot().map((r) => r.service), ["fs"]);
});
