/**
 * Text for people at a terminal: aligned tables, colour (only when asked
 * for), durations, relative times, byte sizes and a progress bar. Pure
 * functions: nothing here reads the environment or writes anything.
 * @module
 */

/** How output is painted: with ANSI colour or as plain text. */
export interface Style {
  color: boolean;
}

/** Plain text, for pipes, files and NO_COLOR. */
export const PLAIN: Readonly<Style> = { color: false };

/** The colours strata-ctl uses. */
export type Color = "bold" | "dim" | "red" | "green" | "yellow" | "blue" | "cyan";

const SGR: Readonly<Record<Color, string>> = {
  bold: "1",
  dim: "2",
  red: "31",
  green: "32",
  yellow: "33",
  blue: "34",
  cyan: "36",
};

/** Whether to colour stdout: it is a terminal and NO_COLOR is unset or empty. */
export function colorWanted(isTerminal: boolean, noColor: string | undefined): boolean {
  return isTerminal && (noColor === undefined || noColor === "");
}

/** `text` in `color` when the style has colour, else `text` unchanged. */
export function paint(color: Color, text: string, style: Style): string {
  return style.color ? `\x1b[${SGR[color]}m${text}\x1b[0m` : text;
}

// deno-lint-ignore no-control-regex -- matching the escape character is the point
const ANSI_RE = /\x1b\[[0-9;]*m/g;

/** `text` without ANSI colour codes. */
export function stripAnsi(text: string): string {
  return text.replace(ANSI_RE, "");
}

/** How many columns `text` takes on a terminal (colour codes take none). */
export function visibleWidth(text: string): number {
  return [...stripAnsi(text)].length;
}

/** A table column: its header and, optionally, right alignment (numbers). */
export interface Column {
  header: string;
  align?: "left" | "right";
}

/**
 * Lays out rows under headers with two spaces between columns, each as wide
 * as its widest cell; the last column is not padded, so lines carry no
 * trailing spaces. Cells may be coloured.
 */
export function table(columns: readonly Column[], rows: readonly string[][], style: Style): string {
  const header = columns.map((c) => c.header);
  const widths = columns.map((_, i) =>
    Math.max(visibleWidth(header[i]), ...rows.map((r) => visibleWidth(r[i] ?? "")))
  );
  const line = (cells: readonly string[], paintHeader: boolean) =>
    columns.map((c, i) => {
      const cell = cells[i] ?? "";
      const pad = " ".repeat(widths[i] - visibleWidth(cell));
      const text = paintHeader ? paint("bold", cell, style) : cell;
      if (c.align === "right") return pad + text;
      return i === columns.length - 1 ? text : text + pad;
    }).join("  ").trimEnd();
  return [line(header, true), ...rows.map((r) => line(r, false))].join("\n");
}

/** Label/value lines, the labels aligned: the human form of one record. */
export function fields(pairs: readonly [string, string][], style: Style): string {
  const width = Math.max(0, ...pairs.map(([k]) => visibleWidth(k)));
  return pairs.map(([k, v]) => `${paint("dim", k.padEnd(width), style)}  ${v}`.trimEnd())
    .join("\n");
}

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration such as `90s`, `15m`, `1h`, `7d`, `1h30m`, `500ms`, or a
 * plain number of seconds, into milliseconds; undefined when it is not one.
 */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t) * 1000;
  if (!/^(\d+(ms|s|m|h|d))+$/.test(t)) return undefined;
  let ms = 0;
  for (const m of t.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNIT_MS[m[2]];
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** A duration in at most two units, largest first: "3d 4h", "15m", "42s", "0s". */
export function formatDuration(ms: number): string {
  let s = Math.floor(Math.abs(ms) / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [["d", 86_400], ["h", 3600], ["m", 60], ["s", 1]] as const) {
    const n = Math.floor(s / size);
    s -= n * size;
    if (n > 0 && parts.length < 2) parts.push(`${n}${unit}`);
    else if (parts.length > 0) break;
  }
  return parts.length > 0 ? parts.join(" ") : "0s";
}

/** A time relative to now: "in 59m 58s" for the future, "3m 2s ago" for the past. */
export function formatRelative(atMs: number, nowMs: number): string {
  const d = atMs - nowMs;
  if (Math.abs(d) < 1000) return "now";
  return d > 0 ? `in ${formatDuration(d)}` : `${formatDuration(d)} ago`;
}

/** A time as people read it in logs: "2026-12-01 08:34:32 UTC". */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** A byte count: "13 B", "4.0 KiB", "12.3 MiB", "1.5 GiB". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** Options for {@link progressLine}. */
export interface ProgressLineOptions {
  /** Characters in the bar (default 30; with `columns`, what fits, at most 30). */
  width?: number;
  /** Bytes a second lately, when known: the line then shows the rate and the time left. */
  rateBps?: number;
  /**
   * The terminal's width: the line is cut to fit in one column less (a line
   * that reaches the last column wraps on some terminals). The bar shrinks
   * first, then the total, the bytes so far and the bar go, in that order;
   * the percentage, rate and time left stay longest.
   */
  columns?: number;
}

/**
 * The progress line of a download: a bar, the percentage, the bytes so far
 * (of the total), and with a rate the rate and the time left.
 */
export function progressLine(
  done: number,
  total: number,
  options: ProgressLineOptions = {},
): string {
  const frac = total > 0 ? Math.min(1, done / total) : 1;
  const bar = (width: number) => {
    const full = Math.round(frac * width);
    return `[${"#".repeat(full)}${"-".repeat(width - full)}]`;
  };
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  const rate = options.rateBps;
  const speed = rate === undefined ? [] : rate > 0
    ? [
      `${formatBytes(Math.round(rate))}/s`,
      `ETA ${done >= total ? "0s" : formatDuration(((total - done) / rate) * 1000 + 999)}`,
    ]
    : ["--/s", "ETA --"];
  const sizes = `${formatBytes(done)} of ${formatBytes(total)}`;
  if (options.columns === undefined) {
    return [`${bar(options.width ?? 30)} ${pct}`, sizes, ...speed].join("  ");
  }
  const room = Math.max(1, options.columns - 1);
  // From the fullest line to the barest: the first that fits with a bar of 10 or more.
  const variants: { parts: string[]; withBar: boolean }[] = [
    { parts: [pct, sizes, ...speed], withBar: true },
    { parts: [pct, formatBytes(done), ...speed], withBar: true },
    { parts: [pct, ...speed], withBar: true },
    { parts: [pct, ...speed], withBar: false },
    { parts: [pct.trim()], withBar: false },
  ];
  for (const v of variants) {
    const rest = v.parts.join("  ");
    if (!v.withBar) {
      if (rest.length <= room) return rest;
      continue;
    }
    const width = Math.min(options.width ?? 30, room - rest.length - 3);
    if (width >= 10) return `${bar(width)} ${rest}`;
  }
  return pct.trim().slice(0, room);
}

/** A list for one cell or line: "a, b, c", or "-" when empty. */
export function list(items: readonly string[] | undefined): string {
  return items && items.length > 0 ? items.join(", ") : "-";
}
