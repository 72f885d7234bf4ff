/** Unit tests for src/ipc/budget.ts: a shared pool of bytes, first come first served. */

import assert from "node:assert/strict";
import { ByteBudget } from "../../src/ipc/budget.ts";

Deno.test("ByteBudget.charge: bytes that already exist count at once, and later takes wait", async () => {
  // given a budget of 100 with 60 taken
  const b = new ByteBudget(100);
  assert.equal(b.take(60), 60);
  // when 70 more are charged (a response larger than its estimate)
  b.charge(70);
  // then the budget is over-drawn and a take of even 0 bytes waits
  assert.equal(b.free, -30);
  const waiting = b.take(0);
  assert(waiting instanceof Promise);
  assert.equal(b.waiting, 1);
  // until enough is given back (a negative charge gives back too)
  b.charge(-70);
  assert.equal(await waiting, 0);
  assert.equal(b.waiting, 0);
  b.give(60);
  assert.equal(b.free, 100);
});

Deno.test("ByteBudget.take: waiters are served in order, a take is capped at the whole budget", async () => {
  const b = new ByteBudget(100);
  assert.equal(b.take(250), 100);
  const order: string[] = [];
  const first = (b.take(80) as Promise<number>).then((n) => order.push(`a${n}`));
  const second = (b.take(10) as Promise<number>).then((n) => order.push(`b${n}`));
  // a small take does not overtake a larger one that waits before it
  b.give(50);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(order, []);
  b.give(50);
  await Promise.all([first, second]);
  assert.deepEqual(order, ["a80", "b10"]);
});
