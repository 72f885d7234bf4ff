/**
 * Bad input gets a clear error, never INTERNAL: generated paths (up to 8 KiB,
 * every character from U+0001 to U+00FF, other Unicode, lone surrogates, raw
 * non-UTF-8 bytes, names past 255 bytes, "..", special files of each kind) are
 * thrown at fs.list, fs.open and fs.read on the real socket. Every answer is
 * a success or INVALID_ARGUMENT / NOT_FOUND / PERMISSION_DENIED whose message
 * names the field, and fs neither crashes nor restarts. The generator is
 * seeded (STRATA_PROP_SEED reproduces a run; the seed is in the failure).
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import type { Response } from "../../src/wire/envelope.ts";
import { socketPath } from "../../src/runtime/config.ts";
import { AS_ROOT, decodeFrames, issue, rawExchange, rawFrame, startNode } from "../helpers.ts";
import { expectError, svcStatus } from "./support.ts";

/** A small seeded PRNG (mulberry32): the same seed, the same paths. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALLOWED = new Set(["INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED"]);

/** Whether an error message names the field at fault. */
const NAMES_FIELD = /^(params\.)?(path|handle|offset|size)\b/;

Deno.test("bad paths: generated paths at fs.list, fs.open and fs.read never get INTERNAL", async (t) => {
  const seed = Number(Deno.env.get("STRATA_PROP_SEED") ?? Date.now() % 1_000_000);
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const node = await startNode();
  const root = node.exportRoot;
  const listener = Deno.listen({ transport: "unix", path: `${root}/sock` });
  try {
    // Special files of each kind inside the export root.
    await Deno.mkdir(`${root}/dir/sub`, { recursive: true });
    await Deno.mkdir(`${root}/empty`);
    await Deno.writeTextFile(`${root}/file.txt`, "hello\n");
    await Deno.writeFile(`${root}/binary`, crypto.getRandomValues(new Uint8Array(5000)));
    await Deno.writeTextFile(`${root}/dir/inner.txt`, "inner");
    await Deno.symlink("file.txt", `${root}/link-file`);
    await Deno.symlink("dir", `${root}/link-dir`);
    await Deno.symlink("nowhere", `${root}/dangling`);
    await Deno.symlink("loop", `${root}/loop`);
    await Deno.symlink("loop-b", `${root}/loop-a`);
    await Deno.symlink("loop-a", `${root}/loop-b`);
    await Deno.symlink("/etc/hostname", `${root}/escape`);
    await Deno.writeTextFile(`${root}/noperm`, "x", { mode: 0o000 });
    await Deno.mkdir(`${root}/nodir`, { mode: 0o000 });
    const max = "m".repeat(255);
    await Deno.writeTextFile(`${root}/${max}`, "longest name");
    for (const weird of ["new\nline", "tab\there", "q\"u'o\\te", "ünï©ødé ✓", " ", "-", "~"]) {
      await Deno.writeTextFile(`${root}/${weird}`, weird);
    }
    const mk = (args: string[]) => new Deno.Command(args[0], { args: args.slice(1) }).outputSync();
    assert(mk(["mkfifo", `${root}/fifo`]).success, "mkfifo failed");
    const special = [
      "file.txt",
      "binary",
      "dir",
      "dir/sub",
      "dir/inner.txt",
      "empty",
      "link-file",
      "link-dir",
      "dangling",
      "loop",
      "loop-a",
      "escape",
      "noperm",
      "nodir",
      "fifo",
      "sock",
      max,
      "new\nline",
      "ünï©ødé ✓",
    ];
    // Devices need root to make; without it the kinds are reached through a symlink out.
    if (AS_ROOT) {
      assert(mk(["mknod", `${root}/chardev`, "c", "1", "3"]).success, "mknod c failed");
      assert(mk(["mknod", `${root}/blockdev`, "b", "7", "250"]).success, "mknod b failed");
    } else {
      await Deno.symlink("/dev/null", `${root}/chardev`);
      await Deno.symlink("/dev/loop0", `${root}/blockdev`);
    }
    special.push("chardev", "blockdev");

    const wide = (await issue(node, { service: "fs", rights: ["fs.list", "fs.open", "fs.read"] }))
      .token;
    const inRoot = (await issue(node, {
      service: "fs",
      rights: ["fs.list", "fs.open", "fs.read"],
      path_prefix: root,
    })).token;

    // A fresh connection every few requests: a connection with many refusals is closed by design.
    let client: Client | undefined;
    let sent = 0;
    const seen = new Map<string, number>();
    const call = async (method: string, params: Record<string, unknown>, token: string) => {
      if (!client || client.closed || sent++ % 16 === 0) {
        await client?.close();
        client = await Client.connect(socketPath(node.layout, "fs"));
      }
      const res: Response = await client.request(method, params, { token });
      const what = `seed ${seed}: ${method} ${JSON.stringify(params).slice(0, 300)}`;
      if (!res.ok) {
        assert(ALLOWED.has(res.error.name), `${what} -> ${JSON.stringify(res.error)}`);
        assert.match(res.error.message, NAMES_FIELD, `${what} -> ${JSON.stringify(res.error)}`);
        seen.set(res.error.name, (seen.get(res.error.name) ?? 0) + 1);
      } else seen.set("ok", (seen.get("ok") ?? 0) + 1);
      return res;
    };

    /** One character: every code unit from 1 to 255, other Unicode, or a lone surrogate. */
    const char = () => {
      const r = rand();
      if (r < 0.7) return String.fromCharCode(int(1, 255));
      if (r < 0.8) return pick(["/", ".", "..", "/", "\\"]);
      if (r < 0.95) return String.fromCodePoint(int(0x100, 0x10ffff));
      return String.fromCharCode(int(0xd800, 0xdfff));
    };
    const text = (len: number) => Array.from({ length: len }, char).join("").slice(0, len);
    const length = () =>
      pick([int(1, 16), int(200, 300), int(4000, 4200), int(8000, 8192), int(1, 8192)]);
    const component = () =>
      pick([
        pick(special),
        "..",
        ".",
        "",
        text(int(1, 40)),
        "n".repeat(int(250, 300)),
        text(int(250, 260)),
      ]);
    const genPath = (): string => {
      switch (int(0, 5)) {
        case 0:
          return text(length());
        case 1:
          return `${root}/${Array.from({ length: int(1, 6) }, component).join("/")}`;
        case 2:
          return `${root}/${pick(special)}/${component()}`;
        case 3:
          return Array.from({ length: int(1, 4) }, component).join("/");
        case 4:
          return `${root}/${pick(special)}`;
        default:
          return `${root}/${"d/".repeat(int(1, 2100))}${text(int(0, 300))}`;
      }
    };

    const opened: string[] = [];
    await t.step(
      "fs.list and fs.open of 600 generated paths, with and without a prefix",
      async () => {
        for (let i = 0; i < 600; i++) {
          const path = genPath();
          const token = rand() < 0.5 ? wide : inRoot;
          await call("fs.list", { path }, token);
          const res = await call("fs.open", { path }, token);
          if (res.ok) {
            const handle = (res.result as { handle: string }).handle;
            const size = int(1, 800_000);
            const offset = pick([0, 1, int(0, 10_000), Number.MAX_SAFE_INTEGER]);
            await call("fs.read", { handle, offset, size }, token);
            await call("fs.close", { handle }, token);
            opened.push(path);
          }
        }
      },
    );

    await t.step("fs.read of generated handles, offsets and sizes", async () => {
      for (let i = 0; i < 200; i++) {
        const params: Record<string, unknown> = { handle: text(pick([int(1, 40), length()])) };
        if (rand() < 0.5) params.offset = pick([-1, 0, 1.5, 2 ** 60, int(0, 1e9)]);
        if (rand() < 0.5) params.size = pick([0, -5, 1, 785_408, 785_409, 2 ** 40]);
        await call("fs.read", params, pick([wide, inRoot]));
      }
    });

    await t.step("raw bytes that are not UTF-8 inside a path", async () => {
      for (let i = 0; i < 40; i++) {
        const bytes = Array.from(
          { length: int(1, 300) },
          () => int(1, 255),
        ).filter((b) => b !== 0x22 && b !== 0x5c && b >= 0x20);
        const head = new TextEncoder().encode(
          `{"v":1,"req_id":"r${i}","method":"fs.${pick(["list", "open"])}",` +
            `"auth":{"token":"${wide}"},"params":{"path":"${root}/`,
        );
        const body = new Uint8Array([...head, ...bytes, ...new TextEncoder().encode(`"}}`)]);
        // Sent as bytes: the frame carries them as they are, not as UTF-8 of a string.
        const r = await rawExchange(socketPath(node.layout, "fs"), rawFrame(body), {
          quietMs: 100,
        });
        const frames = decodeFrames(r.data) as Response[];
        assert.equal(frames.length, 1, `seed ${seed}: no answer to raw bytes`);
        for (const f of frames) {
          if (!f.ok) assert(ALLOWED.has(f.error.name), `seed ${seed}: ${JSON.stringify(f.error)}`);
        }
      }
    });

    await t.step("fs is still the same healthy process", async () => {
      const fs = await svcStatus(node, "fs");
      assert.equal(fs.state, "Healthy");
      assert.equal(fs.restarts, 0, `fs restarted (seed ${seed})`);
      // The run covered refusals of every kind and some successes.
      for (const k of ["ok", "INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED"]) {
        assert((seen.get(k) ?? 0) > 0, `no ${k} in the run (seed ${seed}): ${[...seen]}`);
      }
      assert(opened.length > 0);
    });

    await t.step("the cases of the issue, each named", async () => {
      const list = (path: string) => node.request("fs", "fs.list", { path }, wide);
      const open = (path: string) => node.request("fs", "fs.open", { path }, wide);
      expectError(await list(`${root}/${"x".repeat(300)}`), "INVALID_ARGUMENT", /^path: .*255/);
      expectError(await open(`${root}/${"y".repeat(256)}`), "INVALID_ARGUMENT", /^path: .*255/);
      expectError(await open(`${root}/sock`), "INVALID_ARGUMENT", /^path: .*not a regular file/);
      expectError(await open(`${root}/fifo`), "INVALID_ARGUMENT", /^path: not a regular file/);
      expectError(await open(`${root}/loop`), "INVALID_ARGUMENT", /^path: .*symbolic links/);
      expectError(await open(`${root}/file.txt/x`), "INVALID_ARGUMENT", /^path: .*not a folder/);
      expectError(await list(`${root}/${"é".repeat(200)}`), "INVALID_ARGUMENT", /^path: .*255/);
      // The longest name works.
      const ok = await open(`${root}/${max}`);
      assert(ok.ok, JSON.stringify(ok));
      if (AS_ROOT) {
        expectError(await open(`${root}/chardev`), "INVALID_ARGUMENT", /^path: /);
        expectError(await open(`${root}/blockdev`), "INVALID_ARGUMENT", /^path: /);
      }
    });
    await client?.close();
  } finally {
    listener.close();
    await node.stop();
  }
});
