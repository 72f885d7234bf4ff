/**
 * Unit tests for src/ctl/files.ts: streaming a remote file by repeated
 * reads, and `fs get`'s atomic, no-clobber write, against a fake fs.
 */

import assert from "node:assert/strict";
import { CtlError, EXIT, refusal } from "../../src/ctl/errors.ts";
import {
  type Caller,
  getFile,
  getSummary,
  READ_SIZE,
  resolveDest,
  streamFile,
  terminalProgress,
  writeAll,
} from "../../src/ctl/files.ts";
import { MAX_READ } from "../../src/fs/service.ts";

/** A fake fs with one file per path; records every call. */
function fakeFs(files: Record<string, Uint8Array>, options: { limitEvery?: number } = {}) {
  const calls: { method: string; params: Record<string, unknown> }[] = [];
  const handles = new Map<string, Uint8Array>();
  let n = 0;
  const caller: Caller = {
    call<T>(method: string, params?: Record<string, unknown>): Promise<T> {
      const p = params ?? {};
      calls.push({ method, params: p });
      // every Nth call is refused by a rate limit, as fs would
      if (options.limitEvery && calls.length % options.limitEvery === 0) {
        return Promise.reject(refusal({
          code: 7,
          name: "RESOURCE_EXHAUSTED",
          message: "rate limit",
          details: { reason: "rate_limited" },
        }));
      }
      if (method === "fs.open") {
        const data = files[p.path as string];
        if (!data) {
          return Promise.reject(refusal({ code: 4, name: "NOT_FOUND", message: "no such file" }));
        }
        const handle = `h${++n}`;
        handles.set(handle, data);
        return Promise.resolve({ handle, size: data.length } as T);
      }
      if (method === "fs.read") {
        const data = handles.get(p.handle as string)!;
        const off = p.offset as number;
        const chunk = data.subarray(off, off + (p.size as number));
        return Promise.resolve({
          data_b64: chunk.toBase64(),
          bytes_read: chunk.length,
          eof: off + chunk.length >= data.length,
        } as T);
      }
      if (method === "fs.close") {
        handles.delete(p.handle as string);
        return Promise.resolve({ status: "closed" } as T);
      }
      return Promise.reject(new Error(`unexpected ${method}`));
    },
  };
  return { caller, calls, handles };
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) crypto.getRandomValues(out.subarray(off, off + 65536));
  return out;
}

/** Collects a stream's chunks into one array. */
function collector(): { sink: (c: Uint8Array) => Promise<void>; bytes(): Uint8Array } {
  const parts: Uint8Array[] = [];
  return {
    sink: (c) => {
      parts.push(c.slice());
      return Promise.resolve();
    },
    bytes() {
      const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let off = 0;
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      return out;
    },
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-ctl-files-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("READ_SIZE: the largest read fs allows", () => {
  assert.equal(READ_SIZE, MAX_READ);
});

Deno.test("streamFile: the whole file in READ_SIZE reads, in order, then the handle is closed", async () => {
  // given a file of two and a half reads
  const data = randomBytes(READ_SIZE * 2 + 12345);
  const fs = fakeFs({ "/srv/a.bin": data });
  const got = collector();
  const progress: number[] = [];
  // when it is streamed
  const r = await streamFile(fs.caller, "/srv/a.bin", {
    sink: got.sink,
    onProgress: (done, total) => {
      assert.equal(total, data.length);
      progress.push(done);
    },
  });
  // then every byte arrives, in three reads of the largest size, and the handle is closed
  assert.deepEqual(r, { bytes: data.length, size: data.length });
  assert.deepEqual(got.bytes(), data);
  const reads = fs.calls.filter((c) => c.method === "fs.read");
  assert.deepEqual(reads.map((c) => c.params.offset), [0, READ_SIZE, READ_SIZE * 2]);
  assert.ok(reads.every((c) => c.params.size === READ_SIZE));
  assert.equal(fs.calls.at(-1)?.method, "fs.close");
  assert.equal(fs.handles.size, 0);
  assert.deepEqual(progress, [0, READ_SIZE, READ_SIZE * 2, data.length]);
});

Deno.test("streamFile: an empty file and a file of exactly one read", async () => {
  const empty = fakeFs({ "/e": new Uint8Array(0) });
  assert.deepEqual(await streamFile(empty.caller, "/e", { sink: collector().sink }), {
    bytes: 0,
    size: 0,
  });
  const exact = randomBytes(READ_SIZE);
  const one = fakeFs({ "/x": exact });
  const got = collector();
  await streamFile(one.caller, "/x", { sink: got.sink });
  assert.deepEqual(got.bytes(), exact);
  assert.equal(one.calls.filter((c) => c.method === "fs.read").length, 1);
});

Deno.test("streamFile: rate-limit refusals are waited out, not fatal", async () => {
  const data = randomBytes(READ_SIZE * 3);
  const fs = fakeFs({ "/r": data }, { limitEvery: 2 });
  const got = collector();
  await streamFile(fs.caller, "/r", { sink: got.sink, retryDelayMs: 1 });
  assert.deepEqual(got.bytes(), data);
});

Deno.test("streamFile: other refusals end it, and the handle is still closed", async () => {
  const fs = fakeFs({ "/f": randomBytes(100) });
  const failing: Caller = {
    call<T>(method: string, params?: Record<string, unknown>): Promise<T> {
      if (method === "fs.read") {
        return Promise.reject(refusal({ code: 2, name: "UNAUTHENTICATED", message: "revoked" }));
      }
      return fs.caller.call<T>(method, params);
    },
  };
  await assert.rejects(
    streamFile(failing, "/f", { sink: collector().sink }),
    (e: unknown) => e instanceof CtlError && e.exit === EXIT.REFUSED,
  );
  assert.equal(fs.handles.size, 0);
  // and a missing file is the service's NOT_FOUND
  await assert.rejects(
    streamFile(fs.caller, "/missing", { sink: collector().sink }),
    /no such file/,
  );
});

Deno.test("resolveDest: default name, relative and absolute DEST, a folder keeps the name", () => {
  const isDir = (p: string) => p === "/home/me/dl" || p === "/home/me";
  assert.equal(resolveDest("/srv/a.txt", undefined, { cwd: "/home/me", isDir }), "/home/me/a.txt");
  assert.equal(resolveDest("/srv/a.txt", "b.txt", { cwd: "/home/me", isDir }), "/home/me/b.txt");
  assert.equal(resolveDest("/srv/a.txt", "dl", { cwd: "/home/me", isDir }), "/home/me/dl/a.txt");
  assert.equal(resolveDest("/srv/a.txt", "new/", { cwd: "/home/me", isDir }), "/home/me/new/a.txt");
  assert.equal(resolveDest("/srv/a.txt", "/tmp/c", { cwd: "/home/me", isDir }), "/tmp/c");
  assert.equal(resolveDest("rel/a.txt", undefined, { cwd: "/home/me", isDir }), "/home/me/a.txt");
  assert.throws(
    () => resolveDest("/", undefined, { cwd: "/home/me", isDir }),
    (e: unknown) => e instanceof CtlError && /give DEST/.test(e.hint ?? ""),
  );
});

Deno.test("getFile: DEST appears complete, beside no leftover temporary file", async () => {
  await withTempDir(async (dir) => {
    const data = randomBytes(READ_SIZE + 99);
    const fs = fakeFs({ "/srv/data/img.bin": data });
    // when it is downloaded with no DEST
    const r = await getFile(fs.caller, "/srv/data/img.bin", { cwd: dir });
    // then it is there under its own name, byte for byte, and nothing else is
    assert.equal(r.dest, `${dir}/img.bin`);
    assert.equal(r.bytes, data.length);
    assert.deepEqual(await Deno.readFile(`${dir}/img.bin`), data);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["img.bin"]);
  });
});

Deno.test("getFile: an existing DEST is refused (exit 2) and left alone, unless --force", async () => {
  await withTempDir(async (dir) => {
    const fs = fakeFs({ "/a.txt": new TextEncoder().encode("new") });
    await Deno.writeTextFile(`${dir}/a.txt`, "old");
    await assert.rejects(
      getFile(fs.caller, "/a.txt", { dest: "a.txt", cwd: dir }),
      (e: unknown) =>
        e instanceof CtlError && e.exit === EXIT.USAGE && /already exists/.test(e.message) &&
        /--force/.test(e.hint ?? ""),
    );
    assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "old");
    // nothing was even opened
    assert.equal(fs.calls.length, 0);
    await getFile(fs.caller, "/a.txt", { dest: "a.txt", cwd: dir, force: true });
    assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "new");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.txt"]);
  });
});

