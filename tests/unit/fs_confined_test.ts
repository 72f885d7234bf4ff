/**
 * Unit tests for src/fs/confined.ts: confinement by real paths, on real
 * temporary folders with real symbolic links (the pure decisions it applies
 * are tested in policy_paths_test.ts).
 */

import assert from "node:assert/strict";
import { AS_ROOT } from "../helpers.ts";
import { closeSync, openSync, readSync } from "node:fs";
import { type Confinement, MAX_PATH } from "../../src/policy/paths.ts";
import { listConfined, openConfined, resolveConfined } from "../../src/fs/confined.ts";
import { ManualClock } from "../../src/runtime/clock.ts";
import type { StrataError } from "../../src/wire/errors.ts";
import { rejectsStrata, throwsStrata, withTempDir } from "./support.ts";

/**
 * Builds, under `dir`:
 *   export/               the export root
 *     data/a.txt (5 B), data/b.bin (3 B), data/sub/c.txt, data/up -> ../top.txt
 *     top.txt
 *     link_out -> outside/secret.txt   (leaves the root)
 *     link_in  -> export/data/a.txt    (stays inside)
 *     linkdir  -> export/data          (a folder link inside)
 *   exportfoo/x.txt       a sibling whose name starts with the root's
 *   outside/secret.txt
 */
function tree(dir: string) {
  const exp = `${dir}/export`;
  for (const d of [`${exp}/data/sub`, `${dir}/exportfoo`, `${dir}/outside`]) {
    Deno.mkdirSync(d, { recursive: true });
  }
  Deno.writeTextFileSync(`${exp}/data/a.txt`, "hello");
  Deno.writeFileSync(`${exp}/data/b.bin`, new Uint8Array([0, 1, 2]));
  Deno.writeTextFileSync(`${exp}/data/sub/c.txt`, "c");
  Deno.writeTextFileSync(`${exp}/top.txt`, "top");
  Deno.writeTextFileSync(`${dir}/exportfoo/x.txt`, "x");
  Deno.writeTextFileSync(`${dir}/outside/secret.txt`, "secret");
  Deno.symlinkSync(`${dir}/outside/secret.txt`, `${exp}/link_out`);
  Deno.symlinkSync(`${exp}/data/a.txt`, `${exp}/link_in`);
  Deno.symlinkSync(`${exp}/data`, `${exp}/linkdir`);
  Deno.symlinkSync("../top.txt", `${exp}/data/up`);
  return { exp, roots: [exp] as const };
}

function reason(err: { details?: Record<string, unknown> }): unknown {
  return err.details?.reason;
}

/**
 * The lowest free file descriptor number (the kernel always hands out the
 * lowest): if a call leaks a descriptor, this number goes up.
 */
function lowestFreeFd(): number {
  const fd = openSync("/dev/null", "r");
  closeSync(fd);
  return fd;
}

Deno.test("resolveConfined: an absolute path inside the root resolves to itself", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    assert.equal(resolveConfined(`${exp}/data/a.txt`, { roots }), `${exp}/data/a.txt`);
    assert.equal(resolveConfined(`${exp}/data/`, { roots }), `${exp}/data`);
    assert.equal(resolveConfined(exp, { roots }), exp);
  });
});

Deno.test("resolveConfined: a relative path is resolved against the token's prefix", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    const c: Confinement = { roots, prefix: `${exp}/data` };
    assert.equal(resolveConfined("a.txt", c), `${exp}/data/a.txt`);
    assert.equal(resolveConfined("sub/c.txt", c), `${exp}/data/sub/c.txt`);
    assert.equal(resolveConfined("sub/../a.txt", c), `${exp}/data/a.txt`);
    assert.equal(resolveConfined(".", c), `${exp}/data`);
  });
});

Deno.test("resolveConfined: .. escaping the prefix is PERMISSION_DENIED before touching the disk", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    const c: Confinement = { roots, prefix: `${exp}/data` };
    // relative and absolute forms, including one whose target does not even exist
    for (
      const raw of [
        "../top.txt",
        "../../outside/secret.txt",
        `${exp}/data/../../outside/secret.txt`,
        "../nope/nothing",
      ]
    ) {
      const err = throwsStrata(
        () => resolveConfined(raw, c),
        "PERMISSION_DENIED",
        /outside the token's path_prefix/,
      );
      assert.equal(reason(err), "outside_prefix", raw);
    }
  });
});

