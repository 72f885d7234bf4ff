/**
 * Unit tests for src/ctl/session.ts: which token a session presents, one
 * connection per service, and refusals and unreachable services as CtlError,
 * against a hand-written peer on a Unix socket.
 */

import assert from "node:assert/strict";
import { CtlError, EXIT } from "../../src/ctl/errors.ts";
import { Session } from "../../src/ctl/session.ts";
import { encodeFrame, FrameReader } from "../../src/wire/frame.ts";
import type { Layout } from "../../src/runtime/config.ts";

type Req = { req_id: string; method: string; auth?: { token: string }; params?: unknown };

/** A peer on `path` answering each request with `answer`; counts connections. */
function peer(path: string, answer: (req: Req) => unknown) {
  const listener = Deno.listen({ transport: "unix", path });
  const seen: Req[] = [];
  let connections = 0;
  const serving: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      connections++;
      serving.push((async () => {
        const reader = new FrameReader(conn);
        while (true) {
          const body = await reader.next().catch(() => null);
          if (body === null) break;
          const req = JSON.parse(new TextDecoder().decode(body)) as Req;
          seen.push(req);
          await conn.write(encodeFrame({ v: 1, req_id: req.req_id, ...answer(req) as object }));
        }
        try {
          conn.close();
        } catch { /* closed */ }
      })());
    }
  })();
  return {
    seen,
    connections: () => connections,
    async close() {
      listener.close();
      await accepting.catch(() => {});
      await Promise.all(serving);
    },
  };
}

async function withLayout(fn: (layout: Layout) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-ctl-s-" });
  await Deno.mkdir(`${root}/rt`);
  await Deno.mkdir(`${root}/state`);
  try {
    await fn({ runtimeDir: `${root}/rt`, stateDir: `${root}/state`, nodeId: "t", fsRoots: [] });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("Session.call: the result, with the token in auth; one connection for many calls", async () => {
  await withLayout(async (layout) => {
    // given a supervisor that answers every call
    const p = peer(`${layout.runtimeDir}/supervisor.sock`, (req) => ({
      ok: true,
      result: { method: req.method },
    }));
    const s = new Session(layout, { token: "v4.public.T", timeoutMs: 2000 });
    try {
      // when two calls are made, one of them without auth
      assert.deepEqual(await s.call("supervisor.status"), { method: "supervisor.status" });
      await s.call("supervisor.svc.list", undefined, { auth: false });
    } finally {
      await s.close();
      await p.close();
    }
    // then the first carried the token, the second none, over one connection
    assert.equal(p.seen[0].auth?.token, "v4.public.T");
    assert.equal(p.seen[1].auth, undefined);
    assert.equal(p.connections(), 1);
  });
});

Deno.test("Session.call: a refusal is a CtlError with exit 1, the error and a hint by method", async () => {
  await withLayout(async (layout) => {
    const p = peer(`${layout.runtimeDir}/supervisor.sock`, () => ({
      ok: false,
      error: { code: 4, name: "NOT_FOUND", message: "no service nope" },
    }));
    const s = new Session(layout, { timeoutMs: 2000 });
    try {
      await assert.rejects(s.call("supervisor.svc.start", { name: "nope" }), (e: unknown) => {
        assert.ok(e instanceof CtlError);
        assert.equal(e.exit, EXIT.REFUSED);
        assert.equal(e.json.name, "NOT_FOUND");
        assert.equal(e.json.message, "no service nope");
        assert.match(e.hint ?? "", /strata-ctl svc list/);
        return true;
      });
    } finally {
      await s.close();
      await p.close();
    }
  });
});

Deno.test("Session.call: nothing listening is a CtlError with exit 2 and what to start", async () => {
  await withLayout(async (layout) => {
    const s = new Session(layout, { timeoutMs: 500 });
    await assert.rejects(s.call("supervisor.status"), (e: unknown) => {
      assert.ok(e instanceof CtlError);
      assert.equal(e.exit, EXIT.USAGE);
      assert.equal(e.json.name, "UNAVAILABLE");
      assert.match(e.message, /supervisor is not running/);
      assert.match(e.json.hint!, /deno task start/);
      return true;
    });
    // a service other than the supervisor points at svc list
    await assert.rejects(
      s.call("fs.list", { path: "/" }),
      (e: unknown) => e instanceof CtlError && /strata-ctl svc list/.test(e.json.hint ?? ""),
    );
    await s.close();
  });
});

Deno.test("Session.token: -token first, else the operator token, and where it came from", async () => {
  await withLayout(async (layout) => {
    const explicit = new Session(layout, { token: "v4.public.X", timeoutMs: 100 });
    assert.equal(explicit.token(), "v4.public.X");
    assert.equal(explicit.tokenSource(), "-token");
    const none = new Session(layout, { timeoutMs: 100 });
    // (the test process has STRATA_TOKEN only if the caller set it)
    if (Deno.env.get("STRATA_TOKEN") === undefined) {
      assert.equal(none.token(), undefined);
      assert.equal(none.tokenSource(), "none");
      await Deno.writeTextFile(`${layout.stateDir}/operator.token`, "v4.public.OP\n");
      assert.equal(none.token(), "v4.public.OP");
      assert.equal(none.tokenSource(), "operator token");
    }
  });
});

Deno.test("Session: --node with the supervisor's methods is refused, not answered for this node", async () => {
  await withLayout(async (layout) => {
    const s = new Session({ ...layout, nodeId: "a" }, { timeoutMs: 500, node: "b" });
    await assert.rejects(s.call("supervisor.status"), (e: unknown) => {
      assert.ok(e instanceof CtlError);
      assert.equal(e.exit, EXIT.USAGE);
      assert.match(
        e.message,
        /^--node b: the supervisor's commands \(status, svc, logs\) answer for this node only/,
      );
      assert.match(e.json.hint!, /cluster status/);
      return true;
    });
    await s.close();
  });
});
