/**
 * Unit tests for src/ctl/format.ts: tables, colour, durations, times, sizes
 * and the progress line.
 */

import assert from "node:assert/strict";
import {
  colorWanted,
  fields,
  formatBytes,
  formatDuration,
  formatRelative,
  formatTime,
  list,
  paint,
  parseDuration,
  PLAIN,
  progressLine,
  stripAnsi,
  table,
  visibleWidth,
} from "../../src/ctl/format.ts";

const COLOR = { color: true };

Deno.test("colorWanted: only on a terminal, and only when NO_COLOR is unset or empty", () => {
  assert.equal(colorWanted(true, undefined), true);
  assert.equal(colorWanted(true, ""), true);
  assert.equal(colorWanted(true, "1"), false);
  assert.equal(colorWanted(false, undefined), false);
});

Deno.test("paint: ANSI codes with colour, the text unchanged without", () => {
  assert.equal(paint("green", "ok", PLAIN), "ok");
  assert.equal(paint("green", "ok", COLOR), "\x1b[32mok\x1b[0m");
  assert.equal(stripAnsi(paint("red", "no", COLOR)), "no");
  assert.equal(visibleWidth(paint("bold", "héllo", COLOR)), 5);
});

Deno.test("table: columns as wide as their widest cell, two spaces apart, no trailing spaces", () => {
  // given rows of different widths
  const text = table(
    [{ header: "NAME" }, { header: "SIZE", align: "right" }, { header: "NOTE" }],
    [["a", "1", "x"], ["longer", "1000", ""]],
    PLAIN,
  );
  // then every column starts at the same place on every line
  assert.equal(
    text,
    [
      "NAME    SIZE  NOTE",
      "a          1  x",
      "longer  1000",
    ].join("\n"),
  );
  for (const line of text.split("\n")) assert.equal(line, line.trimEnd());
});

Deno.test("table: coloured cells do not change the layout", () => {
  const rows = [["fs", "Healthy"], ["registry", "Crashed"]];
  const plain = table([{ header: "NAME" }, { header: "STATE" }], rows, PLAIN);
  const coloured = table(
    [{ header: "NAME" }, { header: "STATE" }],
    rows.map(([n, s]) => [paint("green", n, COLOR), s]),
    COLOR,
  );
  assert.notEqual(coloured, plain);
  assert.equal(stripAnsi(coloured), plain);
});

Deno.test("fields: labels aligned, values after two spaces", () => {
  assert.equal(
    fields([["node", "local"], ["services", "3 of 3"]], PLAIN),
    "node      local\nservices  3 of 3",
  );
});

Deno.test("parseDuration: 90s, 15m, 1h, 7d, combinations, ms, and plain seconds", () => {
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("15m"), 900_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("7d"), 604_800_000);
  assert.equal(parseDuration("1h30m"), 5_400_000);
  assert.equal(parseDuration("500ms"), 500);
  assert.equal(parseDuration("3600"), 3_600_000);
  assert.equal(parseDuration(" 2m "), 120_000);
});

Deno.test("parseDuration: anything else is undefined", () => {
  for (const bad of ["", "h", "1.5h", "-1h", "1y", "1 h", "soon", "1h-"]) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
});

Deno.test("formatDuration: at most two units, largest first", () => {
  assert.equal(formatDuration(0), "0s");
  assert.equal(formatDuration(42_000), "42s");
  assert.equal(formatDuration(90_000), "1m 30s");
  assert.equal(formatDuration(3_600_000), "1h");
  assert.equal(formatDuration(3 * 86_400_000 + 4 * 3_600_000 + 5_000), "3d 4h");
  assert.equal(formatDuration(86_400_000 + 60_000), "1d");
  assert.equal(formatDuration(-90_000), "1m 30s");
});

Deno.test("formatRelative: 'in …' ahead, '… ago' behind, 'now' within a second", () => {
  const now = 1_000_000_000_000;
  assert.equal(formatRelative(now + 3_600_000, now), "in 1h");
  assert.equal(formatRelative(now - 62_000, now), "1m 2s ago");
  assert.equal(formatRelative(now + 400, now), "now");
});

Deno.test("formatTime: UTC, to the second", () => {
  assert.equal(formatTime(Date.parse("2026-12-01T08:34:32.789Z")), "2026-12-01 08:34:32 UTC");
});

Deno.test("formatBytes: bytes, then binary units with one decimal", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1024), "1.0 KiB");
  assert.equal(formatBytes(5 * 1024 * 1024 + 512 * 1024), "5.5 MiB");
  assert.equal(formatBytes(3 * 1024 ** 3), "3.0 GiB");
});

Deno.test("progressLine: a bar as full as the fraction done, the percentage and the sizes", () => {
  assert.equal(progressLine(0, 100, { width: 10 }), "[----------]   0%  0 B of 100 B");
  assert.equal(progressLine(50, 100, { width: 10 }), "[#####-----]  50%  50 B of 100 B");
  assert.equal(progressLine(100, 100, { width: 10 }), "[##########] 100%  100 B of 100 B");
  // a file that grew while it was read never overflows the bar
  assert.equal(progressLine(150, 100, { width: 10 }), "[##########] 100%  150 B of 100 B");
  // an empty file is done at once
  assert.equal(progressLine(0, 0, { width: 4 }), "[####] 100%  0 B of 0 B");
});

Deno.test("list: comma-separated, or '-' for nothing", () => {
  assert.equal(list(["a", "b"]), "a, b");
  assert.equal(list([]), "-");
  assert.equal(list(undefined), "-");
});
