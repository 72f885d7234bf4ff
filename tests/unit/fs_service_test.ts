/**
 * Unit tests for src/fs/service.ts: the read result encoding, the fs methods
 * on real temp files, and the export root check.
 */

import assert from "node:assert/strict";
import { HandleTable } from "../../src/fs/handles.ts";
import { checkRoots, fsMethods, MAX_READ, READ_BUFFERS, readResult } from "../../src/fs/service.ts";
import {
  encodeFrame,
  encodeJsonFrame,
  FramePool,
  FrameReader,
  MAX_FRAME,
} from "../../src/wire/frame.ts";
import { MAX_REQ_ID } from "../../src/wire/envelope.ts";
import { type Method, type MethodContext, RawJson, Server } from "../../src/server/server.ts";
import { RateLimiter } from "../../src/policy/rate_limit.ts";
import { authorize, type AuthorizeContext } from "../../src/policy/authorize.ts";
import type { RequestChain } from "../../src/server/server.ts";
import { Audit } from "../../src/runtime/audit.ts";
import type { Capability } from "../../src/token/claims.ts";
import { generateSigningKey, importVerifyKey } from "../../src/token/keys.ts";
import { RevocationSet } from "../../src/token/revocation_set.ts";
import { TokenVerifier } from "../../src/token/verifier.ts";
import {
  CountingLookup,
  ISSUER,
  makeCap,
  makeClaims,
  mint,
  throwsStrata,
  withTempDir,
} from "./support.ts";

type ReadOut = { data_b64: string; data?: string; bytes_read: number; eof: boolean };

/** The JSON text of a RawJson result. */
function rawText(r: RawJson): string {
  return r.parts.join("");
}

function parse(r: RawJson): ReadOut {
  return JSON.parse(rawText(r));
}

/** The response frame the server builds around a RawJson result. */
function responseFrame(reqId: string, r: RawJson): Uint8Array {
  return encodeJsonFrame(
    `{"v":1,"req_id":${JSON.stringify(reqId)},"ok":true,"result":${rawText(r)}}`,
  );
}

/** The chain fs gets in production: policy's authorize for service fs. */
function requestChain(ctx: Omit<AuthorizeContext, "service">): RequestChain<Capability> {
  return {
    authorize: (token, right) =>
      authorize(token, { right }, { service: "fs", ...ctx }) as Promise<Capability>,
  };
}

Deno.test("readResult: UTF-8 bytes carry data and data_b64", () => {
  // given UTF-8 text with quotes, escapes and multi-byte characters
  const text = 'héllo "wörld"\n\t\u0001 ✓';
  const bytes = new TextEncoder().encode(text);
  // when encoded
  const out = parse(readResult(bytes, true));
  // then data is the text, data_b64 its standard base64, and the counts are right
  assert.equal(out.data, text);
  assert.deepEqual(Uint8Array.fromBase64(out.data_b64), bytes);
  assert.equal(out.bytes_read, bytes.length);
  assert.equal(out.eof, true);
});

Deno.test("readResult: bytes that are not UTF-8 carry data_b64 only", () => {
  const bytes = new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0x41]);
  const out = parse(readResult(bytes, false));
  assert.equal("data" in out, false);
  assert.deepEqual(Uint8Array.fromBase64(out.data_b64), bytes);
  assert.equal(out.bytes_read, 5);
  assert.equal(out.eof, false);
});

Deno.test("readResult: an empty read is empty text", () => {
  assert.deepEqual(parse(readResult(new Uint8Array(0), true)), {
    data_b64: "",
    data: "",
    bytes_read: 0,
    eof: true,
  });
});

Deno.test("readResult: a MAX_READ-sized read fits one frame with the longest req_id", () => {
  const reqId = "r".repeat(MAX_REQ_ID);
  // given a full-size binary read and a full-size text read
  const binary = new Uint8Array(MAX_READ);
  for (let i = 0; i < binary.length; i++) binary[i] = (i * 7919) & 0xff;
  const text = new TextEncoder().encode("x".repeat(MAX_READ));
  for (const bytes of [binary, text]) {
    // when wrapped in the response envelope
    const r = readResult(bytes, true);
    const frame = responseFrame(reqId, r);
    // then it fits a frame and still holds every byte (as data_b64)
    assert.ok(frame.length - 4 <= MAX_FRAME);
    assert.equal(parse(r).bytes_read, MAX_READ);
    assert.equal(Uint8Array.fromBase64(parse(r).data_b64).length, MAX_READ);
  }
});