Deno.test("resolveConfined: an absolute path outside the prefix is PERMISSION_DENIED", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    const err = throwsStrata(
      () => resolveConfined(`${exp}/top.txt`, { roots, prefix: `${exp}/data` }),
      "PERMISSION_DENIED",
    );
    assert.equal(reason(err), "outside_prefix");
    throwsStrata(
      () => resolveConfined("/etc/passwd", { roots, prefix: `${exp}/data` }),
      "PERMISSION_DENIED",
    );
  });
});

Deno.test("resolveConfined: a path outside every root (no prefix) is PERMISSION_DENIED naming the roots", async () => {
  await withTempDir((dir) => {
    const { roots } = tree(dir);
    const err = throwsStrata(
      () => resolveConfined(`${dir}/outside/secret.txt`, { roots }),
      "PERMISSION_DENIED",
      /outside the exported roots/,
    );
    assert.equal(reason(err), "outside_prefix");
    throwsStrata(() => resolveConfined("/etc/passwd", { roots }), "PERMISSION_DENIED");
    // and with no roots at all, nothing is reachable
    throwsStrata(
      () => resolveConfined(`${dir}/export/data/a.txt`, { roots: [] }),
      "PERMISSION_DENIED",
    );
  });
});

Deno.test("resolveConfined: a symlink that points out of the root is PERMISSION_DENIED symlink_escape", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    const err = throwsStrata(
      () => resolveConfined(`${exp}/link_out`, { roots }),
      "PERMISSION_DENIED",
      /resolves through a symbolic link/,
    );
    assert.equal(reason(err), "symlink_escape");
  });
});

Deno.test("resolveConfined: a symlink inside the root but out of the prefix is PERMISSION_DENIED", async () => {
  await withTempDir((dir) => {
    // given data/up -> ../top.txt: inside the export root, outside the data prefix
    const { exp, roots } = tree(dir);
    const err = throwsStrata(
      () => resolveConfined("up", { roots, prefix: `${exp}/data` }),
      "PERMISSION_DENIED",
    );
    assert.equal(reason(err), "symlink_escape");
    // while without the prefix it is allowed
    assert.equal(resolveConfined(`${exp}/data/up`, { roots }), `${exp}/top.txt`);
  });
});

Deno.test("resolveConfined: a symlink that stays inside resolves to its real target", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    assert.equal(resolveConfined(`${exp}/link_in`, { roots }), `${exp}/data/a.txt`);
    assert.equal(resolveConfined(`${exp}/linkdir/sub/c.txt`, { roots }), `${exp}/data/sub/c.txt`);
  });
});

Deno.test("resolveConfined: a sibling whose name extends the prefix (/x/tmpfoo vs /x/tmp) is PERMISSION_DENIED", async () => {
  await withTempDir((dir) => {
    // given prefix <dir>/tmp and an existing <dir>/tmpfoo/x.txt, both under the root <dir>
    Deno.mkdirSync(`${dir}/tmp`);
    Deno.mkdirSync(`${dir}/tmpfoo`);
    Deno.writeTextFileSync(`${dir}/tmpfoo/x.txt`, "x");
    const c: Confinement = { roots: [dir], prefix: `${dir}/tmp` };
    // then the sibling is refused
    const err = throwsStrata(() => resolveConfined(`${dir}/tmpfoo/x.txt`, c), "PERMISSION_DENIED");
    assert.equal(reason(err), "outside_prefix");
    // and the same holds for export roots: <dir>/exportfoo is not inside <dir>/export
    const { roots } = tree(dir);
    throwsStrata(() => resolveConfined(`${dir}/exportfoo/x.txt`, { roots }), "PERMISSION_DENIED");
  });
});

Deno.test("resolveConfined: a NUL byte, an empty path or an over-long path is INVALID_ARGUMENT", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    throwsStrata(
      () => resolveConfined(`${exp}/data/a.txt\0.png`, { roots }),
      "INVALID_ARGUMENT",
      /NUL byte/,
    );
    throwsStrata(() => resolveConfined("", { roots }), "INVALID_ARGUMENT", /must not be empty/);
    throwsStrata(
      () => resolveConfined("/" + "a".repeat(MAX_PATH), { roots }),
      "INVALID_ARGUMENT",
      /longer than 4096/,
    );
  });
});

