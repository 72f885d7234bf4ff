/**
 * Unit tests for src/server/client.ts, against hand-written peers on Unix
 * sockets in a temp dir.
 */

import assert from "node:assert/strict";
import { callOnce, Client, RemoteError } from "../../src/server/client.ts";
import { encodeFrame, FrameReader } from "../../src/wire/frame.ts";
import { AS_ROOT, REPO_ROOT, socketFixtureArgs, waitFor } from "../helpers.ts";
import { rejectsStrata, withTempDir } from "./support.ts";

type Req = { v: 1; req_id: string; method: string; auth?: { token: string }; params?: unknown };

/**
 * A peer that accepts one connection and answers each request with
 * `answer(req)` (undefined: no answer). Resolves once the connection ends.
 */
function peer(
  path: string,
  answer: (req: Req) => unknown | undefined,
): { done: Promise<Req[]> } {
  const listener = Deno.listen({ transport: "unix", path });
  const done = (async () => {
    const seen: Req[] = [];
    const conn = await listener.accept();
    listener.close();
    try {
      const reader = new FrameReader(conn);
      while (true) {
        const body = await reader.next().catch(() => null);
        if (body === null) break;
        const req = JSON.parse(new TextDecoder().decode(body)) as Req;
        seen.push(req);
        const res = await answer(req);
        if (res !== undefined) await conn.write(encodeFrame(res));
      }
    } finally {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    return seen;
  })();
  return { done };
}

Deno.test("Client.connect: no socket file is UNAVAILABLE saying so", async () => {
  await withTempDir(async (dir) => {
    const err = await rejectsStrata(
      Client.connect(`${dir}/none.sock`),
      "UNAVAILABLE",
      /cannot connect to .*none\.sock: no socket there/,
    );
    assert.equal(err.details?.path, `${dir}/none.sock`);
    // and says why for programs: nothing runs there (not the message's words to match)
    assert.equal(err.details?.reason, "not_running");
    // the same given as an endpoint URL
    const url = await rejectsStrata(Client.connect(`unix://${dir}/none.sock`), "UNAVAILABLE");
    assert.deepEqual(url.details, { reason: "not_running", path: `${dir}/none.sock` });
  });
});

Deno.test("Client.connect: a path that is not a listening socket is UNAVAILABLE", async () => {
  await withTempDir(async (dir) => {
    // given a plain file where a socket should be
    const path = `${dir}/plain.sock`;
    Deno.writeTextFileSync(path, "");
    // then connecting is refused as unavailable, naming the path
    const err = await rejectsStrata(
      Client.connect(path),
      "UNAVAILABLE",
      /cannot connect to .*plain\.sock: nothing is listening/,
    );
    assert.deepEqual(err.details, { reason: "not_running", path });
  });
});

Deno.test("Client: a peer that closes the connection fails its requests with reason connection_lost", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/p.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const accepted = listener.accept().then((conn) => {
      listener.close();
      return conn;
    });
    const client = await Client.connect(path);
    try {
      const pending = client.call("x.y");
      (await accepted).close();
      // ("closed the connection", or a reset when the request was still unread: the same reason)
      const err = await rejectsStrata(pending, "UNAVAILABLE");
      assert.deepEqual(err.details, { reason: "connection_lost", path });
      const after = await rejectsStrata(client.request("x.y"), "UNAVAILABLE", /connection closed/);
      assert.equal(after.details?.reason, "connection_lost");
    } finally {
      await client.close();
    }
  });
});

/**
 * Runs `code` (a module importing the client) as a program with `flags`;
 * `asOthers`: as root without the capabilities that pass over file modes
 * (setpriv), so a socket of another user's is refused as it would be to them.
 */
