/**
 * Unit tests for src/server/server.ts: one in-process server on a socket in a
 * temp dir, driven with the real client and with raw frames.
 */

import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { Client } from "../../src/server/client.ts";
import { encodeFrame, FrameReader, HEADER_BYTES, MAX_FRAME } from "../../src/wire/frame.ts";
import {
  type Method,
  RawJson,
  type RequestChain,
  Server,
  type ServerOptions,
} from "../../src/server/server.ts";
import { authorize } from "../../src/policy/authorize.ts";
import type { Capability } from "../../src/token/claims.ts";
import { RateLimiter } from "../../src/policy/rate_limit.ts";
import { generateSigningKey, importVerifyKey } from "../../src/token/keys.ts";
import { RevocationSet } from "../../src/token/revocation_set.ts";
import { TokenVerifier } from "../../src/token/verifier.ts";
import { CountingLookup, ISSUER, makeClaims, mint, withTempDir } from "./support.ts";
import { decodeFrames, waitFor } from "../helpers.ts";

type ErrBody = { code: number; name: string; message: string; details?: Record<string, unknown> };
type Envelope = { v: 1; req_id: string; ok: boolean; result?: unknown; error?: ErrBody };

const ECHO: Method = {
  name: "t.echo",
  access: "public",
  params: { text: { type: "string", maxLength: 100 }, n: { type: "integer", default: 1 } },
  handler: (p: { text: string; n: number }) => ({ text: p.text.repeat(p.n) }),
};

/** Starts a server on a socket in `dir`, runs `fn`, and always drains the server. */
async function withServer(
  dir: string,
  options: Partial<ServerOptions>,
  fn: (server: Server, path: string) => Promise<void>,
): Promise<void> {
  const path = `${dir}/t.sock`;
  // node:timers' setImmediate ends the server's turns, as in fs and identity (supervisor and
  // registry keep the default 0 ms timer: the burst test below runs with both).
  const server = await Server.listen({
    service: "t",
    path,
    methods: [ECHO],
    immediate: setImmediate,
    ...options,
  });
  try {
    await fn(server, path);
  } finally {
    await server.drain(1000);
  }
}

/** Sends raw bytes on a fresh connection and reads `count` response frames. */
async function exchange(path: string, bytes: Uint8Array, count: number): Promise<Envelope[]> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    await conn.write(bytes);
    const reader = new FrameReader(conn);
    const out: Envelope[] = [];
    for (let i = 0; i < count; i++) {
      const body = await reader.next();
      if (body === null) break;
      out.push(JSON.parse(new TextDecoder().decode(body)));
    }
    return out;
  } finally {
    conn.close();
  }
}

function frameText(text: string): Uint8Array {
  const b = new TextEncoder().encode(text);
  const out = new Uint8Array(HEADER_BYTES + b.length);
  new DataView(out.buffer).setUint32(0, b.length);
  out.set(b, HEADER_BYTES);
  return out;
}

Deno.test("Server: answers a public method and its own health method; socket is 0600", async () => {
  await withTempDir((dir) =>
    withServer(dir, {}, async (_server, path) => {
      // given a client connected to the server
      const client = await Client.connect(path);
      try {
        // when it calls a declared method and the built-in health method
        const echo = await client.call("t.echo", { text: "ab", n: 2 });
        const health = await client.call<{ status: string; service: string }>("t.health");
        // then both answer
        assert.deepEqual(echo, { text: "abab" });
        assert.equal(health.status, "ok");
        assert.equal(health.service, "t");
      } finally {
        await client.close();
      }
      assert.equal(Deno.statSync(path).mode! & 0o777, 0o600);
    })
  );
});

Deno.test("Server: unknown methods, foreign methods and bad params are INVALID_ARGUMENT naming the problem", async () => {
  await withTempDir((dir) =>
    withServer(dir, {}, async (_server, path) => {
      const client = await Client.connect(path);
      try {
        const unknown = await client.request("t.nope");
        const foreign = await client.request("fs.list");
        const badParam = await client.request("t.echo", { text: "a", txet: "b" });
        const missing = await client.request("t.echo", {});
        for (const r of [unknown, foreign, badParam, missing]) {
          assert.equal(r.ok, false);
        }
        const msg = (r: typeof unknown) => (r.ok ? "" : r.error.message);
        assert.match(msg(unknown), /unknown method t\.nope; t offers t\.health, t\.echo/);
        assert.match(msg(foreign), /fs\.list is not served here \(this is t\.sock\)/);
        assert.match(msg(badParam), /^params\.txet: unknown field/);
        assert.match(msg(missing), /^params\.text: required/);
      } finally {
        await client.close();
      }
    })
  );
});