Deno.test("resolveConfined: a name over 255 bytes or a path over 4095 bytes is INVALID_ARGUMENT before the disk", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    for (const raw of [`${exp}/${"x".repeat(256)}`, `${exp}/data/${"é".repeat(128)}`]) {
      throwsStrata(() => resolveConfined(raw, { roots }), "INVALID_ARGUMENT", /^path: .*255 bytes/);
    }
    // 3000 characters, 4500 bytes: within the characters, over the bytes
    throwsStrata(
      () => resolveConfined("é/".repeat(1500), { roots, prefix: exp }),
      "INVALID_ARGUMENT",
      /^path: longer than 4095 bytes/,
    );
    // exactly 255 bytes is a name the kernel takes: NOT_FOUND, not a length error
    throwsStrata(() => resolveConfined(`${exp}/${"x".repeat(255)}`, { roots }), "NOT_FOUND");
  });
});

Deno.test("resolveConfined: Strata's own folders are refused, by path, through a symlink and as the prefix", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    const state = `${exp}/state`;
    Deno.mkdirSync(state);
    Deno.writeTextFileSync(`${state}/keys.json`, "{}");
    Deno.symlinkSync(`${state}/keys.json`, `${exp}/data/keys`);
    const c: Confinement = { roots, private: [state] };
    for (const raw of [state, `${state}/keys.json`, `${state}/missing`, `${exp}/data/../state`]) {
      const err = throwsStrata(() => resolveConfined(raw, c), "PERMISSION_DENIED", /^path: /);
      assert.equal(reason(err), "strata_private", raw);
    }
    const link = throwsStrata(() => resolveConfined(`${exp}/data/keys`, c), "PERMISSION_DENIED");
    assert.equal(reason(link), "strata_private");
    const prefixed = throwsStrata(
      () => resolveConfined("keys.json", { ...c, prefix: state }),
      "PERMISSION_DENIED",
    );
    assert.equal(reason(prefixed), "strata_private");
    // the folder around it is still served, and a sibling name is not caught
    assert.equal(resolveConfined(`${exp}/data/a.txt`, c), `${exp}/data/a.txt`);
    Deno.mkdirSync(`${exp}/state-not`);
    assert.equal(resolveConfined(`${exp}/state-not`, c), `${exp}/state-not`);
  });
});

Deno.test("openConfined: a Unix socket and a symlink loop are INVALID_ARGUMENT naming the path", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    const listener = Deno.listen({ transport: "unix", path: `${exp}/s.sock` });
    try {
      throwsStrata(
        () => openConfined(`${exp}/s.sock`, { roots }),
        "INVALID_ARGUMENT",
        /^path: .*not a regular file/,
      );
    } finally {
      listener.close();
    }
    Deno.symlinkSync("loop", `${exp}/loop`);
    throwsStrata(
      () => openConfined(`${exp}/loop`, { roots }),
      "INVALID_ARGUMENT",
      /^path: .*symbolic links/,
    );
    throwsStrata(
      () => listConfined(`${exp}/top.txt/x`, { roots }, { limit: 10 }),
      "INVALID_ARGUMENT",
      /^path: .*not a folder/,
    );
  });
});

Deno.test("resolveConfined: a relative path without a prefix is INVALID_ARGUMENT", async () => {
  await withTempDir((dir) => {
    const { roots } = tree(dir);
    throwsStrata(
      () => resolveConfined("data/a.txt", { roots }),
      "INVALID_ARGUMENT",
      /relative path needs a token with a path_prefix/,
    );
  });
});

Deno.test("resolveConfined: a missing file inside is NOT_FOUND naming the path", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    throwsStrata(
      () => resolveConfined(`${exp}/data/nope.txt`, { roots }),
      "NOT_FOUND",
      new RegExp(`${exp}/data/nope\\.txt: no such file`),
    );
    throwsStrata(() => resolveConfined("nope", { roots, prefix: `${exp}/data` }), "NOT_FOUND");
  });
});

Deno.test("resolveConfined: a prefix that runs through a symlink is PERMISSION_DENIED symlinked_prefix", async () => {
  await withTempDir((dir) => {
    // given a prefix spelled through linkdir -> data
    const { exp, roots } = tree(dir);
    const c: Confinement = { roots, prefix: `${exp}/linkdir` };
    // then even a harmless relative path is refused
    const err = throwsStrata(
      () => resolveConfined("a.txt", c),
      "PERMISSION_DENIED",
      /runs through a symbolic link/,
    );
    assert.equal(reason(err), "symlinked_prefix");
  });
});

