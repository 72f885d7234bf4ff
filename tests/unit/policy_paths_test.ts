/**
 * Unit tests for src/policy/paths.ts: the confinement decisions, on paths
 * that do not exist (nothing here touches the disk; fs_confined_test.ts
 * runs them against real folders and symlinks).
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  type Confinement,
  confinePath,
  isConfined,
  isStableName,
  MAX_PATH,
} from "../../src/policy/paths.ts";
import { throwsStrata } from "./support.ts";

const ROOT = "/nonexistent/strata/export";

function reason(err: { details?: Record<string, unknown> }): unknown {
  return err.details?.reason;
}

Deno.test("confinePath: joins a relative path to the prefix and normalises it", () => {
  const c: Confinement = { roots: [ROOT], prefix: `${ROOT}/data` };
  assert.equal(confinePath("a.txt", c), `${ROOT}/data/a.txt`);
  assert.equal(confinePath("sub/../a.txt", c), `${ROOT}/data/a.txt`);
  assert.equal(confinePath(".", c), `${ROOT}/data`);
  assert.equal(confinePath(`${ROOT}/data/`, c), `${ROOT}/data`);
});

Deno.test("confinePath: .., another prefix and a sibling root are refused without the disk", () => {
  const c: Confinement = { roots: [ROOT], prefix: `${ROOT}/data` };
  for (const raw of ["../top.txt", `${ROOT}/data/../../x`, `${ROOT}/datafoo/x`, "/etc/passwd"]) {
    const err = throwsStrata(() => confinePath(raw, c), "PERMISSION_DENIED", /path_prefix/);
    assert.equal(reason(err), "outside_prefix", raw);
  }
  const noPrefix = throwsStrata(
    () => confinePath(`${ROOT}foo/x`, { roots: [ROOT] }),
    "PERMISSION_DENIED",
    /outside the exported roots/,
  );
  assert.equal(reason(noPrefix), "outside_prefix");
});

Deno.test("confinePath: bad input is INVALID_ARGUMENT naming the field", () => {
  const c: Confinement = { roots: [ROOT] };
  throwsStrata(() => confinePath("", c), "INVALID_ARGUMENT", /must not be empty/);
  throwsStrata(() => confinePath(`${ROOT}/a\0b`, c), "INVALID_ARGUMENT", /NUL/);
  throwsStrata(() => confinePath("/" + "a".repeat(MAX_PATH), c), "INVALID_ARGUMENT", /longer/);
  throwsStrata(() => confinePath("rel", c), "INVALID_ARGUMENT", /path_prefix/);
  throwsStrata(() => confinePath(`${ROOT}/${"n".repeat(256)}`, c), "INVALID_ARGUMENT", /255/);
});

Deno.test("confinePath: names and paths are measured in UTF-8 bytes, at the limits", () => {
  const c: Confinement = { roots: ["/"] };
  // given names of 255 bytes in one-, two- and three-byte characters, then one byte more
  for (const [ch, n] of [["n", 255], ["é", 127], ["€", 85]] as const) {
    const name = ch.repeat(n) + "a".repeat(255 - n * new TextEncoder().encode(ch).length);
    // then 255 bytes pass and 256 are refused
    assert.equal(confinePath(`/${name}`, c), `/${name}`);
    throwsStrata(() => confinePath(`/${name}b`, c), "INVALID_ARGUMENT", /255 bytes/);
  }
  // given a whole path of 4095 bytes in names that each fit, then one byte more
  const names = Array.from({ length: 16 }, () => "€".repeat(85)).join("/"); // 16 * 256 - 1
  assert.equal(Buffer.byteLength(`/${names}`), 4096);
  const fits = `/${names}`.slice(0, -1) + "ab";
  assert.equal(Buffer.byteLength(fits), 4095);
  assert.equal(confinePath(fits, c), fits);
  throwsStrata(() => confinePath(`${fits}c`, c), "INVALID_ARGUMENT", /4095 bytes/);
});

Deno.test("confinePath: Strata's own folders are refused by path", () => {
  const c: Confinement = { roots: [ROOT], private: [`${ROOT}/state`] };
  const err = throwsStrata(() => confinePath(`${ROOT}/state/k`, c), "PERMISSION_DENIED");
  assert.equal(reason(err), "strata_private");
  assert.equal(confinePath(`${ROOT}/state-not`, c), `${ROOT}/state-not`);
});

Deno.test("isConfined: inside the prefix and a root, never a sibling name", () => {
  const c: Confinement = { roots: [ROOT], prefix: `${ROOT}/data` };
  assert.equal(isConfined(`${ROOT}/data/x`, c), true);
  assert.equal(isConfined(`${ROOT}/top`, c), false);
  assert.equal(isConfined(`${ROOT}/data2`, c), false);
});

Deno.test("isStableName: only root's or our own, unwritable by others, or ours in a sticky folder", () => {
  const c: Confinement = { roots: [ROOT], uid: 1000 };
  const mine = { uid: 1000, mode: 0o40755 };
  assert.equal(isStableName({ uid: 0, mode: 0o40755 }, mine, c), true);
  assert.equal(isStableName(mine, { uid: 2000, mode: 0o100644 }, c), true);
  assert.equal(isStableName({ uid: 2000, mode: 0o40755 }, mine, c), false);
  assert.equal(isStableName({ uid: 1000, mode: 0o40775 }, mine, c), false);
  assert.equal(isStableName({ uid: 0, mode: 0o41777 }, mine, c), true);
  assert.equal(isStableName({ uid: 0, mode: 0o41777 }, { uid: 2000, mode: 0o40755 }, c), false);
});