Deno.test("Server: a protected method without a token is UNAUTHENTICATED; with a good token it runs", async () => {
  await withTempDir(async (dir) => {
    // given a server with one protected method and real token checking
    const key = await generateSigningKey();
    const verifier = new TokenVerifier({
      issuer: ISSUER,
      keys: new CountingLookup([await importVerifyKey(key.publicKey)]),
    });
    const revoked = new RevocationSet();
    const limiter = new RateLimiter();
    // The chain a program would give the server: policy's authorize over the trust.
    const chain: RequestChain = {
      authorize: (token, right) =>
        authorize(token, { right }, { service: "t", verifier, revoked, limiter }),
    };
    const secret: Method = {
      name: "t.secret",
      access: { right: "t.secret" },
      params: {},
      handler: (_p, ctx) => ({ cap: (ctx.cap as Capability | undefined)?.capId }),
    };
    await withServer(dir, { methods: [ECHO, secret], chain }, async (_server, path) => {
      const client = await Client.connect(path);
      try {
        // when called without a token, then it is refused with a reason
        const none = await client.request("t.secret");
        assert.equal(none.ok, false);
        if (!none.ok) {
          assert.equal(none.error.name, "UNAUTHENTICATED");
          assert.equal(none.error.details?.reason, "no_token");
        }
        // when called with a token holding the right, then the handler sees the capability
        const claims = makeClaims({ service: "t", rights: ["t.secret"] });
        const token = await mint(key, claims);
        assert.deepEqual(await client.call("t.secret", undefined, { token }), { cap: claims.jti });
        // and a token without the right is PERMISSION_DENIED
        const weak = await mint(key, makeClaims({ service: "t", rights: [] }));
        const denied = await client.request("t.secret", undefined, { token: weak });
        assert.equal(denied.ok ? "" : denied.error.name, "PERMISSION_DENIED");
      } finally {
        await client.close();
      }
    });
  });
});

Deno.test("Server.listen: a method that is neither public nor declares a right is refused", async () => {
  await withTempDir(async (dir) => {
    const bad = { ...ECHO, name: "t.bad", access: {} as { right: string } };
    await assert.rejects(
      Server.listen({ service: "t", path: `${dir}/t.sock`, methods: [bad] }),
      /declares no right and is not public/,
    );
    const guarded: Method = { ...ECHO, name: "t.guarded", access: { right: "t.guarded" } };
    await assert.rejects(
      Server.listen({ service: "t", path: `${dir}/u.sock`, methods: [guarded] }),
      /protected methods need the server's request chain/,
    );
  });
});

Deno.test("Server: envelope errors echo the salvaged req_id and keep the connection usable", async () => {
  await withTempDir((dir) =>
    withServer(dir, {}, async (_server, path) => {
      // given a bad envelope, garbage, and then a good request, pipelined in one write
      const bytes = new Uint8Array([
        ...frameText('{"v":2,"req_id":"r-bad","method":"t.echo"}'),
        ...frameText("not json"),
        ...encodeFrame({ v: 1, req_id: "r-good", method: "t.echo", params: { text: "ok" } }),
      ]);
      const responses = await exchange(path, bytes, 3);
      // then each gets an answer, the first two errors with what req_id could be read
      const byId = new Map(responses.map((r) => [r.req_id, r]));
      assert.equal(byId.get("r-bad")?.error?.name, "INVALID_ARGUMENT");
      assert.match(byId.get("r-bad")!.error!.message, /^v: /);
      assert.match(byId.get("")!.error!.message, /^frame: /);
      assert.deepEqual(byId.get("r-good")?.result, { text: "ok" });
    })
  );
});