Deno.test("openConfined: opens a regular file inside and returns its real path and size", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    const opened = openConfined(`${exp}/link_in`, { roots });
    try {
      assert.equal(opened.path, `${exp}/data/a.txt`);
      assert.equal(opened.size, 5);
      const buf = new Uint8Array(16);
      const n = readSync(opened.fd, buf, 0, 16, 0);
      assert.equal(new TextDecoder().decode(buf.subarray(0, n)), "hello");
    } finally {
      closeSync(opened.fd);
    }
  });
});

Deno.test("openConfined: a directory is INVALID_ARGUMENT, and no descriptor is leaked", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    const before = lowestFreeFd();
    throwsStrata(
      () => openConfined(`${exp}/data`, { roots }),
      "INVALID_ARGUMENT",
      /is a directory; use fs\.list/,
    );
    throwsStrata(() => openConfined("sub", { roots, prefix: `${exp}/data` }), "INVALID_ARGUMENT");
    assert.equal(lowestFreeFd(), before);
  });
});

Deno.test("openConfined: a FIFO is INVALID_ARGUMENT at once (the open does not block)", async () => {
  await withTempDir(async (dir) => {
    const { exp, roots } = tree(dir);
    const made = await new Deno.Command("mkfifo", { args: [`${exp}/pipe`] }).output();
    assert.ok(made.success, "test setup: mkfifo failed");
    const before = lowestFreeFd();
    throwsStrata(
      () => openConfined(`${exp}/pipe`, { roots }),
      "INVALID_ARGUMENT",
      /not a regular file/,
    );
    assert.equal(lowestFreeFd(), before);
  });
});

Deno.test("openConfined: refuses what resolveConfined refuses, without leaking", async () => {
  await withTempDir((dir) => {
    const { exp, roots } = tree(dir);
    const before = lowestFreeFd();
    throwsStrata(() => openConfined(`${exp}/link_out`, { roots }), "PERMISSION_DENIED");
    throwsStrata(() => openConfined(`${dir}/outside/secret.txt`, { roots }), "PERMISSION_DENIED");
    throwsStrata(() => openConfined(`${exp}/missing`, { roots }), "NOT_FOUND");
    assert.equal(lowestFreeFd(), before);
  });
});

Deno.test("listConfined: entries sorted by name, with sizes, kinds and symlinks reported not followed", async () => {
  await withTempDir(async (dir) => {
    const { exp, roots } = tree(dir);
    // when the data folder is listed
    const out = await listConfined(`${exp}/data`, { roots }, { limit: 100 });
    // then every entry is there, sorted, with file sizes
    assert.equal(out.path, `${exp}/data`);
    assert.equal(out.truncated, false);
    assert.deepEqual(out.entries, [
      { name: "a.txt", is_dir: false, is_symlink: false, size: 5 },
      { name: "b.bin", is_dir: false, is_symlink: false, size: 3 },
      { name: "sub", is_dir: true, is_symlink: false, size: 0 },
      { name: "up", is_dir: false, is_symlink: true, size: 0 },
    ]);
  });
});

Deno.test("listConfined: a limit truncates the listing and says so", async () => {
  await withTempDir(async (dir) => {
    const { exp, roots } = tree(dir);
    // when listed with room for two of the four entries
    const out = await listConfined(`${exp}/data`, { roots }, { limit: 2 });
    // then two come back, sorted, and the listing is marked truncated
    assert.equal(out.entries.length, 2);
    assert.equal(out.truncated, true);
    const names = out.entries.map((e) => e.name);
    assert.deepEqual(names, [...names].sort());
    for (const n of names) assert.ok(["a.txt", "b.bin", "sub", "up"].includes(n));
    // and a limit equal to the count is not truncated
    assert.equal((await listConfined(`${exp}/data`, { roots }, { limit: 4 })).truncated, false);
  });
});