Deno.test("getFile: a failed download leaves neither DEST nor the temporary file", async () => {
  await withTempDir(async (dir) => {
    const fs = fakeFs({});
    await assert.rejects(getFile(fs.caller, "/missing.bin", { cwd: dir }), CtlError);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("getFile: a missing folder is a usage error that says to create it", async () => {
  await withTempDir(async (dir) => {
    const fs = fakeFs({ "/a": new Uint8Array(1) });
    await assert.rejects(
      getFile(fs.caller, "/a", { dest: "no/such/", cwd: dir }),
      (e: unknown) => e instanceof CtlError && /does not exist/.test(e.message),
    );
  });
});

Deno.test("writeAll: keeps writing until every byte is taken", async () => {
  const taken: number[] = [];
  await writeAll({
    write: (p) => {
      const n = Math.min(3, p.length);
      taken.push(...p.subarray(0, n));
      return Promise.resolve(n);
    },
  }, new Uint8Array([1, 2, 3, 4, 5, 6, 7]));
  assert.deepEqual(taken, [1, 2, 3, 4, 5, 6, 7]);
});

Deno.test("terminalProgress: redrawn in place at most ten times a second, always at the end, cleared", () => {
  const writes: string[] = [];
  let t = 0;
  const p = terminalProgress((s) => writes.push(s), () => t);
  p.onProgress(0, 100);
  t = 50;
  p.onProgress(10, 100); // too soon: skipped
  t = 150;
  p.onProgress(50, 100);
  t = 160;
  p.onProgress(100, 100); // the last one always shows
  p.finish();
  assert.equal(writes.length, 4);
  assert.match(writes[0], /^\r\[-+\] {3}0%/);
  assert.match(writes[1], /50%/);
  assert.ok(writes[2].includes("100%  100 B of 100 B"), writes[2]);
  assert.equal(writes[3], "\r\x1b[K");
});

Deno.test("getSummary: where it went, how much, how fast (for big files)", () => {
  assert.equal(
    getSummary({ path: "/a", dest: "/home/me/a", bytes: 6, elapsed_ms: 12 }),
    "saved /home/me/a (6 B in 12 ms)",
  );
  assert.equal(
    getSummary({ path: "/a", dest: "/home/me/a", bytes: 8 * 1024 * 1024, elapsed_ms: 2000 }),
    "saved /home/me/a (8.0 MiB in 2s, 4.0 MiB/s)",
  );
});