Deno.test('Server: an oversize frame is refused with req_id "" and the connection closed', async () => {
  await withTempDir((dir) =>
    withServer(dir, {}, async (_server, path) => {
      const header = new Uint8Array(4);
      new DataView(header.buffer).setUint32(0, MAX_FRAME + 1);
      const [res, after] = await exchange(path, header, 2);
      assert.equal(res.req_id, "");
      assert.equal(res.error?.name, "INVALID_ARGUMENT");
      assert.match(res.error!.message, /limit/);
      assert.equal(after, undefined, "the server should hang up after an oversize frame");
    })
  );
});

Deno.test("Server: a RawJson result is spliced into the response as is", async () => {
  await withTempDir((dir) => {
    const raw: Method = {
      name: "t.raw",
      access: "public",
      params: {},
      handler: () => new RawJson('{"pre":"encoded","n":[1,2]}'),
    };
    return withServer(dir, { methods: [raw] }, async (_server, path) => {
      const client = await Client.connect(path);
      try {
        assert.deepEqual(await client.call("t.raw"), { pre: "encoded", n: [1, 2] });
      } finally {
        await client.close();
      }
    });
  });
});

/** A public method `t.slow` whose handler waits until `release` is called. */
function stuckMethod(): { slow: Method; release: () => void } {
  let release!: () => void;
  const stuck = new Promise<void>((r) => (release = r));
  const slow: Method = {
    name: "t.slow",
    access: "public",
    params: {},
    handler: async () => {
      await stuck;
      return {};
    },
  };
  return { slow, release };
}

Deno.test("Server: a handler slower than requestTimeoutMs gets UNAVAILABLE", async () => {
  await withTempDir((dir) => {
    const { slow, release } = stuckMethod();
    return withServer(
      dir,
      { methods: [slow], limits: { requestTimeoutMs: 50 } },
      async (_s, path) => {
        const client = await Client.connect(path);
        try {
          const r = await client.request("t.slow");
          assert.equal(r.ok ? "" : r.error.name, "UNAVAILABLE");
          assert.match(r.ok ? "" : r.error.message, /took longer than 50 ms/);
        } finally {
          release();
          await client.close();
        }
      },
    );
  });
});

Deno.test("Server: slow handlers started at different times each fail after their own time limit", async () => {
  await withTempDir((dir) => {
    const { slow, release } = stuckMethod();
    return withServer(
      dir,
      { methods: [slow], limits: { requestTimeoutMs: 120 } },
      async (_s, path) => {
        // given two requests to a stuck handler, the second sent 60 ms after the first
        const a = await Client.connect(path);
        const b = await Client.connect(path);
        try {
          const t0 = performance.now();
          const first = a.request("t.slow").then((r) => ({ r, ms: performance.now() - t0 }));
          await new Promise((r) => setTimeout(r, 60));
          const second = b.request("t.slow").then((r) => ({ r, ms: performance.now() - t0 }));
          // then each is UNAVAILABLE once its own 120 ms are up: the second not with the first
          const [x, y] = [await first, await second];
          for (const { r } of [x, y]) assert.equal(r.ok ? "" : r.error.name, "UNAVAILABLE");
          assert.ok(x.ms >= 115, `first failed after ${x.ms.toFixed(0)} ms`);
          assert.ok(y.ms >= 175, `second failed after ${y.ms.toFixed(0)} ms`);
        } finally {
          release();
          await a.close();
          await b.close();
        }
      },
    );
  });
});