Deno.test("readResult: data is added for text only while the frame has room for both", () => {
  // given the largest ASCII read that still gets data, and one byte more
  let lo = 0;
  let hi = MAX_READ;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if ("data" in parse(readResult(new Uint8Array(mid).fill(0x61), false))) lo = mid;
    else hi = mid - 1;
  }
  assert.ok(lo > 100_000, `data is dropped from ${lo} bytes already`);
  // then that read fits with the longest req_id, and the next size drops data but keeps data_b64
  const withData = readResult(new Uint8Array(lo).fill(0x61), false);
  assert.ok(responseFrame("r".repeat(MAX_REQ_ID), withData).length - 4 <= MAX_FRAME);
  const without = parse(readResult(new Uint8Array(lo + 1).fill(0x61), false));
  assert.equal("data" in without, false);
  assert.equal(without.bytes_read, lo + 1);
});

/** fs methods over a temp export root, called directly with a capability. */
function fsFixture(root: string) {
  const handles = new HandleTable();
  const audit = new Audit({ program: "fs", stderr: false });
  const methods = new Map(fsMethods({ roots: [root], handles, audit }).map((m) => [m.name, m]));
  const call = async (name: string, params: Record<string, unknown>, cap: Capability) => {
    const m = methods.get(name)!;
    const ctx: MethodContext<Capability> = { cap, reqId: "r", connId: 1 };
    const out = await m.handler(params, ctx);
    return out instanceof RawJson ? JSON.parse(rawText(out)) : out;
  };
  return { handles, audit, methods, call };
}

Deno.test("fs methods: open, read in pieces, and close a file", async () => {
  await withTempDir(async (dir) => {
    // given a 10-byte file under the export root and an fs capability
    Deno.writeTextFileSync(`${dir}/f.txt`, "0123456789");
    const fs = fsFixture(dir);
    const cap = makeCap();
    try {
      // when it is opened and read in two parts
      const opened = await fs.call("fs.open", { path: `${dir}/f.txt` }, cap);
      const first = await fs.call("fs.read", { handle: opened.handle, offset: 0, size: 4 }, cap);
      const rest = await fs.call("fs.read", { handle: opened.handle, offset: 4, size: 100 }, cap);
      // then the handle reports the size and the reads return the bytes, with eof at the end
      assert.equal(opened.size, 10);
      assert.deepEqual([first.data, first.eof], ["0123", false]);
      assert.deepEqual([rest.data, rest.bytes_read, rest.eof], ["456789", 6, true]);
      // and after closing, the handle is gone
      assert.deepEqual(await fs.call("fs.close", { handle: opened.handle }, cap), {
        status: "closed",
      });
      await assert.rejects(fs.call("fs.read", { handle: opened.handle }, cap), /no open handle/);
    } finally {
      fs.handles.closeAll();
      fs.audit.close();
    }
  });
});

Deno.test("fs methods: eof is true exactly when a read reaches the file's end as it is now", async () => {
  await withTempDir(async (dir) => {
    // given a 10-byte file and a MAX_READ-sized one
    Deno.writeTextFileSync(`${dir}/f.txt`, "0123456789");
    Deno.writeFileSync(`${dir}/max.bin`, new Uint8Array(MAX_READ));
    const fs = fsFixture(dir);
    const cap = makeCap();
    try {
      const { handle } = await fs.call("fs.open", { path: `${dir}/f.txt` }, cap);
      const read = (offset: number, size: number) =>
        fs.call("fs.read", { handle, offset, size }, cap).then((r) => [r.bytes_read, r.eof]);
      // when reads end one byte short of the end, exactly at it, and past it
      // then only the last two say eof, and none returns more than asked for
      assert.deepEqual(await read(0, 9), [9, false]);
      assert.deepEqual(await read(0, 10), [10, true]);
      assert.deepEqual(await read(5, 5), [5, true]);
      assert.deepEqual(await read(10, 1), [0, true]);
      assert.deepEqual(await read(50, 4), [0, true]);
      // and once the file has grown, the same read is no longer at the end
      Deno.writeTextFileSync(`${dir}/f.txt`, "ab", { append: true });
      assert.deepEqual(await read(0, 10), [10, false]);
      assert.deepEqual(await read(10, 2), [2, true]);
      // and the largest read, of a file of exactly that size, is whole and at the end
      const max = await fs.call("fs.open", { path: `${dir}/max.bin` }, cap);
      const whole = await fs.call(
        "fs.read",
        { handle: max.handle, offset: 0, size: MAX_READ },
        cap,
      );
      assert.deepEqual([whole.bytes_read, whole.eof], [MAX_READ, true]);
    } finally {
      fs.handles.closeAll();
      fs.audit.close();
    }
  });
});

