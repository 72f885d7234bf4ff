/**
 * Unit tests for src/token/cap_ids.ts: CapIdMap answers as a Map of the same
 * ids would, through growth, compaction and deletes during iteration;
 * CapIdList gives its ids back.
 */

import assert from "node:assert/strict";
import { CapIdList, CapIdMap } from "../../src/token/cap_ids.ts";

/** A seeded generator, so a failure can be run again. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hexId = (rnd: () => number) =>
  Array.from({ length: 4 }, () => Math.floor(rnd() * 2 ** 32).toString(16).padStart(8, "0"))
    .join("");

/** Ids of every form: mostly 32-hex, some upper-case, short, long or empty. */
function anyId(rnd: () => number): string {
  const r = rnd();
  if (r < 0.85) return hexId(rnd);
  if (r < 0.9) return hexId(rnd).toUpperCase();
  if (r < 0.95) return `id-${Math.floor(rnd() * 1000)}`;
  if (r < 0.98) return hexId(rnd) + "0";
  return "";
}

Deno.test("CapIdMap: answers, sizes and order are a Map's, through growth, compaction and churn", () => {
  for (const seed of [1, 2, 3]) {
    const rnd = random(seed);
    const map = new CapIdMap();
    const model = new Map<string, number>();
    const ids: string[] = [];
    for (let step = 0; step < 30_000; step++) {
      const r = rnd();
      // Often an id seen before, so sets in place and deletes find something.
      const id = ids.length > 0 && rnd() < 0.5 ? ids[Math.floor(rnd() * ids.length)] : anyId(rnd);
      ids.push(id);
      if (r < 0.55) {
        const v = Math.floor(rnd() * 2 ** 40);
        map.set(id, v);
        model.set(id, v);
      } else if (r < 0.9) {
        assert.equal(map.delete(id), model.delete(id));
      } else {
        assert.equal(map.has(id), model.has(id));
        assert.equal(map.get(id), model.get(id));
      }
      assert.equal(map.size, model.size);
      if (step % 2500 === 0) assert.deepEqual([...map], [...model], `seed ${seed}, step ${step}`);
    }
    assert.deepEqual([...map.entries()], [...model.entries()]);
    assert.deepEqual([...map.keys()], [...model.keys()]);
  }
});

Deno.test("CapIdMap: a bounded record that drops its oldest as it iterates stays in order", () => {
  // given a record of 10,000 that drops the oldest hundredth when full, as identity's does
  const rnd = random(7);
  const map = new CapIdMap();
  const model = new Map<string, number>();
  for (let i = 0; i < 60_000; i++) {
    if (map.size >= 10_000) {
      let n = 100;
      // deleting while iterating, as the record does
      for (const [id] of map) {
        if (n-- <= 0) break;
        map.delete(id);
        model.delete(id);
      }
    }
    const id = hexId(rnd);
    map.set(id, i);
    model.set(id, i);
  }
  // then it holds what a Map would, oldest first
  assert.deepEqual([...map], [...model]);
  // and setting an id during an iteration is refused rather than skipping or repeating entries
  assert.throws(() => {
    for (const [id] of map) map.set(`${id}x`, 0);
  }, /set during an iteration/);
});

Deno.test("CapIdMap: hasWords finds a CapIdList's 32-hex ids without their strings", () => {
  const rnd = random(11);
  const held = Array.from({ length: 500 }, () => hexId(rnd));
  const other = Array.from({ length: 500 }, () => hexId(rnd));
  const map = new CapIdMap();
  for (const id of held) map.set(id, 1);
  map.set("not-hex", 2);
  const list = CapIdList.of([...held, ...other, "not-hex", "also-odd"]);
  const answers = Array.from({ length: list.length }, (_, i) => list.heldIn(map, i));
  assert.deepEqual(answers, [...list].map((id) => map.has(id)));
  assert.equal(answers.filter((x) => x).length, 501);
});

Deno.test("CapIdList: gives back every id as pushed, in order, of any form", () => {
  const rnd = random(5);
  const ids = Array.from({ length: 3000 }, () => anyId(rnd));
  ids.push("0".repeat(32)); // an all-zero id is a 32-hex id like any other
  const list = new CapIdList();
  for (const id of ids) list.push(id);
  assert.equal(list.length, ids.length);
  assert.deepEqual([...list], ids);
  assert.deepEqual(Array.from({ length: ids.length }, (_, i) => list.at(i)), ids);
  assert.deepEqual([...CapIdList.of(ids)], ids);
});