async function runClientProgram(
  dir: string,
  code: string,
  flags: string[],
  asOthers = false,
): Promise<Record<string, unknown>> {
  const file = `${dir}/probe.ts`;
  Deno.writeTextFileSync(file, code);
  const deno = Deno.execPath();
  const args = ["run", "--quiet", "--no-prompt", "--no-config", ...flags, file];
  const out = await new Deno.Command(asOthers ? "setpriv" : deno, {
    args: asOthers ? ["--bounding-set=-dac_override,-dac_read_search", "--", deno, ...args] : args,
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.ok(out.success, `${text}\n${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(text);
}

const CLIENT_MODULE = new URL("../../src/server/client.ts", import.meta.url).pathname;
const probe = (path: string) =>
  `import { Client } from ${JSON.stringify(CLIENT_MODULE)};
try {
  await Client.connect(${JSON.stringify(path)});
  console.log(JSON.stringify({ connected: true }));
} catch (err) {
  console.log(JSON.stringify({ message: err.message, details: err.details }));
}
`;

Deno.test("Client.connect: a socket this program's permissions do not grant is reason not_permitted", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/s.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    try {
      const src = new URL("../../src", import.meta.url).pathname;
      const r = await runClientProgram(dir, probe(path), [`--allow-read=${src},${dir}`]);
      assert.match(String(r.message), /this program is not permitted to use that socket/);
      assert.deepEqual(r.details, { reason: "not_permitted", path });
    } finally {
      listener.close();
    }
  });
});

Deno.test("Client.connect: a socket the operating system refuses is reason permission_denied", {
  ignore: !AS_ROOT,
}, async () => {
  await withTempDir(async (dir) => {
    // given a running server's socket that belongs to another user (mode 0600)
    const path = `${dir}/s.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    Deno.chmodSync(path, 0o600);
    Deno.chownSync(path, 65534, 65534);
    try {
      // when a program Deno grants the socket connects, and the system refuses it
      const src = new URL("../../src", import.meta.url).pathname;
      const flags = [
        `--allow-read=${src},${path}`,
        `--allow-write=${path}`,
        `--allow-net=unix:${path}`,
      ];
      const r = await runClientProgram(dir, probe(path), flags, true);
      // then the reason says the system refused, whatever words its message has
      assert.deepEqual(r.details, { reason: "permission_denied", path });
      assert.match(String(r.message), /^cannot connect to .*s\.sock: /);
    } finally {
      listener.close();
    }
  });
});

Deno.test("Client: requests carry v, a unique req_id, the token and params; responses are matched by req_id", async () => {
  await withTempDir(async (dir) => {
    // given a peer that echoes each request's method and params
    const path = `${dir}/p.sock`;
    const p = peer(
      path,
      (req) => ({ v: 1, req_id: req.req_id, ok: true, result: { m: req.method, p: req.params } }),
    );
    const client = await Client.connect(path);
    // when two calls are made at once, one with a token
    const [a, b] = await Promise.all([
      client.call("x.one", { n: 1 }, { token: "tok" }),
      client.call("x.two"),
    ]);
    await client.close();
    const seen = await p.done;
    // then each got its own answer
    assert.deepEqual(a, { m: "x.one", p: { n: 1 } });
    assert.deepEqual(b, { m: "x.two" });
    // and the requests were well-formed with distinct ids
    assert.equal(seen.length, 2);
    assert.notEqual(seen[0].req_id, seen[1].req_id);
    const one = seen.find((r) => r.method === "x.one")!;
    assert.deepEqual(one.auth, { token: "tok" });
    assert.equal(one.v, 1);
    assert.equal("auth" in seen.find((r) => r.method === "x.two")!, false);
  });
});

Deno.test("Client.call: an error response throws RemoteError with its name and details", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/p.sock`;
    const p = peer(path, (req) => ({
      v: 1,
      req_id: req.req_id,
      ok: false,
      error: {
        code: 3,
        name: "PERMISSION_DENIED",
        message: "nope",
        details: { reason: "missing_right" },
      },
    }));
    const client = await Client.connect(path);
    try {
      const err = await rejectsStrata(client.call("x.y"), "PERMISSION_DENIED", /^nope$/);
      assert.ok(err instanceof RemoteError);
      assert.equal(err.details?.reason, "missing_right");
    } finally {
      await client.close();
      await p.done;
    }
  });
});

Deno.test("Client: a request not answered in time is UNAVAILABLE", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/p.sock`;
    const p = peer(path, () => undefined);
    const client = await Client.connect(path);
    try {
      const err = await rejectsStrata(
        client.call("x.wait", undefined, { timeoutMs: 30 }),
        "UNAVAILABLE",
        /no answer from .* in 30 ms/,
      );
      assert.deepEqual(err.details, { reason: "no_answer", path });
    } finally {
      await client.close();
      await p.done;
    }
  });
});

