/**
 * The idle collector: one full collection after a burst, once the process
 * has gone quiet, and none under load or when nothing grew.
 * @module
 */

import assert from "node:assert/strict";
import { type HeapFigures, IdleCollector } from "../../src/node/idle_gc.ts";
import { SERVICE_V8_FLAGS } from "../../src/runtime/command.ts";

const MB = 1024 * 1024;

/** A heap and a CPU clock the test sets, and a count of collections run on them. */
function fakeProcess(start: HeapFigures) {
  const heap = { ...start };
  const cpu = { micros: 0 };
  let collected = 0;
  return {
    heap,
    cpu,
    get collected() {
      return collected;
    },
    options: {
      read: () => ({ ...heap }),
      cpuMicros: () => cpu.micros,
      collect: () => {
        collected++;
        Object.assign(heap, start);
      },
    },
  };
}

Deno.test("IdleCollector: collects once after a burst, when the process has gone quiet", () => {
  // given a service that started with 10 MB of heap and external memory
  const f = fakeProcess({ heapUsed: 6 * MB, heapTotal: 9 * MB, external: 1 * MB });
  const c = new IdleCollector(f.options);
  // when a burst grows it by 8 MB while using half a core, then nothing is collected
  f.heap.heapTotal = 15 * MB;
  f.heap.external = 3 * MB;
  f.cpu.micros += 500_000;
  assert.equal(c.tick(1000), false);
  f.cpu.micros += 600_000;
  assert.equal(c.tick(2000), false);
  // when a tick finds it used 1% of a core, then one collection runs
  f.cpu.micros += 10_000;
  assert.equal(c.tick(3000), true);
  assert.equal(f.collected, 1);
  // and no more while nothing grows again
  assert.equal(c.tick(4000), false);
  assert.equal(c.tick(5000), false);
  assert.equal(f.collected, 1);
  assert.equal(c.collections, 1);
});

Deno.test("IdleCollector: a quiet heap that did not grow, or V8's own shrinking, costs no collection", () => {
  const f = fakeProcess({ heapUsed: 6 * MB, heapTotal: 9 * MB, external: 1 * MB });
  const c = new IdleCollector(f.options);
  // growth under the threshold
  f.heap.heapTotal = 10 * MB;
  assert.equal(c.tick(1000), false);
  assert.equal(c.tick(2000), false);
  // V8 shrank it by itself: the floor follows, so regrowing to the old size is not growth
  f.heap.heapTotal = 8 * MB;
  assert.equal(c.tick(3000), false);
  f.heap.heapTotal = 9.5 * MB;
  assert.equal(c.tick(4000), false);
  assert.equal(f.collected, 0);
});

Deno.test("IdleCollector: with settle, the first quiet tick after the start collects once, grown or not", () => {
  // given a service just started, busy for its first second
  const f = fakeProcess({ heapUsed: 6 * MB, heapTotal: 9 * MB, external: 1 * MB });
  const c = new IdleCollector({ ...f.options, settle: true });
  f.cpu.micros += 500_000;
  assert.equal(c.tick(1000), false);
  // when it goes quiet, the heap no larger than at the start, then one collection runs
  f.cpu.micros += 1_000;
  assert.equal(c.tick(2000), true);
  // and after it, only growth does, as without settle
  assert.equal(c.tick(3000), false);
  f.heap.heapTotal = 10 * MB;
  assert.equal(c.tick(4000), false);
  assert.equal(f.collected, 1);
});

Deno.test("IdleCollector: without V8's gc (no --expose-gc) it does nothing", () => {
  const f = fakeProcess({ heapUsed: 6 * MB, heapTotal: 9 * MB, external: 1 * MB });
  const c = new IdleCollector({ read: f.options.read, cpuMicros: f.options.cpuMicros });
  f.heap.heapTotal = 30 * MB;
  assert.equal(c.tick(1000), false);
  assert.equal(c.tick(2000), false);
  assert.equal(c.collections, 0);
});

/** Runs `code` in a Deno process with the services' V8 flags; returns the JSON it printed. */
async function inServiceProcess(code: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", `--v8-flags=${SERVICE_V8_FLAGS}`, "--allow-read", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("IdleCollector: in a process with --expose-gc (as the services run), a burst's heap goes back", async () => {
  // given a Deno process with the services' V8 flags that grew its heap by a burst and let it go
  const module = new URL("../../src/node/idle_gc.ts", import.meta.url).href;
  const code = `
    const { IdleCollector } = await import(${JSON.stringify(module)});
    const c = new IdleCollector({ cpuMicros: () => 0 });
    let burst = Array.from({ length: 300000 }, (_, i) => ({ i, s: "x" + i }));
    const grown = Deno.memoryUsage().heapTotal;
    burst = undefined;
    // when it ticks while quiet
    const collected = c.tick();
    console.log(JSON.stringify({ collected, grown, after: Deno.memoryUsage().heapTotal }));
  `;
  const r = await inServiceProcess(code);
  // then it collected, and the heap shrank by more than half of what the burst grew
  assert.equal(r.collected, true);
  assert.ok(r.after < r.grown / 2, JSON.stringify(r));
});

Deno.test("IdleCollector: the frame pool's buffers, let go after the collection that followed a burst, go back at the next quiet tick", async () => {
  // given a process with the services' V8 flags whose frame pool holds four 1 MiB buffers after
  // a burst of large frames, wired to the collector as node/service.ts wires the server's pool
  const idle = new URL("../../src/node/idle_gc.ts", import.meta.url).href;
  const frame = new URL("../../src/wire/frame.ts", import.meta.url).href;
  const code = `
    const { IdleCollector } = await import(${JSON.stringify(idle)});
    const { FramePool } = await import(${JSON.stringify(frame)});
    const c = new IdleCollector({ cpuMicros: () => 0 });
    const pool = new FramePool(4, { idleMs: 50, onRelease: () => c.collectWhenQuiet() });
    const burst = [pool.take(), pool.take(), pool.take(), pool.take()];
    for (const b of burst) b.fill(1);
    for (const b of burst) pool.give(b);
    burst.length = 0;
    const held = Deno.memoryUsage().external;
    // when the collector's first quiet tick comes before the pool lets its buffers go
    c.tick();
    const kept = Deno.memoryUsage().external;
    await new Promise((r) => setTimeout(r, 200));
    // and it ticks again once the pool has let them go
    const collected = c.tick();
    console.log(JSON.stringify({ held, kept, collected, after: Deno.memoryUsage().external }));
  `;
  const r = await inServiceProcess(code);
  // then the first collection could not free the buffers (the pool held them), the second did
  assert.ok(r.kept > r.held - MB, JSON.stringify(r));
  assert.equal(r.collected, true);
  assert.ok(r.after < r.kept - 3 * MB, JSON.stringify(r));
});