Deno.test("listConfined: a file is INVALID_ARGUMENT, and confinement applies", async () => {
  await withTempDir(async (dir) => {
    const { exp, roots } = tree(dir);
    await rejectsStrata(
      async () => await listConfined(`${exp}/data/a.txt`, { roots }, { limit: 10 }),
      "INVALID_ARGUMENT",
      /not a directory/,
    );
    await rejectsStrata(
      async () => await listConfined(`${dir}/outside`, { roots }, { limit: 10 }),
      "PERMISSION_DENIED",
    );
    // a relative "." lists the prefix itself
    assert.equal(
      (await listConfined(".", { roots, prefix: `${exp}/data/sub` }, { limit: 10 })).entries[0]
        .name,
      "c.txt",
    );
  });
});

Deno.test("listConfined: a folder reached through a symlink inside the root is listed at its real path", async () => {
  await withTempDir(async (dir) => {
    const { exp, roots } = tree(dir);
    // when a folder link that stays inside is listed, twice (the second time after a plain listing)
    for (const path of [`${exp}/linkdir`, `${exp}/data`, `${exp}/linkdir`]) {
      const out = await listConfined(path, { roots }, { limit: 10 });
      // then the listing is the real folder's, named by its real path
      assert.equal(out.path, `${exp}/data`);
      assert.equal(out.entries.length, 4);
    }
  });
});

Deno.test("listConfined: a path that listed before is refused once a name on it, or above the root, becomes a symlink out", async () => {
  await withTempDir(async (dir) => {
    // given a root below a parent folder, and a folder outside it with the same shape
    const exp = `${dir}/p/export`;
    Deno.mkdirSync(`${exp}/data`, { recursive: true });
    Deno.writeTextFileSync(`${exp}/data/a.txt`, "hello");
    Deno.mkdirSync(`${dir}/evil/export/data`, { recursive: true });
    Deno.writeTextFileSync(`${dir}/evil/export/data/secret.txt`, "secret");
    const c = { roots: [exp] };
    // when the folder is listed (by lstats alone, the path being plain), then again
    assert.equal((await listConfined(`${exp}/data`, c, { limit: 10 })).entries[0].name, "a.txt");
    assert.equal((await listConfined(`${exp}/data`, c, { limit: 10 })).entries[0].name, "a.txt");
    // and the folder inside the root is swapped for a symlink to the outside one
    Deno.renameSync(`${exp}/data`, `${exp}/data.old`);
    Deno.symlinkSync(`${dir}/evil/export/data`, `${exp}/data`);
    // then listing it is refused
    const swapped = await rejectsStrata(
      async () => await listConfined(`${exp}/data`, c, { limit: 10 }),
      "PERMISSION_DENIED",
    );
    assert.equal(reason(swapped), "symlink_escape");
    Deno.removeSync(`${exp}/data`);
    Deno.renameSync(`${exp}/data.old`, `${exp}/data`);
    assert.equal((await listConfined(`${exp}/data`, c, { limit: 10 })).entries[0].name, "a.txt");
    // when a folder above the root is swapped for a symlink to the outside tree
    Deno.renameSync(`${dir}/p`, `${dir}/p.old`);
    Deno.symlinkSync(`${dir}/evil`, `${dir}/p`);
    // then the root (now another folder) and what is below it are refused
    for (const path of [exp, `${exp}/data`]) {
      const moved = await rejectsStrata(
        async () => await listConfined(path, c, { limit: 10 }),
        "PERMISSION_DENIED",
      );
      assert.equal(reason(moved), "symlink_escape");
    }
    // and when the root itself is a symlink to the outside
    Deno.removeSync(`${dir}/p`);
    Deno.mkdirSync(`${dir}/p`);
    Deno.symlinkSync(`${dir}/evil/export`, exp);
    const linked = await rejectsStrata(
      async () => await listConfined(`${exp}/data`, c, { limit: 10 }),
      "PERMISSION_DENIED",
    );
    assert.equal(reason(linked), "symlink_escape");
  });
});

