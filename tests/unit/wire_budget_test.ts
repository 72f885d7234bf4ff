/** Unit tests for src/wire/budget.ts: a shared pool of bytes, first come first served. */

import assert from "node:assert/strict";
import { ByteBudget } from "../../src/wire/budget.ts";

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
  // One macrotask turn, so every promise callback that could run has run (not a wait on time).
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(order, []);
  b.give(50);
  await Promise.all([first, second]);
  assert.deepEqual(order, ["a80", "b10"]);
});

Deno.test("ByteBudget.take: an aborted waiter leaves the queue, and those behind it are served", async () => {
  // given a full budget, a large waiter that gets aborted and a small one behind it
  const b = new ByteBudget(100);
  assert.equal(b.take(90), 90);
  const stop = new AbortController();
  const large = b.take(50, stop.signal) as Promise<number>;
  const small = b.take(10) as Promise<number>;
  assert.equal(b.waiting, 2);
  // when the large one is aborted
  stop.abort(new Error("connection closed"));
  // then it rejects with the reason, and the small one gets its bytes at once
  await assert.rejects(large, /connection closed/);
  assert.equal(await small, 10);
  assert.equal(b.waiting, 0);
  assert.equal(b.free, 0);
  // and a take with an already aborted signal that would wait rejects at once
  await assert.rejects(b.take(5, stop.signal) as Promise<number>, /connection closed/);
});

Deno.test("ByteBudget.tryTake: takes only what needs no wait, and never joins the line", async () => {
  // given a budget of 100 with 70 taken
  const b = new ByteBudget(100);
  assert.equal(b.tryTake(70), 70);
  // then what is free is taken at once, and more is not taken at all
  assert.equal(b.tryTake(40), undefined);
  assert.equal(b.free, 30);
  assert.equal(b.waiting, 0);
  assert.equal(b.tryTake(20), 20);
  // and while a take waits, nothing is taken past it, even what would fit
  const waiting = b.take(50) as Promise<number>;
  assert.equal(b.tryTake(5), undefined);
  assert.equal(b.free, 10);
  b.give(90);
  assert.equal(await waiting, 50);
  assert.equal(b.tryTake(250), undefined);
  assert.equal(b.tryTake(0), 0);
});
