/**
 * The methods strata-ctl knows, with a one-line summary and an example each,
 * for `--help`, suggestions and shell completion: derived from the method
 * table, so a method declared in src/api/ is listed here too.
 * @module
 */

import { METHODS as TABLE } from "../api/mod.ts";

/** One method as the CLI presents it. */
export interface MethodInfo {
  method: string;
  summary: string;
  /** Example params, or undefined when it takes none. */
  example?: Record<string, unknown>;
  /** Whether it needs a token. */
  protected: boolean;
}

/** Every method of every service, as the method table (src/api/) declares it. */
export const METHODS: readonly MethodInfo[] = TABLE.map((m) => ({
  method: m.name,
  summary: m.summary,
  example: m.example,
  protected: m.access !== "public",
}));

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** The closest candidate to `word`, if it is close enough to be a typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
