/**
 * Unit tests for src/server/transport.ts: one server on a Unix socket and a
 * tcp:// TLS endpoint at once (a CA and certificate made for the test),
 * dialled with the real client, a client trusting another CA, and plain TCP.
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import { type Method, Server } from "../../src/server/server.ts";
import { dial, listen } from "../../src/server/transport.ts";
import { encodeFrame } from "../../src/wire/frame.ts";
import { freePort, makeTestTls } from "../helpers.ts";
import { rejectsStrata, withTempDir } from "./support.ts";

const ECHO: Method = {
  name: "t.echo",
  access: "public",
  params: { text: { type: "string", maxLength: 100 } },
  handler: (p: { text: string }) => ({ text: p.text }),
};

Deno.test("transport: one server answers on its Unix socket and over TLS; the socket stays 0600", async () => {
  await withTempDir(async (dir) => {
    // given a server on a socket and on a tcp:// endpoint with a test certificate
    const tls = await makeTestTls(dir);
    const tcp = `tcp://127.0.0.1:${freePort()}`;
    const server = await Server.listen({
      service: "t",
      path: `${dir}/t.sock`,
      endpoints: [tcp],
      tls: { certFile: tls.cert, keyFile: tls.key },
      methods: [ECHO],
    });
    try {
      assert.deepEqual(server.endpoints, [`unix://${dir}/t.sock`, tcp]);
      assert.equal(server.path, `${dir}/t.sock`);
      assert.equal(Deno.statSync(server.path).mode! & 0o777, 0o600);
      // then both answer the same methods
      for (const [target, caFile] of [[server.path, undefined], [tcp, tls.ca]] as const) {
        const c = await Client.connect(target, { caFile });
        try {
          assert.deepEqual(await c.call("t.echo", { text: "hi" }), { text: "hi" });
          assert.equal((await c.call("t.health")).status, "ok");
        } finally {
          await c.close();
        }
      }
    } finally {
      await server.drain(1000);
    }
    // and the socket file is gone after the drain
    assert.throws(() => Deno.statSync(`${dir}/t.sock`), Deno.errors.NotFound);
  });
});

Deno.test("transport: a client that does not trust the server's CA fails the handshake (UNAVAILABLE)", async () => {
  await withTempDir(async (dir) => {
    const tls = await makeTestTls(dir);
    const tcp = `tcp://127.0.0.1:${freePort()}`;
    const server = await Server.listen({
      service: "t",
      endpoints: [tcp],
      tls: { certFile: tls.cert, keyFile: tls.key },
      methods: [ECHO],
    });
    try {
      await rejectsStrata(
        Client.connect(tcp, { caFile: tls.otherCa }),
        "UNAVAILABLE",
        /cannot connect to tcp:\/\/127\.0\.0\.1:\d+: TLS handshake failed/,
      );
      // a dialer with no CA file is told which option to give
      await rejectsStrata(dial(tcp), "INVALID_ARGUMENT", /tls-ca: .* needs a PEM file/);
      // and the server still serves a client that trusts its CA
      const c = await Client.connect(tcp, { caFile: tls.ca });
      assert.deepEqual(await c.call("t.echo", { text: "ok" }), { text: "ok" });
      await c.close();
    } finally {
      await server.drain(1000);
    }
  });
});

Deno.test("transport: a plain TCP client sending frames gets no frame back", async () => {
  await withTempDir(async (dir) => {
    const tls = await makeTestTls(dir);
    const port = freePort();
    const server = await Server.listen({
      service: "t",
      endpoints: [`tcp://127.0.0.1:${port}`],
      tls: { certFile: tls.cert, keyFile: tls.key },
      methods: [ECHO],
    });
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(encodeFrame({ v: 1, req_id: "1", method: "t.health" })).catch(() => {});
      const buf = new Uint8Array(4096);
      let got = 0;
      // The server fails the TLS handshake and closes: read ends (null or reset) within 2 s.
      const deadline = Date.now() + 2000;
      while (Date.now() < deadline) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        got += n;
      }
      try {
        conn.close();
      } catch { /* closed */ }
      // Whatever a TLS stack answers (an alert, at most a few bytes) is no Strata frame:
      // a frame would be a 4-byte length and a JSON envelope starting with "{".
      const text = new TextDecoder().decode(buf.subarray(0, Math.min(got, buf.length)));
      assert(!text.includes('"ok"'), `plain TCP got a response: ${JSON.stringify(text)}`);
      assert(Date.now() < deadline, "the server kept the plain connection open");
    } finally {
      await server.drain(1000);
    }
  });
});

Deno.test("transport: a tcp:// endpoint without its certificate or key files is INVALID_ARGUMENT", async () => {
  await withTempDir(async (dir) => {
    const tcp = `tcp://127.0.0.1:${freePort()}`;
    await rejectsStrata(listen(tcp), "INVALID_ARGUMENT", /tls-cert: .* needs a PEM file/);
    await rejectsStrata(
      listen(tcp, { certFile: `${dir}/none.pem`, keyFile: `${dir}/none.key` }),
      "INVALID_ARGUMENT",
      /tls-cert: cannot read .*none\.pem/,
    );
    // and a server whose second endpoint fails releases the first (its socket is gone)
    await rejectsStrata(
      Server.listen({ service: "t", path: `${dir}/t.sock`, endpoints: [tcp], methods: [ECHO] }),
      "INVALID_ARGUMENT",
    );
    assert.throws(() => Deno.statSync(`${dir}/t.sock`), Deno.errors.NotFound);
    // and so does one whose methods are refused (a protected method without a chain)
    const bad: Method = { ...ECHO, access: { right: "t.echo" } };
    await assert.rejects(
      Server.listen({ service: "t", path: `${dir}/t.sock`, methods: [bad] }),
      /protected methods need the server's request chain/,
    );
    assert.throws(() => Deno.statSync(`${dir}/t.sock`), Deno.errors.NotFound);
  });
});
