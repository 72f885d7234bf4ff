/**
 * Unit tests for src/policy/rate_limit.ts: rate syntax and per-capability
 * token buckets, with the time injected.
 */

import assert from "node:assert/strict";
import { parseRate, RateLimiter } from "../../src/policy/rate_limit.ts";
import { ManualClock } from "../../src/runtime/clock.ts";

Deno.test("parseRate: <n>rps from 1 to 9,999,999; anything else is not a rate", () => {
  assert.deepEqual(parseRate("50rps"), { perSecond: 50 });
  assert.deepEqual(parseRate("1rps"), { perSecond: 1 });
  assert.deepEqual(parseRate("9999999rps"), { perSecond: 9_999_999 });
  for (
    const bad of [
      "0rps",
      "01rps",
      "10000000rps",
      "rps",
      "5",
      "5 rps",
      "5RPS",
      "5rpm",
      "-5rps",
      "5.5rps",
      " 5rps",
    ]
  ) {
    assert.equal(parseRate(bad), undefined, bad);
  }
});

Deno.test("RateLimiter: a bucket allows a burst of one second's worth, then says how long to wait", () => {
  // given a limiter and a rate of 2 per second, all at t = 0
  const limiter = new RateLimiter();
  const rate = { perSecond: 2 };
  // then two requests pass and the third must wait 500 ms
  assert.equal(limiter.take("cap", rate, 0), 0);
  assert.equal(limiter.take("cap", rate, 0), 0);
  assert.equal(limiter.take("cap", rate, 0), 500);
});

Deno.test("RateLimiter: the bucket refills continuously over (injected) time", () => {
  // given an exhausted bucket of 2 rps at t = 0
  const limiter = new RateLimiter();
  const rate = { perSecond: 2 };
  limiter.take("cap", rate, 0);
  limiter.take("cap", rate, 0);
  // when 250 ms have passed, half a request has come back: wait 250 ms more
  assert.equal(limiter.take("cap", rate, 250), 250);
  // when 500 ms have passed in all, one request is allowed
  assert.equal(limiter.take("cap", rate, 500), 0);
  assert.ok(limiter.take("cap", rate, 500) > 0);
});

Deno.test("RateLimiter: a long idle period refills only up to the burst", () => {
  // given a bucket of 3 rps used once, then idle for a minute
  const limiter = new RateLimiter();
  const rate = { perSecond: 3 };
  limiter.take("cap", rate, 0);
  // then exactly three requests pass at once, not sixty seconds' worth
  for (let i = 0; i < 3; i++) assert.equal(limiter.take("cap", rate, 60_000), 0);
  assert.ok(limiter.take("cap", rate, 60_000) > 0);
});

Deno.test("RateLimiter: each key has its own bucket", () => {
  const limiter = new RateLimiter();
  const rate = { perSecond: 1 };
  assert.equal(limiter.take("a", rate, 0), 0);
  assert.equal(limiter.take("a", rate, 0), 1000);
  assert.equal(limiter.take("b", rate, 0), 0);
  assert.equal(limiter.size, 2);
});

Deno.test("RateLimiter: bounded buckets evict the least recently used", () => {
  // given room for two buckets of 1 rps, and a and b both exhausted at t = 0
  const limiter = new RateLimiter({ maxBuckets: 2 });
  const rate = { perSecond: 1 };
  assert.equal(limiter.take("a", rate, 0), 0);
  assert.equal(limiter.take("b", rate, 0), 0);
  // when a is used again (now the most recent) and c arrives
  assert.ok(limiter.take("a", rate, 0) > 0);
  assert.equal(limiter.take("c", rate, 0), 0);
  // then only two buckets are held, and b (least recently used) was dropped: it starts full
  assert.equal(limiter.size, 2);
  assert.equal(limiter.take("b", rate, 0), 0);
  // which in turn evicted a, while c is still held (and still exhausted)
  assert.ok(limiter.take("c", rate, 0) > 0);
  assert.equal(limiter.take("a", rate, 0), 0);
  assert.equal(limiter.size, 2);
});

Deno.test("RateLimiter: with an injected clock, a spent bucket refills as the clock advances", () => {
  const clock = new ManualClock();
  const limiter = new RateLimiter({ clock });
  const rate = { perSecond: 2 };
  assert.equal(limiter.take("a", rate), 0);
  assert.equal(limiter.take("a", rate), 0);
  assert.equal(limiter.take("a", rate), 500);
  clock.advance(400);
  assert.equal(limiter.take("a", rate), 100);
  clock.advance(100);
  assert.equal(limiter.take("a", rate), 0);
});
