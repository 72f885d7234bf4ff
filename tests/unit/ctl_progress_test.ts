/**
 * Unit tests for the fs get progress line fitted to a terminal: rate and time
 * left, and a line that never reaches the last column at any width.
 */

import assert from "node:assert/strict";
import { progressLine } from "../../src/ctl/format.ts";
import { terminalProgress } from "../../src/ctl/files.ts";

const MIB = 1024 * 1024;
const ESC = String.fromCharCode(0x1b);

Deno.test("progressLine: with a rate, the rate and the time left", () => {
  assert.equal(
    progressLine(2 * MIB, 8 * MIB, { rateBps: 2 * MIB, columns: 120 }),
    "[########----------------------]  25%  2.0 MiB of 8.0 MiB  2.0 MiB/s  ETA 3s",
  );
  // the rate is not known yet
  assert.match(progressLine(0, 8 * MIB, { rateBps: 0, columns: 120 }), / {2}--\/s {2}ETA --$/);
});

Deno.test("progressLine: fits every width from 1 to 200 in one column less, keeping the most it can", () => {
  for (let cols = 1; cols <= 200; cols++) {
    const line = progressLine(3 * MIB, 8 * MIB, { rateBps: 1.5 * MIB, columns: cols });
    assert.ok(line.length <= Math.max(1, cols - 1), `${cols}: ${line}`);
  }
  // narrow: the total goes first, then the bytes so far; rate and time left stay
  assert.equal(
    progressLine(3 * MIB, 8 * MIB, { rateBps: 1.5 * MIB, columns: 40 }),
    "[#####--------]  37%  1.5 MiB/s  ETA 4s",
  );
  assert.equal(
    progressLine(3 * MIB, 8 * MIB, { rateBps: 1.5 * MIB, columns: 25 }),
    " 37%  1.5 MiB/s  ETA 4s",
  );
  assert.equal(progressLine(3 * MIB, 8 * MIB, { rateBps: 1.5 * MIB, columns: 6 }), "37%");
});

Deno.test("terminalProgress: the rate over the last seconds, cut to the width asked at each redraw", () => {
  const writes: string[] = [];
  let t = 0;
  let cols = 120;
  const p = terminalProgress((s) => writes.push(s), () => t, { columns: () => cols });
  p.onProgress(0, 10 * MIB);
  t = 1000;
  p.onProgress(MIB, 10 * MIB);
  assert.ok(writes[1].endsWith(`  1.0 MiB of 10.0 MiB  1.0 MiB/s  ETA 9s${ESC}[K`), writes[1]);
  cols = 40;
  t = 2000;
  p.onProgress(3 * MIB, 10 * MIB);
  const shown = writes[2].slice(1, -3);
  assert.ok(shown.length <= 39, shown);
  assert.match(shown, /1\.5 MiB\/s {2}ETA 5s$/);
});
