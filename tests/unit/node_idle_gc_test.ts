/**
 * The idle collector: one full collection after a burst, once the heap is
 * quiet, and none under load or when nothing grew.
 * @module
 */

import assert from "node:assert/strict";
import { type HeapFigures, IdleCollector } from "../../src/node/idle_gc.ts";

const MB = 1024 * 1024;

/** A heap whose figures the test sets, and a count of collections run on it. */
function fakeHeap(start: HeapFigures) {
  const heap = { ...start };
  let collected = 0;
  return {
    heap,
    get collected() {
      return collected;
    },
    options: {
      read: () => ({ ...heap }),
      collect: () => {
        collected++;
        heap.heapTotal = start.heapTotal;
        heap.external = start.external;
        heap.heapUsed = start.heapUsed;
      },
    },
  };
}

Deno.test("IdleCollector: collects once after a burst, when the heap has gone quiet", () => {
  // given a service that started with 9 MB of heap
  const f = fakeHeap({ heapUsed: 6 * MB, heapTotal: 9 * MB, external: 1 * MB });
  const c = new IdleCollector(f.options);
  // when a burst grows the heap by 8 MB and it still changes, then nothing is collected
  f.heap.heapTotal = 15 * MB;
  f.heap.external = 3 * MB;
  f.heap.heapUsed = 12 * MB;
  assert.equal(c.tick(), false);
  f.heap.heapUsed = 10 * MB;
  assert.equal(c.tick(), false);
  // when a tick finds it unchanged, then one collection runs
  assert.equal(c.tick(), true);
  assert.equal(f.collected, 1);
  // and no more while nothing grows again
  assert.equal(c.tick(), false);
  assert.equal(c.tick(), false);
  assert.equal(f.collected, 1);
});

Deno.test("IdleCollector: a quiet heap that did not grow, or V8's own shrinking, costs no collection", () => {
  const f = fakeHeap({ heapUsed: 6 * MB, heapTotal: 9 * MB, external: 1 * MB });
  const c = new IdleCollector(f.options);
  // growth under the threshold
  f.heap.heapTotal = 10 * MB;
  assert.equal(c.tick(), false);
  assert.equal(c.tick(), false);
  // V8 shrank it by itself: the floor follows, so regrowing to the old size is not growth
  f.heap.heapTotal = 8 * MB;
  assert.equal(c.tick(), false);
  f.heap.heapTotal = 9.5 * MB;
  assert.equal(c.tick(), false);
  assert.equal(f.collected, 0);
});

Deno.test("IdleCollector: without V8's gc (no --expose-gc) it does nothing", () => {
  const f = fakeHeap({ heapUsed: 6 * MB, heapTotal: 9 * MB, external: 1 * MB });
  const c = new IdleCollector({ read: f.options.read });
  f.heap.heapTotal = 30 * MB;
  assert.equal(c.tick(), false);
  assert.equal(c.tick(), false);
  assert.equal(c.collections, 0);
});
