/**
 * fs over TLS on loopback (a CA and a certificate for 127.0.0.1 made for the
 * test): the supervisor starts fs with `--fs-listen=tcp://127.0.0.1:PORT`,
 * and every attack is sent as real bytes both to fs.sock and to the TLS
 * endpoint, which must refuse it the same way. A client that does not trust
 * the CA fails the handshake; a plain TCP client gets no frame.
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import { checkLayout, socketPath } from "../../src/runtime/config.ts";
import { generateSigningKey } from "../../src/token/keys.ts";
import { signV4Public } from "../../src/token/paseto.ts";
import type { Response } from "../../src/wire/envelope.ts";
import {
  decodeFrames,
  freePort,
  issue,
  makeTestTls,
  oursAndTheirsTls,
  rawExchange,
  rawFrame,
  startNode,
  tempLayout,
} from "../helpers.ts";
import {
  claimsOf,
  expectError,
  expectOk,
  footerKid,
  fsClaims,
  joinToken,
  splitToken,
  svcStatus,
} from "./support.ts";

/** One way to reach fs: its endpoint for the client, and a raw connection opener. */
interface Transport {
  name: string;
  endpoint: string;
  connect(): Promise<Deno.Conn>;
}

Deno.test("fs over TLS on loopback refuses the same attacks as fs.sock", async (t) => {
  const temp = await tempLayout();
  const tlsDir = `${temp.root}/tls`;
  await Deno.mkdir(tlsDir);
  const tls = await makeTestTls(tlsDir);
  const port = freePort();
  const tcp = `tcp://127.0.0.1:${port}`;
  temp.layout = checkLayout({
    ...temp.layout,
    listen: { fs: tcp },
    tls: { cert: tls.cert, key: tls.key, ca: tls.ca },
  });
  const caPem = await Deno.readTextFile(tls.ca);
  const node = await startNode({ temp });
  try {
    const root = node.exportRoot;
    await Deno.mkdir(`${root}/data`);
    await Deno.writeTextFile(`${root}/data/a.txt`, "a");
    await Deno.writeTextFile(`${root}/secret.txt`, "s");
    const good = await issue(node, {
      service: "fs",
      rights: ["fs.list", "fs.open", "fs.read"],
      path_prefix: `${root}/data`,
    });
    const sock = socketPath(node.layout, "fs");
    const transports: Transport[] = [
      {
        name: "unix",
        endpoint: `unix://${sock}`,
        connect: () => Deno.connect({ transport: "unix", path: sock }),
      },
      {
        name: "tls",
        endpoint: tcp,
        connect: () => Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [caPem] }),
      },
    ];
    /** One request on a connection of its own (fs cuts off connections that mostly fail). */
    const call = async (
      tr: Transport,
      method: string,
      params: Record<string, unknown>,
      token?: string,
    ): Promise<Response> => {
      const c = await Client.connect(tr.endpoint, { caFile: tls.ca });
      try {
        return await c.request(method, params, { token });
      } finally {
        await c.close();
      }
    };
    /** The same request over both transports: the refusals must be identical. */
    const both = async (method: string, params: Record<string, unknown>, token?: string) => {
      const [unix, over] = [
        await call(transports[0], method, params, token),
        await call(transports[1], method, params, token),
      ];
      const shape = (r: Response) =>
        r.ok ? { ok: true } : { name: r.error.name, reason: r.error.details?.reason };
      assert.deepEqual(shape(over), shape(unix), `tls answered ${JSON.stringify(over)}`);
      return over;
    };
    const list = { path: `${root}/data` };

    await t.step("fs runs with --allow-net exactly its socket and 127.0.0.1:PORT", async () => {
      const pid = (await svcStatus(node, "fs")).pid!;
      const out = new Deno.Command("ps", { args: ["-o", "args=", "-p", String(pid)] })
        .outputSync();
      const args = new TextDecoder().decode(out.stdout);
      assert.match(args, new RegExp(`--allow-net=unix:${sock},127\\.0\\.0\\.1:${port}( |$)`));
      assert.match(args, new RegExp(`--fs-listen=tcp://127\\.0\\.0\\.1:${port}`));
    });

    await t.step("baseline: the genuine token lists the folder over both", async () => {
      const r = expectOk<{ entries: { name: string }[] }>(await both("fs.list", list, good.token));
      assert.deepEqual(r.entries.map((e) => e.name), ["a.txt"]);
    });

    await t.step("no token: UNAUTHENTICATED no_token", async () => {
      expectError(await both("fs.list", list), "UNAUTHENTICATED", /needs a capability/, "no_token");
    });

    await t.step("forged and tampered tokens: UNAUTHENTICATED", async () => {
      const p = splitToken(good.token);
      const sig = p.signature.slice();
      sig[7] ^= 0x01;
      expectError(
        await both("fs.list", list, joinToken({ ...p, signature: sig })),
        "UNAUTHENTICATED",
        /signature is not valid/,
        "bad_signature",
      );
      const wider = { ...claimsOf(good.token), constraints: { path_prefix: "/" } };
      const message = new TextEncoder().encode(JSON.stringify(wider));
      expectError(
        await both("fs.list", { path: root }, joinToken({ ...p, message })),
        "UNAUTHENTICATED",
        /signature is not valid/,
        "bad_signature",
      );
      const foreign = await generateSigningKey();
      const lying = await signV4Public(
        { ...foreign, kid: footerKid(good.token) },
        fsClaims(node, { constraints: { path_prefix: root } }),
      );
      expectError(
        await both("fs.list", { path: root }, lying),
        "UNAUTHENTICATED",
        /signature is not valid/,
        "bad_signature",
      );
    });

    await t.step(
      "a path outside the token's prefix: PERMISSION_DENIED outside_prefix",
      async () => {
        for (const path of [root, `${root}/secret.txt`, `${root}/data/../secret.txt`, "/etc"]) {
          expectError(
            await both("fs.list", { path }, good.token),
            "PERMISSION_DENIED",
            /outside the token's path_prefix/,
            "outside_prefix",
          );
        }
        expectError(
          await both("fs.open", { path: `${root}/secret.txt` }, good.token),
          "PERMISSION_DENIED",
          /outside the token's path_prefix/,
          "outside_prefix",
        );
      },
    );

    await t.step('an oversize frame: INVALID_ARGUMENT, req_id "", connection closed', async () => {
      for (const tr of transports) {
        const r = await rawExchange("", rawFrame("{}", 0x7fffffff), {
          quietMs: 2000,
          connect: tr.connect,
        });
        const frames = decodeFrames(r.data) as Response[];
        assert.equal(frames.length, 1, tr.name);
        expectError(frames[0], "INVALID_ARGUMENT", /^frame: announced 2147483647 bytes/);
        assert.equal(frames[0].req_id, "", tr.name);
        assert.equal(r.closed, true, `${tr.name}: the connection stayed open`);
      }
    });

    await t.step(
      "garbage frames: each answered INVALID_ARGUMENT, the connection usable",
      async () => {
        const garbage = [
          "not json",
          "[]",
          '{"v":2,"req_id":"g","method":"fs.list"}',
          "\u0000\u00ff",
        ];
        const health = '{"v":1,"req_id":"h","method":"fs.health"}';
        for (const tr of transports) {
          const bytes = [...garbage, health].map((g) => rawFrame(g));
          const all = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
          let off = 0;
          for (const b of bytes) {
            all.set(b, off);
            off += b.length;
          }
          const r = await rawExchange("", all, { quietMs: 500, connect: tr.connect });
          const frames = decodeFrames(r.data) as Response[];
          assert.equal(frames.length, garbage.length + 1, `${tr.name}: ${frames.length} answers`);
          for (const f of frames.slice(0, garbage.length)) expectError(f, "INVALID_ARGUMENT");
          const last = frames[garbage.length];
          assert.equal(last.req_id, "h", tr.name);
          expectOk(last);
        }
      },
    );

    await t.step("a client that does not trust the CA fails the TLS handshake", async () => {
      await assert.rejects(
        Client.connect(tcp, { caFile: tls.otherCa }),
        (e: Error) => /TLS handshake failed/.test(e.message) && e.name !== "AssertionError",
      );
      // Deno's default roots do not include the test CA either.
      await assert.rejects(async () => {
        const c = await Deno.connectTls({ hostname: "127.0.0.1", port });
        try {
          await c.handshake();
        } finally {
          c.close();
        }
      });
    });

    await t.step("a plain TCP client sending a request gets no frame", async () => {
      const health = rawFrame('{"v":1,"req_id":"p","method":"fs.health"}');
      const r = await rawExchange("", health, {
        quietMs: 2000,
        connect: () => Deno.connect({ hostname: "127.0.0.1", port }),
      });
      // The server reads the bytes as a TLS ClientHello, fails, and hangs up:
      // at most a TLS alert comes back, never a Strata frame.
      const text = new TextDecoder().decode(r.data);
      assert(!text.includes('"req_id"'), `plain TCP was answered: ${JSON.stringify(text)}`);
      assert.equal(r.closed, true, "the server kept the plain TCP connection open");
    });

    await t.step(
      "afterwards fs is Healthy, never restarted, and still serves over TLS",
      async () => {
        const s = await svcStatus(node, "fs");
        assert.equal(s.state, "Healthy");
        assert.equal(s.restarts, 0);
        expectOk(await call(transports[1], "fs.list", list, good.token));
      },
    );
  } finally {
    await node.stop();
    await temp.cleanup();
  }
});