Deno.test("fs methods: reads larger than 64 KiB, at any offset and in any order, return every byte", async () => {
  await withTempDir(async (dir) => {
    const bytes = new Uint8Array(300_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 13) & 0xff;
    Deno.writeFileSync(`${dir}/big.bin`, bytes);
    const fs = fsFixture(dir);
    const cap = makeCap();
    try {
      const { handle } = await fs.call("fs.open", { path: `${dir}/big.bin` }, cap);
      const b = await fs.call("fs.read", { handle, offset: 200_000, size: 200_000 }, cap);
      const a = await fs.call("fs.read", { handle, offset: 0, size: 200_000 }, cap);
      assert.deepEqual(Uint8Array.fromBase64(a.data_b64), bytes.subarray(0, 200_000));
      assert.deepEqual(Uint8Array.fromBase64(b.data_b64), bytes.subarray(200_000));
      assert.deepEqual([a.eof, b.eof], [false, true]);
    } finally {
      fs.handles.closeAll();
      fs.audit.close();
    }
  });
});

Deno.test("fs methods: reads use the pool's one buffer, which goes once reads stop, and come back", async () => {
  await withTempDir(async (dir) => {
    // given a 300,000-byte file and fs methods reading through a pool that lets go after 50 ms
    const bytes = new Uint8Array(300_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    Deno.writeFileSync(`${dir}/big.bin`, bytes);
    let released = 0;
    const reads = new FramePool(READ_BUFFERS, { idleMs: 50, onRelease: () => released++ });
    const handles = new HandleTable();
    const audit = new Audit({ program: "fs", stderr: false });
    const methods = new Map(
      fsMethods({ roots: [dir], handles, audit, reads }).map((m) => [m.name, m]),
    );
    const cap = makeCap();
    const ctx: MethodContext<Capability> = { cap, reqId: "r", connId: 1 };
    const read = async (handle: string, offset: number) =>
      parse(
        await methods.get("fs.read")!.handler({ handle, offset, size: 200_000 }, ctx) as RawJson,
      );
    try {
      const opened = await methods.get("fs.open")!.handler({ path: `${dir}/big.bin` }, ctx);
      const { handle } = opened as { handle: string };
      // when two reads are made, then none for a while
      const a = await read(handle, 0);
      const b = await read(handle, 200_000);
      // then they held one buffer between them, kept for the next read
      assert.equal(reads.held, 1);
      assert.deepEqual(Uint8Array.fromBase64(a.data_b64), bytes.subarray(0, 200_000));
      assert.deepEqual(Uint8Array.fromBase64(b.data_b64), bytes.subarray(200_000));
      // and once reads have stopped, it is let go and the service told, for a collection
      const until = Date.now() + 5000;
      while (reads.held > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual([reads.held, released], [0, 1]);
      // and the next read makes one anew and reads the same bytes
      const again = await read(handle, 0);
      assert.deepEqual(Uint8Array.fromBase64(again.data_b64), bytes.subarray(0, 200_000));
      assert.equal(reads.held, 1);
    } finally {
      handles.closeAll();
      audit.close();
    }
  });
});

Deno.test("fs methods: another capability cannot read a handle; the token's prefix confines open and list", async () => {
  await withTempDir(async (dir) => {
    Deno.mkdirSync(`${dir}/pub`);
    Deno.writeTextFileSync(`${dir}/pub/p.txt`, "p");
    Deno.writeTextFileSync(`${dir}/secret.txt`, "s");
    const fs = fsFixture(dir);
    const owner = makeCap();
    const stranger = makeCap();
    const confined = makeCap({ constraints: { path_prefix: `${dir}/pub` } });
    try {
      const { handle } = await fs.call("fs.open", { path: `${dir}/secret.txt` }, owner);
      await assert.rejects(fs.call("fs.read", { handle }, stranger), /no open handle/);
      await assert.rejects(
        fs.call("fs.open", { path: `${dir}/secret.txt` }, confined),
        /path_prefix/,
      );
      await assert.rejects(fs.call("fs.list", { path: dir, limit: 10 }, confined), /path_prefix/);
      const listed = await fs.call("fs.list", { path: ".", limit: 10 }, confined);
      assert.deepEqual(listed, {
        path: `${dir}/pub`,
        entries: [{ name: "p.txt", is_dir: false, is_symlink: false, size: 1 }],
      });
    } finally {
      fs.handles.closeAll();
      fs.audit.close();
    }
  });
});

Deno.test("fs methods: declared rights and params", () => {
  const fs = fsFixture("/nonexistent");
  try {
    const access = Object.fromEntries([...fs.methods].map(([n, m]) => [n, m.access]));
    assert.deepEqual(access, {
      "fs.list": { right: "fs.list" },
      "fs.open": { right: "fs.open" },
      "fs.read": { right: "fs.read" },
      "fs.close": { right: "fs.open" },
      "fs.roots": "public",
    });
    const read = fs.methods.get("fs.read") as Method;
    assert.deepEqual(read.params.size, { type: "integer", default: 4096, min: 1, max: MAX_READ });
  } finally {
    fs.audit.close();
  }
});

Deno.test("fs.read over a socket: a text read that gets data still fits one frame with any valid req_id", async () => {
  await withTempDir(async (dir) => {
    // given an fs server and an ASCII file of the largest size that still gets `data`
    let size = 0;
    for (let hi = MAX_READ; size < hi;) {
      const mid = Math.ceil((size + hi) / 2);
      if ("data" in parse(readResult(new Uint8Array(mid).fill(0x61), false))) size = mid;
      else hi = mid - 1;
    }
    Deno.writeFileSync(`${dir}/t.txt`, new Uint8Array(size).fill(0x61));
    const key = await generateSigningKey();
    const audit = new Audit({ program: "fs", stderr: false });
    const handles = new HandleTable();
    const server = await Server.listen({
      service: "fs",
      path: `${dir}/fs.sock`,
      methods: fsMethods({ roots: [dir], handles, audit }),
      chain: requestChain({
        verifier: new TokenVerifier({
          issuer: ISSUER,
          keys: new CountingLookup([await importVerifyKey(key.publicKey)]),
        }),
        revoked: new RevocationSet(),
        limiter: new RateLimiter(),
      }),
    });
    const conn = await Deno.connect({ transport: "unix", path: `${dir}/fs.sock` });
    try {
      const token = await mint(key, makeClaims());
      const reader = new FrameReader(conn);
      const ask = async (req: Record<string, unknown>) => {
        await conn.write(encodeFrame({ v: 1, auth: { token }, ...req }));
        return JSON.parse(new TextDecoder().decode((await reader.next())!));
      };
      const opened = await ask({
        req_id: "o",
        method: "fs.open",
        params: { path: `${dir}/t.txt` },
      });
      assert.equal(opened.ok, true, JSON.stringify(opened));
      // when it is read in one go, with a 128-character req_id that JSON has to escape
      const reqId = "\u0001".repeat(MAX_REQ_ID);
      const res = await ask({
        req_id: reqId,
        method: "fs.read",
        params: { handle: opened.result.handle, size },
      });
      // then the read is answered (with its data), not refused as too large for a frame
      assert.equal(res.req_id, reqId);
      assert.equal(res.ok, true, JSON.stringify(res.error));
      assert.equal(res.result.bytes_read, size);
    } finally {
      conn.close();
      await server.drain(1000);
      handles.closeAll();
      audit.close();
    }
  });
});

Deno.test("checkRoots: real folders pass; symlinked, missing roots and files are INVALID_ARGUMENT", async () => {
  await withTempDir((dir) => {
    Deno.mkdirSync(`${dir}/real`);
    Deno.symlinkSync(`${dir}/real`, `${dir}/link`);
    Deno.writeTextFileSync(`${dir}/file`, "");
    assert.deepEqual(checkRoots([`${dir}/real`]), [`${dir}/real`]);
    throwsStrata(
      () => checkRoots([`${dir}/link`]),
      "INVALID_ARGUMENT",
      new RegExp(`is a symbolic link to ${dir}/real; export ${dir}/real instead`),
    );
    throwsStrata(() => checkRoots([`${dir}/file`]), "INVALID_ARGUMENT", /is not a folder/);
    throwsStrata(
      () => checkRoots([`${dir}/missing`]),
      "INVALID_ARGUMENT",
      new RegExp(`fs root ${dir}/missing does not exist: create it, or export another folder`),
    );
  });
});
