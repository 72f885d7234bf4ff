/** Unit tests for src/runtime/clock.ts: the manual clock tests advance instead of sleeping. */

import assert from "node:assert/strict";
import { ManualClock, systemClock } from "../../src/runtime/clock.ts";

Deno.test("ManualClock: time moves only on advance, and due callbacks run in time order", () => {
  const clock = new ManualClock(1_000_000);
  const ran: string[] = [];
  clock.after(300, () => ran.push(`b@${clock.now()}`));
  clock.after(100, () => ran.push(`a@${clock.now()}`));
  const cancel = clock.after(200, () => ran.push("cancelled"));
  cancel();
  assert.equal(clock.now(), 1_000_000);
  clock.advance(250);
  assert.deepEqual(ran, ["a@1000100"]);
  assert.equal(clock.now(), 1_000_250);
  assert.equal(clock.monotonic(), 250);
  clock.advance(50);
  assert.deepEqual(ran, ["a@1000100", "b@1000300"]);
  assert.equal(clock.pending, 0);
});

Deno.test("ManualClock: a callback scheduled by a callback runs within the same advance", () => {
  const clock = new ManualClock(0);
  let count = 0;
  const tick = () => {
    count++;
    clock.after(10, tick);
  };
  clock.after(10, tick);
  clock.advance(55);
  assert.equal(count, 5);
});

Deno.test("systemClock: reads the real time", () => {
  const before = Date.now();
  const now = systemClock.now();
  assert(now >= before && now <= Date.now());
  systemClock.after(1, () => {})();
});