Deno.test("listConfined: remembered names never hide a change, and sizes are always fresh", async () => {
  // Given a directory that changes quickly, then one left alone for a second
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-list-" });
  try {
    const c = { roots: [dir] };
    const clock = new ManualClock();
    const opts = { limit: 1000, clock };
    // When files appear one after another within milliseconds
    for (let i = 0; i < 50; i++) {
      await Deno.writeTextFile(`${dir}/f${String(i).padStart(2, "0")}`, "x");
      // Then every listing has every file
      assert.equal((await listConfined(dir, c, opts)).entries.length, i + 1);
    }
    // When the directory has been left alone for over a second
    clock.advance(1100);
    assert.equal((await listConfined(dir, c, opts)).entries[0].size, 1); // now remembered
    // When a file grows (the directory itself does not change)
    await Deno.writeTextFile(`${dir}/f00`, "grown");
    // Then the size is current
    assert.equal((await listConfined(dir, c, opts)).entries[0].size, 5);
    // When an entry is added or removed. (The manual clock says a second has passed, but the
    // kernel stamps file times from a coarse clock, one tick of up to 10 ms: in real time a
    // second would have passed, so the change must land in a later tick than the last one.)
    await new Promise((r) => setTimeout(r, 25));
    await Deno.writeTextFile(`${dir}/new`, "");
    await Deno.remove(`${dir}/f01`);
    const names = (await listConfined(dir, c, opts)).entries.map((e) => e.name);
    // Then the listing shows it
    assert(names.includes("new"));
    assert(!names.includes("f01"));
    assert.equal(names.length, 50);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: `paths through folders other users can change are refused${
    AS_ROOT ? "" : " (skipped: needs root)"
  }`,
  ignore: !AS_ROOT,
  fn: async () => {
    const root = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-stable-" });
    try {
      const c = { roots: [root], uid: 0 };
      const reasonAsync = async (fn: () => unknown) => {
        try {
          await fn();
          return "served";
        } catch (err) {
          return (err as StrataError).details?.reason ?? (err as StrataError).errorName;
        }
      };
      const reason = (fn: () => unknown) => {
        try {
          fn();
          return "served";
        } catch (err) {
          return (err as StrataError).details?.reason ?? (err as StrataError).errorName;
        }
      };
      // Given a folder that belongs to another user, with a file and a folder in it
      await Deno.mkdir(`${root}/theirs/sub`, { recursive: true });
      await Deno.writeTextFile(`${root}/theirs/f.txt`, "x");
      await Deno.writeTextFile(`${root}/theirs/sub/g.txt`, "x");
      await Deno.chown(`${root}/theirs/sub`, 65534, 65534);
      await Deno.chown(`${root}/theirs`, 65534, 65534);
      // Then the folder itself and the files directly in it are served: its name cannot
      // be swapped, and a file swapped for a symlink is refused by O_NOFOLLOW
      assert.equal(
        await reasonAsync(() => listConfined(`${root}/theirs`, c, { limit: 10 })),
        "served",
      );
      assert.equal(reason(() => openConfined(`${root}/theirs/f.txt`, c)), "served");
      // But nothing reached through a folder inside it, whose name they could swap
      assert.equal(
        await reasonAsync(() => listConfined(`${root}/theirs/sub`, c, { limit: 10 })),
        "changeable_path",
      );
      assert.equal(reason(() => openConfined(`${root}/theirs/sub/g.txt`, c)), "changeable_path");
      // Given a world-writable folder of ours without the sticky bit
      await Deno.mkdir(`${root}/open`);
      await Deno.writeTextFile(`${root}/open/f.txt`, "x");
      await Deno.chmod(`${root}/open`, 0o777);
      // Then what is in it is refused (anyone could rename f.txt), the folder itself is listed
      assert.equal(reason(() => openConfined(`${root}/open/f.txt`, c)), "served");
      await Deno.mkdir(`${root}/open/sub`);
      await Deno.writeTextFile(`${root}/open/sub/g.txt`, "x");
      assert.equal(reason(() => openConfined(`${root}/open/sub/g.txt`, c)), "changeable_path");
      // Given a sticky world-writable folder (like /tmp) holding a folder of ours
      await Deno.mkdir(`${root}/tmp/ours`, { recursive: true });
      await Deno.writeTextFile(`${root}/tmp/ours/f.txt`, "x");
      await Deno.chmod(`${root}/tmp`, 0o1777);
      // Then it is served: only its owner may rename an entry of a sticky folder
      assert.equal(reason(() => openConfined(`${root}/tmp/ours/f.txt`, c)), "served");
      // But a folder of another user's inside it is not
      await Deno.mkdir(`${root}/tmp/bob`);
      await Deno.writeTextFile(`${root}/tmp/bob/f.txt`, "x");
      await Deno.chown(`${root}/tmp/bob`, 65534, 65534);
      assert.equal(reason(() => openConfined(`${root}/tmp/bob/f.txt`, c)), "changeable_path");
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