Deno.test("Client: each request times out on its own deadline, with one watch for all of them", async () => {
  await withTempDir(async (dir) => {
    // given a peer that answers only x.late, and only once x.short's time is up
    const path = `${dir}/p.sock`;
    let answerLate: (() => void) | undefined;
    const p = peer(path, (req) => {
      if (req.method !== "x.late") return undefined;
      return new Promise((r) => {
        answerLate = () => r({ v: 1, req_id: req.req_id, ok: true, result: { late: true } });
      });
    });
    const client = await Client.connect(path);
    try {
      // when a long request and then a short one are sent, and a third with the default
      const late = client.call("x.late", undefined, { timeoutMs: 5000 });
      const short = client.call("x.short", undefined, { timeoutMs: 30 });
      const t0 = performance.now();
      // then the short one fails after its own 30 ms, not the long one's 5 s
      await rejectsStrata(short, "UNAVAILABLE", /x\.short: no answer from .* in 30 ms/);
      assert.ok(performance.now() - t0 < 2000);
      // and the long one is still answered afterwards
      while (!answerLate) await new Promise((r) => setTimeout(r, 5));
      answerLate();
      assert.deepEqual(await late, { late: true });
    } finally {
      await client.close();
      await p.done;
    }
  });
});

Deno.test('Client: a connection-level refusal (req_id "") fails the pending requests', async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/p.sock`;
    const p = peer(path, () => ({
      v: 1,
      req_id: "",
      ok: false,
      error: { code: 7, name: "RESOURCE_EXHAUSTED", message: "busy" },
    }));
    const client = await Client.connect(path);
    try {
      await rejectsStrata(client.call("x.y"), "RESOURCE_EXHAUSTED", /busy/);
      assert.equal(client.closed, true);
    } finally {
      await client.close();
      await p.done;
    }
  });
});

Deno.test("Client: after close, requests fail at once with UNAVAILABLE", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/p.sock`;
    const p = peer(path, () => undefined);
    const client = await Client.connect(path);
    await client.close();
    await p.done;
    assert.equal(client.closed, true);
    await rejectsStrata(client.request("x.y"), "UNAVAILABLE", /connection closed/);
  });
});

Deno.test("callOnce: connects, calls and closes", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/p.sock`;
    const p = peer(path, (req) => ({ v: 1, req_id: req.req_id, ok: true, result: { ok: 1 } }));
    assert.deepEqual(await callOnce(path, "x.y"), { ok: 1 });
    assert.equal((await p.done).length, 1);
  });
});

Deno.test("callOnce: a server at its connection limit is a RemoteError with its reason, never a lost connection", async () => {
  await withTempDir(async (dir) => {
    // given a server in a process of its own whose one connection is taken
    const path = `${dir}/fs.sock`;
    const child = new Deno.Command(Deno.execPath(), {
      args: socketFixtureArgs("full_service.ts", path, "stuck"),
      stdout: "null",
    }).spawn();
    try {
      await waitFor("the socket", () => {
        try {
          return Deno.lstatSync(path).isSocket === true;
        } catch {
          return false;
        }
      });
      // then every call is refused for the limit: the refusal is read even when
      // the request's write fails on the server's close (one in three did so before)
      for (let i = 0; i < 30; i++) {
        const err = await callOnce(path, "fs.health").then(() => undefined, (e) => e);
        assert.ok(err instanceof RemoteError, `call ${i}: ${err}`);
        assert.equal(err.errorName, "RESOURCE_EXHAUSTED");
        assert.equal(err.details?.reason, "connection_limit");
      }
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
  });
});

Deno.test("Client: a write that fails on a connection that stays open ends the client soon, not at the request's timeout", async () => {
  await withTempDir(async (dir) => {
    // given a peer that has shut down its reading side but keeps the connection open
    const path = `${dir}/p.sock`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", `${REPO_ROOT}/tests/fixtures/half_closed_peer.ts`, path],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let client: Client | undefined;
    try {
      await waitFor("the socket", () => Deno.lstatSync(path).isSocket === true);
      client = await Client.connect(path, { timeoutMs: 10_000 });
      let said = "";
      while (!said.includes("ready")) {
        const { value, done } = await lines.read();
        assert.ok(!done, `the peer ended before it was ready: ${said}`);
        said += value;
      }
      // when a request is sent: its write fails (EPIPE) and no answer or end ever comes
      const t0 = performance.now();
      const err = await rejectsStrata(client.call("x.y"), "UNAVAILABLE");
      const took = performance.now() - t0;
      // then the request fails with the write's error after the grace, not after 10 s,
      // and the client is closed: a later call fails at once
      assert.equal(err.details?.reason, "connection_lost");
      assert.ok(took < 2_000, `the failed write ended the request after ${took.toFixed(0)} ms`);
      assert.equal(client.closed, true);
      await rejectsStrata(client.call("x.y"), "UNAVAILABLE", /connection closed/);
    } finally {
      await client?.close();
      // Killed, not only told by its stdin: a peer still waiting in accept() would not hear it.
      try {
        child.kill("SIGKILL");
      } catch { /* already ended */ }
      await child.stdin.close().catch(() => {});
      await lines.cancel();
      await child.status;
    }
  });
});