Deno.test("a client trusts its --tls-ca alone: an impostor certified by a root the process trusts gets no token", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-impostor-" });
  const { ours, theirs } = await oursAndTheirsTls(dir);
  // The impostor: a certificate for 127.0.0.1 from a CA the client's process trusts as a
  // root (DENO_CERT, as a public CA is by default). It keeps every byte it is sent.
  const impostor = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(theirs.cert),
    key: await Deno.readTextFile(theirs.key),
  });
  const port = (impostor.addr as Deno.NetAddr).port;
  const received: Uint8Array[] = [];
  const accepting = (async () => {
    for await (const conn of impostor) {
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        try {
          for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
            received.push(buf.slice(0, n));
          }
        } catch { /* the client gave up */ }
        try {
          conn.close();
        } catch { /* closed */ }
      })();
    }
  })();
  const script = `${dir}/client.ts`;
  await Deno.writeTextFile(
    script,
    `import { Client } from ${
      JSON.stringify(new URL("../../src/server/client.ts", import.meta.url).href)
    };
for (const mine of [{}, { certFile: ${JSON.stringify(ours.clientCert)}, keyFile: ${
      JSON.stringify(ours.clientKey)
    } }]) {
  try {
    const c = await Client.connect("tcp://127.0.0.1:${port}", { caFile: ${
      JSON.stringify(ours.ca)
    }, ...mine, timeoutMs: 2000 });
    try {
      const r = await c.request("fs.list", { path: "/" }, {
        token: "v4.public.SECRET-TOKEN",
        timeoutMs: 1000,
      });
      console.log("answered: " + JSON.stringify(r));
    } finally {
      await c.close();
    }
  } catch (err) {
    console.log("refused: " + (err as Error).message + " " + JSON.stringify((err as { details?: unknown }).details));
  }
}
Deno.exit(0);
`,
  );
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-prompt", "--allow-read", "--allow-net", script],
      env: { DENO_CERT: theirs.ca, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const bound = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const out = await child.output().finally(() => clearTimeout(bound));
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    const lines = text.trim().split("\n");
    assert.equal(lines.length, 2, text);
    for (const line of lines) {
      assert.match(line, /^refused: .*TLS handshake failed.*"reason":"tls_failed"/, text);
    }
    // Given time to arrive, no byte of a frame (nor the token) reached the impostor.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(received.reduce((n, b) => n + b.length, 0), 0);
  } finally {
    impostor.close();
    await accepting.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
