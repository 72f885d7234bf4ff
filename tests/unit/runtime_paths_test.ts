/**
 * Unit tests for src/runtime/paths.ts: prefix containment on normalised
 * paths, and the posix functions, with node:path's as the oracle.
 */

import assert from "node:assert/strict";
import { posix as nodePosix } from "node:path";
import { isWithin, posix } from "../../src/runtime/paths.ts";

Deno.test("isWithin: the prefix itself and paths below it, never a sibling with a longer name", () => {
  assert.ok(isWithin("/tmp", "/tmp"));
  assert.ok(isWithin("/tmp/a/b", "/tmp"));
  assert.ok(!isWithin("/tmpfoo", "/tmp"));
  assert.ok(!isWithin("/tmpfoo/a", "/tmp"));
  assert.ok(!isWithin("/", "/tmp"));
  assert.ok(isWithin("/anything", "/"));
});

/** Paths made of the parts that matter to the arithmetic: slashes, dots, names, a trailing slash. */
function generatedPaths(count: number, seed: number): string[] {
  const parts = ["", "/", "//", ".", "..", "...", "a", "b.c", ".d", "e..", " ", "é"];
  let x = seed;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % parts.length;
  const out = [
    "",
    "/",
    "//",
    "///",
    ".",
    "./",
    "..",
    "../",
    "/..",
    "/../..",
    "a/..",
    "a/../..",
    "//a",
  ];
  for (let i = 0; i < count; i++) {
    let p = "";
    for (let n = next() % 7; n >= 0; n--) p += parts[next()] + (next() % 3 === 0 ? "" : "/");
    out.push(p);
  }
  return out;
}

Deno.test("posix: the same results as node:path's posix for generated paths", () => {
  const paths = generatedPaths(3000, 7);
  for (const p of paths) {
    for (const f of ["normalize", "isAbsolute", "dirname", "basename"] as const) {
      assert.equal(posix[f](p), nodePosix[f](p), `${f}(${JSON.stringify(p)})`);
    }
  }
  for (let i = 0; i + 2 < paths.length; i += 3) {
    const args = [paths[i], paths[i + 1], paths[i + 2]];
    assert.equal(posix.join(...args), nodePosix.join(...args), `join(${JSON.stringify(args)})`);
    assert.equal(
      posix.resolve(...args),
      nodePosix.resolve(...args),
      `resolve(${JSON.stringify(args)})`,
    );
    assert.equal(posix.join(args[0]), nodePosix.join(args[0]));
  }
  assert.equal(posix.join(), nodePosix.join());
  assert.equal(posix.resolve(), nodePosix.resolve());
  assert.equal(posix.resolve("a", "..", ".."), nodePosix.resolve("a", "..", ".."));
});

Deno.test("posix: the cases the layout and strata-ctl rely on", () => {
  assert.equal(posix.normalize("/run/strata/../strata//x/./"), "/run/strata/x/");
  assert.equal(posix.normalize("/.."), "/");
  assert.equal(posix.join("/srv", "../etc"), "/etc");
  assert.equal(posix.resolve("/home/op", "dl/"), "/home/op/dl");
  assert.equal(posix.resolve("/home/op", "/tmp/x"), "/tmp/x");
  assert.equal(posix.dirname("/a/b/"), "/a");
  assert.equal(posix.dirname("/a"), "/");
  assert.equal(posix.basename("/a/b/"), "b");
  assert.ok(!posix.isAbsolute("run/strata"));
});