Deno.test("Server: handler failures become protocol errors without leaking their messages", async () => {
  await withTempDir((dir) => {
    const missing: Method = {
      name: "t.missing",
      access: "public",
      params: {},
      handler: () => {
        throw new Deno.errors.NotFound("/secret/path/in/message");
      },
    };
    const buggy: Method = {
      name: "t.buggy",
      access: "public",
      params: {},
      handler: () => {
        throw new TypeError("cannot read secret-material of undefined");
      },
    };
    return withServer(dir, { methods: [ECHO, missing, buggy] }, async (_s, path) => {
      const client = await Client.connect(path);
      // the server logs INTERNAL failures; keep the test output clean
      const logged: unknown[][] = [];
      const original = console.error;
      console.error = (...args: unknown[]) => void logged.push(args);
      try {
        // a file error maps to NOT_FOUND, a bug to INTERNAL; neither shows its message
        const nf = await client.request("t.missing");
        assert.equal(nf.ok ? "" : nf.error.name, "NOT_FOUND");
        assert.doesNotMatch(nf.ok ? "" : nf.error.message, /secret/);
        const bug = await client.request("t.buggy");
        assert.equal(bug.ok ? "" : bug.error.name, "INTERNAL");
        assert.doesNotMatch(bug.ok ? "" : bug.error.message, /secret/);
        // and the bug went to the service's log instead
        assert.equal(logged.length, 1);
        // while the connection still works
        assert.deepEqual(await client.call("t.echo", { text: "z" }), { text: "z" });
      } finally {
        console.error = original;
        await client.close();
      }
    });
  });
});

