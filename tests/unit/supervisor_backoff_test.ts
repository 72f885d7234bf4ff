/**
 * Unit tests for src/supervisor/backoff.ts: restart delays and quarantine,
 * with the time injected.
 */

import assert from "node:assert/strict";
import {
  Backoff,
  CrashWindow,
  DEFAULT_BACKOFF,
  DEFAULT_QUARANTINE,
} from "../../src/supervisor/backoff.ts";

Deno.test("Backoff: doubles from 100 ms and is capped at 30 s", () => {
  // given the default backoff
  const b = new Backoff();
  // when asked for successive delays
  const delays = Array.from({ length: 12 }, () => b.next());
  // then they double from 100 and stop at 30 000
  assert.deepEqual(delays, [
    100,
    200,
    400,
    800,
    1600,
    3200,
    6400,
    12800,
    25600,
    30000,
    30000,
    30000,
  ]);
  assert.equal(b.stableMs, DEFAULT_BACKOFF.stableMs);
});

Deno.test("Backoff: stays at the cap however many restarts there are", () => {
  const b = new Backoff();
  for (let i = 0; i < 100; i++) b.next();
  assert.equal(b.next(), 30_000);
});

Deno.test("Backoff: reset goes back to the first delay", () => {
  const b = new Backoff();
  b.next();
  b.next();
  b.next();
  b.reset();
  assert.equal(b.next(), 100);
  assert.equal(b.next(), 200);
});

Deno.test("Backoff: options override the defaults", () => {
  const b = new Backoff({ initialMs: 10, maxMs: 35 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [10, 20, 35, 35]);
});

Deno.test("CrashWindow: the 5th crash within two minutes says quarantine, not the 4th", () => {
  // given five crashes a second apart
  const w = new CrashWindow();
  const verdicts = [0, 1000, 2000, 3000, 4000].map((t) => w.record(t));
  // then only the fifth says quarantine
  assert.deepEqual(verdicts, [false, false, false, false, true]);
  assert.equal(DEFAULT_QUARANTINE.crashes, 5);
});

Deno.test("CrashWindow: crashes spread out over more than the window never quarantine", () => {
  // given a crash every 30 s: the fifth is exactly two minutes after the first
  const w = new CrashWindow();
  const verdicts = [0, 30_000, 60_000, 90_000, 120_000, 150_000, 180_000].map((t) => w.record(t));
  // then there are never five within the window
  assert.deepEqual(verdicts, [false, false, false, false, false, false, false]);
});

Deno.test("CrashWindow: just inside the window counts, just outside does not", () => {
  const inside = new CrashWindow();
  assert.deepEqual([0, 1, 2, 3, 119_999].map((t) => inside.record(t)), [
    false,
    false,
    false,
    false,
    true,
  ]);
  const outside = new CrashWindow();
  assert.deepEqual([0, 1, 2, 3, 120_000].map((t) => outside.record(t)), [
    false,
    false,
    false,
    false,
    false,
  ]);
});

Deno.test("CrashWindow: clear forgets past crashes (an operator's start)", () => {
  const w = new CrashWindow();
  for (let t = 0; t < 4; t++) w.record(t);
  w.clear();
  assert.equal(w.record(5), false);
  for (let t = 6; t < 9; t++) w.record(t);
  assert.equal(w.record(9), true);
});

Deno.test("CrashWindow: options override the defaults", () => {
  const w = new CrashWindow({ crashes: 2, windowMs: 1000 });
  assert.equal(w.record(0), false);
  assert.equal(w.record(999), true);
  const w2 = new CrashWindow({ crashes: 2, windowMs: 1000 });
  w2.record(0);
  assert.equal(w2.record(1000), false);
});

Deno.test("Backoff: a service that had come up restarts at once, every time; one crashing at start-up waits", () => {
  // given a service that had been Healthy for a while before each crash
  const b = new Backoff();
  // when it crashes again and again, then each restart is immediate (quarantine bounds the count)
  assert.deepEqual([b.next({ healthyForMs: 5000 }), b.next({ healthyForMs: 300 })], [0, 0]);
  // when it crashes before becoming Healthy, or within upMs of it, then it waits, doubling
  const delays = [b.next(), b.next({ healthyForMs: 10 }), b.next({ healthyForMs: 249 })];
  assert.deepEqual(delays, [100, 200, 400]);
  assert.equal(DEFAULT_BACKOFF.upMs, 250);
  // and a crash after a good run in between does not reset that doubling
  assert.equal(b.next({ healthyForMs: 1000 }), 0);
  assert.equal(b.next(), 800);
  // until it has been stable (reset)
  b.reset();
  assert.equal(b.next(), 100);
});
