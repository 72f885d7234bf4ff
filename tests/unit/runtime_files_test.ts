/**
 * Unit tests for src/runtime/files.ts: atomic file replacement and folders
 * with exact modes, in temp dirs.
 */

import assert from "node:assert/strict";
import { ensureDir, makePrivate, syncDir, writeFileAtomic } from "../../src/runtime/files.ts";
import { withTempDir } from "./support.ts";

Deno.test("writeFileAtomic: writes the content with the mode and leaves no temp file", async () => {
  await withTempDir((dir) => {
    // given a target and its temp path
    const path = `${dir}/f.json`;
    // when written with mode 0600
    writeFileAtomic(path, '{"a":1}\n', { tmpPath: `${path}.tmp`, mode: 0o600 });
    // then the target holds it, private, and the temp file is gone
    assert.equal(Deno.readTextFileSync(path), '{"a":1}\n');
    assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    assert.throws(() => Deno.statSync(`${path}.tmp`), Deno.errors.NotFound);
  });
});

Deno.test("writeFileAtomic: replaces an existing file by rename (a new inode), bytes too", async () => {
  await withTempDir((dir) => {
    const path = `${dir}/f.bin`;
    Deno.writeTextFileSync(path, "old content that is longer");
    const before = Deno.statSync(path).ino;
    writeFileAtomic(path, new Uint8Array([1, 2, 3]), { tmpPath: `${dir}/t`, durable: false });
    assert.deepEqual(Deno.readFileSync(path), new Uint8Array([1, 2, 3]));
    assert.notEqual(Deno.statSync(path).ino, before);
  });
});

Deno.test("writeFileAtomic: the mode is applied even to a stale temp file with a wider mode", async () => {
  await withTempDir((dir) => {
    const tmp = `${dir}/t`;
    Deno.writeTextFileSync(tmp, "stale");
    Deno.chmodSync(tmp, 0o666);
    writeFileAtomic(`${dir}/f`, "new", { tmpPath: tmp, mode: 0o600 });
    assert.equal(Deno.statSync(`${dir}/f`).mode! & 0o777, 0o600);
    assert.equal(Deno.readTextFileSync(`${dir}/f`), "new");
  });
});

Deno.test("ensureDir: creates parents and sets the exact mode, also on an existing folder", async () => {
  await withTempDir((dir) => {
    ensureDir(`${dir}/a/b`, 0o700);
    assert.equal(Deno.statSync(`${dir}/a/b`).mode! & 0o777, 0o700);
    Deno.chmodSync(`${dir}/a/b`, 0o755);
    ensureDir(`${dir}/a/b`, 0o750);
    assert.equal(Deno.statSync(`${dir}/a/b`).mode! & 0o777, 0o750);
  });
});

Deno.test("syncDir: a folder that cannot be opened is not an error", async () => {
  await withTempDir((dir) => {
    syncDir(dir);
    syncDir(`${dir}/does-not-exist`);
  });
});

Deno.test("ensureDir: a file where the folder should be is refused, naming it", async () => {
  const base = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-ensure-" });
  try {
    await Deno.writeTextFile(`${base}/state`, "");
    assert.throws(
      () => ensureDir(`${base}/state`, 0o700),
      new RegExp(
        `^Error: ${base}/state is not a folder \\(a symlink or file is in its place\\); remove it`,
      ),
    );
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("ensureDir: a symlink planted where the folder should be is refused", async () => {
  // Given a symlink at the runtime dir's path, pointing to a folder elsewhere
  const base = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-ensure-" });
  try {
    await Deno.mkdir(`${base}/elsewhere`, { mode: 0o755 });
    await Deno.symlink(`${base}/elsewhere`, `${base}/rt`);
    // When the supervisor ensures its runtime dir there
    // Then it refuses, and the target's mode is untouched
    assert.throws(() => ensureDir(`${base}/rt`, 0o700), /not a folder/);
    assert.equal((await Deno.stat(`${base}/elsewhere`)).mode! & 0o777, 0o755);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("makePrivate: group and other access go, the owner's stays; other files are left", async () => {
  const base = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-private-" });
  try {
    await Deno.writeTextFile(`${base}/open`, "k");
    Deno.chmodSync(`${base}/open`, 0o644);
    await Deno.writeTextFile(`${base}/closed`, "k");
    Deno.chmodSync(`${base}/closed`, 0o600);
    await Deno.symlink(`${base}/open`, `${base}/link`);
    assert.equal(makePrivate(`${base}/open`), 0o644);
    assert.equal((await Deno.stat(`${base}/open`)).mode! & 0o7777, 0o600);
    assert.equal(makePrivate(`${base}/closed`), undefined);
    assert.equal(makePrivate(`${base}/missing`), undefined);
    // A symlink is not followed (its target is judged on its own path).
    Deno.chmodSync(`${base}/open`, 0o640);
    assert.equal(makePrivate(`${base}/link`), undefined);
    assert.equal((await Deno.stat(`${base}/open`)).mode! & 0o7777, 0o640);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