Deno.test("Server.listen: a socket another live server answers on is CONFLICT; close removes the socket", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/t.sock`;
    const first = await Server.listen({ service: "t", path, methods: [ECHO] });
    try {
      await assert.rejects(
        Server.listen({ service: "t", path, methods: [ECHO] }),
        /another process is already serving/,
      );
    } finally {
      await first.drain(100);
    }
    assert.throws(() => Deno.statSync(path), Deno.errors.NotFound);
  });
});

Deno.test("Server: a peer that pipelines and never reads stalls only itself", async () => {
  await withTempDir((dir) => {
    // given a method whose answers are 100 KB, and a connection budget of 256 KiB
    let made = 0;
    const big: Method = {
      name: "t.big",
      access: "public",
      params: {},
      cost: () => 100_000,
      handler: () => {
        made++;
        return { blob: "x".repeat(100_000) };
      },
    };
    return withServer(dir, { methods: [ECHO, big] }, async (_server, path) => {
      // when one peer sends 200 requests and reads nothing
      const frame = frameText('{"v":1,"req_id":"b","method":"t.big"}');
      const all = new Uint8Array(frame.length * 200);
      for (let i = 0; i < 200; i++) all.set(frame, i * frame.length);
      const idle = await Deno.connect({ transport: "unix", path });
      try {
        await idle.write(all);
        // Gives the server time to answer through a real socket; the check is an
        // upper bound on what it made, so there is no event to wait for.
        await new Promise((r) => setTimeout(r, 300));
        // then only about what its socket and its budget hold was made for it
        assert(made <= 8, `${made} answers of 100 KB made for a peer that reads nothing`);
        // and another client is answered at once
        const client = await Client.connect(path);
        try {
          const t0 = performance.now();
          assert.equal((await client.call<{ text: string }>("t.echo", { text: "hi" })).text, "hi");
          assert(performance.now() - t0 < 500);
        } finally {
          await client.close();
        }
      } finally {
        idle.close();
      }
    });
  });
});

/** An in-memory connection: reads `input`, then end of file; keeps what is written. */
function memoryConn(input: Uint8Array) {
  let off = 0;
  const written: number[] = [];
  return {
    written,
    read(p: Uint8Array): Promise<number | null> {
      if (off >= input.length) return Promise.resolve(null);
      const n = Math.min(p.length, input.length - off);
      p.set(input.subarray(off, off + n));
      off += n;
      return Promise.resolve(n);
    },
    write(p: Uint8Array): Promise<number> {
      written.push(...p);
      return Promise.resolve(p.length);
    },
    close() {},
  };
}

Deno.test("Server.servePrivate: requests run as the principal, through the same envelope and params checks", async () => {
  await withTempDir((dir) => {
    // given a protected method and a chain that refuses everything (and counts)
    let chainCalls = 0;
    const seen: unknown[] = [];
    const chain: RequestChain<string> = {
      authorize: () => {
        chainCalls++;
        throw new Error("the chain must not be asked for a private connection");
      },
    };
    const register: Method<string> = {
      name: "t.register",
      access: { right: "t.register" },
      params: { service: { type: "string", pattern: /^[a-z]+$/ } },
      handler: (p: { service: string }, ctx) => {
        seen.push([p.service, ctx.cap]);
        return { ok: true };
      },
    };
    return withServer(dir, { methods: [register] as Method[], chain }, async (server) => {
      // when the private connection sends a good request, bad params, a bad envelope
      // and an unknown method, with no token at all
      const conn = memoryConn(
        new Uint8Array([
          ...frameText('{"v":1,"req_id":"a","method":"t.register","params":{"service":"fs"}}'),
          ...frameText('{"v":1,"req_id":"b","method":"t.register","params":{"service":"F/S"}}'),
          ...frameText('{"v":1,"req_id":"c","method":"t.register","params":{}}'),
          ...frameText('{"v":2,"req_id":"d","method":"t.register"}'),
          ...frameText('{"v":1,"req_id":"e","method":"t.nope","params":{}}'),
        ]),
      );
      await (server as unknown as Server<string>).servePrivate(conn, { principal: "supervisor" });
      // then the good one ran as the principal and every other one was refused by the server
      const answers = decodeFrames(new Uint8Array(conn.written)) as Envelope[];
      assert.deepEqual(seen, [["fs", "supervisor"]]);
      assert.equal(chainCalls, 0);
      const byId = new Map(answers.map((a) => [a.req_id, a]));
      assert.equal(byId.get("a")?.ok, true);
      for (const id of ["b", "c", "e"]) {
        assert.equal(byId.get(id)?.error?.name, "INVALID_ARGUMENT", id);
      }
      assert.equal(answers.filter((a) => !a.ok).length, 4);
    });
  });
});

Deno.test("Server: an answer made at once is handed to the socket before the next request of the same read is worked on", async () => {
  await withTempDir((dir) => {
    // given a synchronous method, and a connection whose one read brings three requests
    const events: string[] = [];
    const note: Method = {
      name: "t.note",
      access: "public",
      params: { n: { type: "integer" } },
      handler: (p: { n: number }) => {
        events.push(`handle ${p.n}`);
        return { n: p.n };
      },
    };
    return withServer(dir, { methods: [note] }, async (server) => {
      const conn = memoryConn(
        new Uint8Array([1, 2, 3].flatMap((n) => [
          ...frameText(`{"v":1,"req_id":"r${n}","method":"t.note","params":{"n":${n}}}`),
        ])),
      );
      const write = conn.write;
      conn.write = (p: Uint8Array) => {
        const answer = decodeFrames(p) as Envelope[];
        events.push(`write ${(answer[0].result as { n: number }).n}`);
        return write(p);
      };
      // when the server serves it
      await server.servePrivate(conn, { principal: undefined });
      // then each answer reached the socket before the next request was handled
      // (the peer works on it meanwhile), not all three at the end of the turn
      assert.deepEqual(events, [
        "handle 1",
        "write 1",
        "handle 2",
        "write 2",
        "handle 3",
        "write 3",
      ]);
    });
  });
});

Deno.test("Server: a small response does not wait behind large ones queued for the server's budget", async () => {
  await withTempDir((dir) => {
    // given a server budget of 300 KB, large answers that cost 250 KB each and
    // small ones that cost 40 KB, each held in the making until `release`
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const started: string[] = [];
    const big: Method = {
      name: "t.big",
      access: "public",
      params: { id: { type: "string", maxLength: 10 } },
      cost: () => 250_000,
      handler: async (p: { id: string }) => {
        started.push(p.id);
        await gate;
        return { id: p.id };
      },
    };
    const small: Method = {
      name: "t.small",
      access: "public",
      params: { id: { type: "string", maxLength: 10 } },
      cost: () => 40_000,
      handler: async (p: { id: string }) => {
        started.push(p.id);
        if (p.id.startsWith("held")) await gate;
        return { id: p.id };
      },
    };
    // and answers that cost 40 KB but are 900 KB once made (a long listing)
    const grow: Method = {
      name: "t.grow",
      access: "public",
      params: { id: { type: "string", maxLength: 10 } },
      cost: () => 40_000,
      handler: (p: { id: string }) => {
        started.push(p.id);
        return { id: p.id, blob: "x".repeat(900_000) };
      },
    };
    const limits = { responseBudget: 300_000 };
    const methods = [ECHO, big, small, grow];
    return withServer(dir, { methods, limits }, async (server, path) => {
      const clients = await Promise.all([1, 2, 3, 4].map(() => Client.connect(path)));
      const [a, b, c, d] = clients;
      try {
        // when one large answer holds the budget and another waits in line for it
        const big1 = a.call("t.big", { id: "big1" });
        await waitFor("the first large answer", () => started.includes("big1"), 2000);
        const big2 = b.call("t.big", { id: "big2" });
        // A failed check leaves these to be refused as the clients close: not an uncaught error.
        for (const p of [big1, big2]) p.catch(() => {});
        // In flight is in line: nothing else stops it before the budget.
        await waitFor("the second large answer in line", () => server.inFlight === 2, 2000);
        // then a small one from another client is answered at once, not after them
        const soon = { timeoutMs: 1000 };
        assert.deepEqual(await c.call("t.small", { id: "quick" }, soon), { id: "quick" });
        assert(!started.includes("big2"), "the second large answer was started early");
        // and one connection holds at most 64 KiB of the reserve: its second
        // small answer in the making waits in line like any other
        const held1 = d.call("t.small", { id: "held1" });
        const held2 = d.call("t.small", { id: "held2" });
        for (const p of [held1, held2]) p.catch(() => {});
        await waitFor("the first held answer", () => started.includes("held1"), 2000);
        assert.deepEqual(await c.call("t.small", { id: "quick2" }, soon), { id: "quick2" });
        assert(!started.includes("held2"), "one connection took more than 64 KiB of the reserve");
        // and answers larger than their cost, left unread by two peers, count
        // in the budget, not the reserve: small answers still find room
        const peers = await Promise.all(
          [1, 2].map(() => Deno.connect({ transport: "unix", path })),
        );
        try {
          for (const [i, peer] of peers.entries()) {
            await peer.write(
              frameText(`{"v":1,"req_id":"g","method":"t.grow","params":{"id":"grow${i}"}}`),
            );
          }
          await waitFor("both long answers", () => started.includes("grow1"), 2000);
          // A macrotask turn: both answers made and counted.
          await new Promise((r) => setTimeout(r, 0));
          assert.deepEqual(await c.call("t.small", { id: "quick3" }, soon), { id: "quick3" });
        } finally {
          for (const peer of peers) peer.close();
        }
        // and once the budget is given back, every answer comes, in line
        release();
        assert.deepEqual(
          await Promise.all([big1, big2, held1, held2]),
          [{ id: "big1" }, { id: "big2" }, { id: "held1" }, { id: "held2" }],
        );
        assert(started.indexOf("big2") < started.indexOf("held2"));
      } finally {
        for (const cl of clients) await cl.close();
      }
    });
  });
});

Deno.test("Server: a peer that does not take a response within writeTimeoutMs is closed", async () => {
  await withTempDir((dir) => {
    // given a method whose answer (900 KB) is more than a socket holds, and a write timeout of 400 ms
    const big: Method = {
      name: "t.big",
      access: "public",
      params: {},
      handler: () => ({ blob: "x".repeat(900_000) }),
    };
    const limits = { writeTimeoutMs: 400 };
    return withServer(dir, { methods: [ECHO, big], limits }, async (server, path) => {
      // when a peer asks for it and reads nothing
      const peer = await Deno.connect({ transport: "unix", path });
      try {
        const t0 = performance.now();
        await peer.write(frameText('{"v":1,"req_id":"b","method":"t.big"}'));
        await waitFor("the connection", () => server.connections === 1, 2000);
        // then it is closed once the write has been stuck for the timeout, not before
        await waitFor("the stuck connection's close", () => server.connections === 0, 3000);
        const ms = performance.now() - t0;
        assert(ms >= 400, `closed after ${ms.toFixed(0)} ms`);
        // and the request it had in flight is done with (its budgets given back)
        await waitFor("its request to end", () => server.inFlight === 0, 2000);
        // and other clients are served as before
        const client = await Client.connect(path);
        try {
          assert.equal((await client.call<{ text: string }>("t.echo", { text: "hi" })).text, "hi");
        } finally {
          await client.close();
        }
      } finally {
        peer.close();
      }
    });
  });
});

/** Counts macrotask turns (a 0 ms timer each) until stopped: which turn something happened in. */
function turnCounter(): { now(): number; stop(): void } {
  let turn = 0;
  let timer = setTimeout(function bump() {
    turn++;
    timer = setTimeout(bump, 0);
  }, 0);
  return { now: () => turn, stop: () => clearTimeout(timer) };
}

for (
  const [how, immediate] of [
    ["setImmediate", setImmediate],
    ["the default 0 ms timer", undefined],
  ] as const
) {
  Deno.test(`Server: a burst of newcomers is accepted a few at a time, with a turn of the event loop between (${how})`, async () => {
    await withTempDir((dir) => {
      let handled = 0;
      const count: Method = {
        name: "t.count",
        access: "public",
        params: {},
        handler: () => ({ n: ++handled }),
      };
      return withServer(dir, { methods: [ECHO, count], immediate }, async (_server, path) => {
        // given 64 connections that each sent a request while this process (and
        // so the server) was held up: a child connects them while outputSync blocks
        const frame = [...frameText('{"v":1,"req_id":"c","method":"t.count"}')];
        const code = `const f = new Uint8Array(${JSON.stringify(frame)});
        for (let i = 0; i < 64; i++) {
          const c = await Deno.connect({ transport: "unix", path: ${JSON.stringify(path)} });
          await c.write(f);
        }`;
        const out = new Deno.Command(Deno.execPath(), {
          args: ["eval", `--allow-read=${path}`, `--allow-write=${path}`, code],
          stdout: "null",
          stderr: "piped",
        }).outputSync();
        assert(out.success, new TextDecoder().decode(out.stderr));
        // when the server takes them up, the requests handled by each macrotask turn
        const perTurn: number[] = [];
        const deadline = Date.now() + 5000;
        for (let last = 0; handled < 64 && Date.now() < deadline; last = handled) {
          await new Promise((r) => setTimeout(r, 0));
          perTurn.push(handled - last);
        }
        assert.equal(handled, 64);
        // then no turn took up more than two bursts of 8 (before, all 64 were in one)
        assert(Math.max(...perTurn) <= 16, `handled per turn: ${perTurn.join(",")}`);
      });
    });
  });
}

Deno.test("Server: heavy work let go together by bytes given back to the budget takes turns", async () => {
  await withTempDir((dir) => {
    // given a budget of 1 MB, a heavy answer that takes all of it and is held
    // until `release`, and heavy answers of 100 KB that wait in line behind it
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const turns = turnCounter();
    const startedIn = new Map<string, number>();
    const heavy: Method = {
      name: "t.heavy",
      access: "public",
      params: { id: { type: "string", maxLength: 10 }, cost: { type: "integer" } },
      cost: (p: { cost: number }) => p.cost,
      heavy: () => true,
      handler: async (p: { id: string }) => {
        startedIn.set(p.id, turns.now());
        if (p.id === "hold") await gate;
        return { id: p.id };
      },
    };
    const limits = { responseBudget: 1_000_000 };
    return withServer(dir, { methods: [ECHO, heavy], limits }, async (server, path) => {
      const clients = await Promise.all(Array.from({ length: 9 }, () => Client.connect(path)));
      try {
        const hold = clients[0].call("t.heavy", { id: "hold", cost: 1_000_000 });
        await waitFor("the holder", () => startedIn.has("hold"), 2000);
        const ids = Array.from({ length: 8 }, (_, i) => `w${i}`);
        const waiting = ids.map((id, i) => clients[i + 1].call("t.heavy", { id, cost: 100_000 }));
        await waitFor("all eight in line", () => server.inFlight === 9, 2000);
        // when the holder's answer is written and its 1 MB given back at once
        release();
        assert.deepEqual(await hold, { id: "hold" });
        assert.equal((await Promise.all(waiting)).length, 8);
        // then the eight it let go did not all run in one turn: at most four
        // (the heavy work that starts at once) shared one
        const perTurn = new Map<number, number>();
        for (const id of ids) {
          const t = startedIn.get(id)!;
          perTurn.set(t, (perTurn.get(t) ?? 0) + 1);
        }
        assert(Math.max(...perTurn.values()) <= 4, `per turn: ${[...perTurn.values()]}`);
      } finally {
        turns.stop();
        for (const c of clients) await c.close();
      }
    });
  });
});
