/**
 * Frames and connections at fs.sock: oversize and garbage frames get a clear
 * error, a flood of idle connections cannot lock out a fresh client, and a
 * token's rate limit holds against a burst.
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import { socketPath } from "../../src/runtime/config.ts";
import { MAX_REFUSALS } from "../../src/server/server.ts";
import { decodeFrames, issue, rawExchange, rawFrame, startNode } from "../helpers.ts";
import { expectError, expectOk, rawExchangeAll, rawRequest, svcStatus } from "./support.ts";
import type { Response } from "../../src/wire/envelope.ts";

/** Reads from a connection until it closes (true) or `ms` pass (false). */
async function closesWithin(conn: Deno.UnixConn, ms: number): Promise<boolean> {
  const buf = new Uint8Array(1024);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    while (true) {
      const n = await Promise.race([
        conn.read(buf).catch(() => null),
        new Promise<"wait">((r) => (timer = setTimeout(() => r("wait"), ms))),
      ]);
      clearTimeout(timer);
      if (n === "wait") return false;
      if (n === null) return true;
    }
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("frames, connection floods and rate limits at fs.sock", async (t) => {
  const node = await startNode();
  const path = socketPath(node.layout, "fs");
  const open: Deno.UnixConn[] = [];
  try {
    const fsPid = (await svcStatus(node, "fs")).pid;
    const health = async () => {
      const c = await Client.connect(path);
      try {
        return await c.call<{ status: string; pid: number }>("fs.health", undefined, {
          timeoutMs: 3000,
        });
      } finally {
        await c.close();
      }
    };

    await t.step("announced length 0x7fffffff: INVALID_ARGUMENT, connection closed", async () => {
      const r = await rawExchange(path, rawFrame("{}", 0x7fffffff), { quietMs: 2000 });
      const frames = decodeFrames(r.data) as Response[];
      assert.equal(frames.length, 1);
      expectError(
        frames[0],
        "INVALID_ARGUMENT",
        /^frame: announced 2147483647 bytes; the limit is 1048576/,
      );
      assert.equal(frames[0].req_id, "");
      assert(r.closed, "the connection should be closed");
      // One byte over the limit is refused just the same.
      const over = await rawExchange(path, rawFrame("", 1024 * 1024 + 1), { quietMs: 2000 });
      expectError(
        (decodeFrames(over.data) as Response[])[0],
        "INVALID_ARGUMENT",
        /announced 1048577 bytes/,
      );
      assert(over.closed);
    });

    await t.step("garbage frames: each answered, the connection stays usable", async () => {
      const bodies: [string | Uint8Array, RegExp][] = [
        [new Uint8Array([0xff, 0xfe, 0x00, 0xc3]), /^frame: body is not valid UTF-8/],
        ["\u0000\u0001\u0002", /^frame: body is not valid JSON/],
        ["", /^frame: body is not valid JSON/],
        ["null", /^request: must be a JSON object/],
        ['"v4.public.x"', /^request: must be a JSON object/],
        [
          `{"v":1,"req_id":"${"r".repeat(200)}","method":"fs.list"}`,
          /^req_id: must be at most 128/,
        ],
        [
          '{"v":1,"req_id":"a","method":"fs.list","auth":"v4.public.x"}',
          /^auth: must be an object/,
        ],
        [
          '{"v":1,"req_id":"a","method":"fs.health","params":{"__proto__":{"path":"/etc"}}}',
          /params\.__proto__: this method takes no params/,
        ],
        [
          `{"v":1,"req_id":"a","method":"fs.health","params":${'{"a":'.repeat(50_000)}1${
            "}".repeat(50_000)
          }}`,
          /params\.a: this method takes no params/,
        ],
        [`[${"[".repeat(100_000)}${"]".repeat(100_000)}]`, /^request: must be a JSON object/],
        [
          `{"v":1,"req_id":"big","method":"fs.health","params":{"x":"${"x".repeat(900_000)}"}}`,
          /params\.x: this method takes no params/,
        ],
      ];
      const frames = bodies.map(([b]) => rawFrame(b));
      const good = rawFrame('{"v":1,"req_id":"last","method":"fs.health"}');
      const all = new Uint8Array(frames.reduce((a, f) => a + f.length, 0) + good.length);
      let off = 0;
      for (const f of [...frames, good]) {
        all.set(f, off);
        off += f.length;
      }
      // Well over 200 KiB: written in full, answers read as they come.
      const r = await rawExchangeAll(path, all, 500);
      const answers = r.frames;
      assert.equal(answers.length, bodies.length + 1, JSON.stringify(answers));
      for (const [i, [, re]] of bodies.entries()) {
        expectError(answers[i], "INVALID_ARGUMENT", re);
      }
      assert.equal(answers.at(-1)!.req_id, "last");
      expectOk(answers.at(-1)!);
      assert(!r.closed, "garbage within a well-framed stream does not drop the connection");
    });

    await t.step("random noise, then a fresh client is still answered", async () => {
      for (let i = 0; i < 5; i++) {
        const junk = crypto.getRandomValues(new Uint8Array(4096));
        junk.set([0, 0, 1, 0]); // a 256-byte body of noise, then more noise
        await rawExchange(path, junk, { quietMs: 100 });
      }
      assert.equal((await health()).status, "ok");
    });

    await t.step("400 idle connections, then a fresh one is still answered", async () => {
      const conns = await Promise.all(
        Array.from({ length: 400 }, () => Deno.connect({ transport: "unix", path })),
      );
      open.push(...conns);
      // A few of them have sent half a frame and gone quiet (slowloris): the newest, since
      // the server may already have evicted the oldest idle ones for the later ones (a write
      // to one of those is a broken pipe, which is the server doing its job).
      for (const c of conns.slice(-20)) {
        await c.write(rawFrame('{"v":1,"req_id":"x","method":"fs.health"}').subarray(0, 10))
          .catch((err) => {
            if (!(err instanceof Deno.errors.BrokenPipe)) throw err;
          });
      }
      // Lets the real fs process take in the 400 connections and the half frames.
      await new Promise((r) => setTimeout(r, 200));
      const h = await health();
      assert.equal(h.status, "ok");
      assert.equal(h.pid, fsPid);
      // The server kept at most 256: at least 400 + 1 - 256 of ours were closed.
      const closed = (await Promise.all(conns.map((c) => closesWithin(c, 300))))
        .filter((x) => x).length;
      assert(closed >= 400 + 1 - 256, `only ${closed} idle connections were closed`);
    });

    await t.step("afterwards fs is still Healthy with the same pid", async () => {
      const s = await svcStatus(node, "fs");
      assert.equal(s.state, "Healthy");
      assert.equal(s.pid, fsPid);
      assert.equal((await health()).status, "ok");
    });

    for (const c of open.splice(0)) {
      try {
        c.close();
      } catch { /* closed by the server */ }
    }

    await t.step("rate limit 5rps: a burst of 20 on one connection", async () => {
      const root = node.exportRoot;
      const tok = await issue(node, {
        service: "fs",
        rights: ["fs.list"],
        path_prefix: root,
        rate_limit: "5rps",
      });
      const c = await Client.connect(path);
      try {
        const results = await Promise.all(
          Array.from(
            { length: 20 },
            () => c.request("fs.list", { path: root }, { token: tok.token }),
          ),
        );
        const ok = results.filter((r) => r.ok).length;
        const limited = results.filter((r) => !r.ok);
        assert(ok >= 1 && ok <= 6, `${ok} of 20 passed a 5rps limit`);
        assert.equal(ok + limited.length, 20);
        for (const r of limited) {
          const e = expectError(
            r,
            "RESOURCE_EXHAUSTED",
            new RegExp(`rate limit 5rps of capability ${tok.cap_id} exceeded; retry in \\d+ ms`),
            "rate_limited",
          );
          const wait = e.details?.retry_after_ms;
          assert(typeof wait === "number" && wait > 0 && wait <= 1000, JSON.stringify(e));
        }
        // The bucket is the capability's, not the connection's.
        const other = await rawRequest(
          node,
          "fs",
          JSON.stringify({
            v: 1,
            req_id: "again",
            method: "fs.list",
            auth: { token: tok.token },
            params: { path: root },
          }),
        );
        expectError(other.frames[0], "RESOURCE_EXHAUSTED", /rate limit 5rps/, "rate_limited");
      } finally {
        await c.close();
      }
    });
  } finally {
    for (const c of open) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await node.stop();
  }
});

Deno.test({
  name: "clients that never read their answers cannot lock everyone out of fs",
  // The floods' writes are still pending when the test closes their connections.
  sanitizeOps: false,
}, async (t) => {
  const node = await startNode();
  const path = socketPath(node.layout, "fs");
  const floods: Deno.UnixConn[] = [];
  try {
    const fsPid = (await svcStatus(node, "fs")).pid;
    // 1500 tiny garbage frames: each earns an error answer, which the
    // client never reads, so the socket's buffer fills and fs's writes wait.
    const one = rawFrame("x");
    const burst = new Uint8Array(one.length * 1500);
    for (let i = 0; i < 1500; i++) burst.set(one, i * one.length);

    await t.step("300 unauthenticated clients flood and stop reading", async () => {
      for (let i = 0; i < 300; i++) {
        const c = await Deno.connect({ transport: "unix", path });
        floods.push(c);
        c.write(burst).catch(() => {});
      }
      // fs has reached the flood: the last flooder's garbage is being answered
      // with errors (which it reads no further).
      const last = floods.at(-1)!;
      const got = new Uint8Array(64 * 1024);
      let have = 0;
      const deadline = Date.now() + 10_000;
      while (decodeFrames(got.subarray(0, have)).length === 0 && Date.now() < deadline) {
        const n = await last.read(got.subarray(have));
        if (n === null) break;
        have += n;
      }
      const answers = decodeFrames(got.subarray(0, have)) as Response[];
      assert(answers.length > 0, "fs never answered the flood");
      assert.equal(answers[0].ok, false, "garbage earns an error answer");
    });

    await t.step("a fresh client is still answered within 3 s", async () => {
      let last: unknown;
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline) {
        try {
          const c = await Client.connect(path, { connectTimeoutMs: 1000 });
          try {
            const h = await c.call<{ status: string; pid: number }>("fs.health", undefined, {
              timeoutMs: 1000,
            });
            assert.equal(h.status, "ok");
            assert.equal(h.pid, fsPid);
            return;
          } finally {
            await c.close();
          }
        } catch (err) {
          last = err;
          // Retries a fresh client against the real, flooded fs until the deadline.
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      assert.fail(`fs refused every fresh client for 3 s: ${last}`);
    });
  } finally {
    for (const c of floods) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await node.stop();
  }
});

Deno.test("a connection that keeps sending garbage or bad tokens is cut off", async (t) => {
  const node = await startNode();
  const path = socketPath(node.layout, "fs");
  try {
    await t.step(
      `after ${MAX_REFUSALS} refusals in a row the connection closes`,
      async () => {
        const one = rawFrame("x");
        const burst = new Uint8Array(one.length * 100);
        for (let i = 0; i < 100; i++) burst.set(one, i * one.length);
        const r = await rawExchangeAll(path, burst, 1000);
        assert(r.closed, "the connection should have been closed");
        assert.equal(r.frames.length, MAX_REFUSALS);
      },
    );
    await t.step("a client that succeeds more than it fails is not cut off", async () => {
      const bad = rawFrame(
        `{"v":1,"req_id":"b","method":"fs.list","auth":{"token":"junk"},"params":{"path":"/"}}`,
      );
      const good = rawFrame('{"v":1,"req_id":"g","method":"fs.health"}');
      const parts: Uint8Array[] = [];
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < MAX_REFUSALS; i++) parts.push(good);
        for (let i = 0; i < MAX_REFUSALS - 1; i++) parts.push(bad);
      }
      const all = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
      let off = 0;
      for (const p of parts) {
        all.set(p, off);
        off += p.length;
      }
      const r = await rawExchangeAll(path, all, 1000);
      assert.equal(r.frames.length, parts.length);
      assert(!r.closed, "a client that also succeeds is not cut off");
    });
  } finally {
    await node.stop();
  }
});
