/**
 * Mutual TLS on a cluster node's tcp:// endpoint (docs/cluster.md): a node in
 * cluster mode (its own etcd, a test CA as the cluster CA) runs fs on
 * `tcp://127.0.0.1:PORT`. Real bytes to that endpoint: a client without a
 * certificate, one with a certificate another CA signed, and a plain TCP
 * client get no Strata frame (the handshake is refused); a client with a
 * certificate the cluster CA signed is served.
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import { checkLayout } from "../../src/runtime/config.ts";
import { generateSigningKey, publicPaserk } from "../../src/token/keys.ts";
import type { Response } from "../../src/wire/envelope.ts";
import {
  decodeFrames,
  freePort,
  issue,
  makeTestTls,
  rawExchange,
  rawFrame,
  startNode,
  tempLayout,
} from "../helpers.ts";
import { startEtcd } from "../etcd.ts";
import { expectError, expectOk, svcStatus } from "./support.ts";

Deno.test("a cluster node's tcp:// endpoint serves only clients with a certificate of the cluster CA", async (t) => {
  const etcd = await startEtcd(1);
  const temp = await tempLayout();
  try {
    const tlsDir = `${temp.root}/tls`;
    await Deno.mkdir(tlsDir);
    const tls = await makeTestTls(tlsDir);
    const root = await generateSigningKey();
    await Deno.writeTextFile(`${tlsDir}/root.pub`, publicPaserk(root.publicKey) + "\n");
    const port = freePort();
    const tcp = `tcp://127.0.0.1:${port}`;
    temp.layout = checkLayout({
      ...temp.layout,
      nodeId: "b",
      listen: { fs: tcp },
      tls: { cert: tls.cert, key: tls.key },
      cluster: {
        name: "mtls",
        etcd: etcd.endpoints,
        root: `${tlsDir}/root.pub`,
        ca: tls.ca,
      },
    });
    const node = await startNode({ temp });
    try {
      const ca = await Deno.readTextFile(tls.ca);
      await Deno.writeTextFile(`${node.exportRoot}/a.txt`, "a");
      const good = await issue(node, {
        service: "fs",
        rights: ["fs.list", "fs.open", "fs.read"],
        path_prefix: node.exportRoot,
      });
      const list = JSON.stringify({
        v: 1,
        req_id: "l",
        method: "fs.list",
        auth: { token: good.token },
        params: { path: node.exportRoot },
      });
      /** Sends fs.list as raw bytes over a connection `connect` opens; what comes back. */
      const send = async (connect: () => Promise<Deno.Conn>) => {
        const r = await rawExchange("", rawFrame(list), { quietMs: 2000, connect });
        return { ...r, text: new TextDecoder().decode(r.data) };
      };
      const tlsTo = (pem: { cert?: string; key?: string } = {}) => () =>
        Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [ca], ...pem });

      await t.step("fs reads the cluster CA and listens on exactly 127.0.0.1:PORT", async () => {
        const pid = (await svcStatus(node, "fs")).pid!;
        const out = new Deno.Command("ps", { args: ["-o", "args=", "-p", String(pid)] })
          .outputSync();
        const args = new TextDecoder().decode(out.stdout);
        assert.match(args, new RegExp(`--allow-net=[^ ]*127\\.0\\.0\\.1:${port}`));
        assert.match(args, new RegExp(`--allow-read=[^ ]*${tls.ca}`));
      });

      await t.step("a client with the cluster CA's certificate is served", async () => {
        const cert = await Deno.readTextFile(tls.clientCert);
        const key = await Deno.readTextFile(tls.clientKey);
        const r = await send(tlsTo({ cert, key }));
        const frames = decodeFrames(r.data) as Response[];
        assert.equal(frames.length, 1, r.text);
        const listed = expectOk<{ entries: { name: string }[] }>(frames[0]);
        assert.deepEqual(listed.entries.map((e) => e.name), ["a.txt"]);
        // And through the library's client, which presents the files.
        const c = await Client.connect(tcp, {
          caFile: tls.ca,
          certFile: tls.clientCert,
          keyFile: tls.clientKey,
        });
        try {
          expectOk(await c.request("fs.list", { path: node.exportRoot }, { token: good.token }));
        } finally {
          await c.close();
        }
      });

      await t.step(
        "over mutual TLS the same limits hold: an oversize frame is refused and the connection closed",
        async () => {
          const cert = await Deno.readTextFile(tls.clientCert);
          const key = await Deno.readTextFile(tls.clientKey);
          const r = await rawExchange("", rawFrame("{}", 0x7fffffff), {
            quietMs: 2000,
            connect: tlsTo({ cert, key }),
          });
          const frames = decodeFrames(r.data) as Response[];
          assert.equal(frames.length, 1, new TextDecoder().decode(r.data));
          expectError(frames[0], "INVALID_ARGUMENT", /^frame: announced 2147483647 bytes/);
          assert.equal(r.closed, true, "the connection stayed open");
        },
      );

      await t.step("requests followed by a half-close are all answered", async () => {
        const cert = await Deno.readTextFile(tls.clientCert);
        const key = await Deno.readTextFile(tls.clientKey);
        const one = rawFrame(list);
        const many = new Uint8Array(one.length * 50);
        for (let i = 0; i < 50; i++) many.set(one, i * one.length);
        const r = await rawExchange("", many, {
          quietMs: 2000,
          closeWrite: true,
          connect: tlsTo({ cert, key }),
        });
        const frames = decodeFrames(r.data) as Response[];
        assert.equal(frames.length, 50, `${frames.length} answers of 50`);
        for (const f of frames) expectOk(f);
      });

      await t.step(
        "a client without a certificate gets no frame: the handshake is refused",
        async () => {
          const r = await send(tlsTo());
          assert(!r.text.includes('"req_id"'), `served without a certificate: ${r.text}`);
          assert.equal(r.closed, true, "the connection stayed open");
          // The library's client says why.
          const err = await Client.connect(tcp, { caFile: tls.ca })
            .then((c) => c.call("fs.list", { path: node.exportRoot }, { token: good.token }))
            .then(() => undefined, (e: Error) => e);
          assert.ok(err, "fs.list without a client certificate was answered");
          assert.match(err.message, /CertificateRequired|refused this client's certificate/);
        },
      );

      await t.step("a client whose certificate another CA signed gets no frame", async () => {
        const cert = await Deno.readTextFile(tls.strangerCert);
        const key = await Deno.readTextFile(tls.strangerKey);
        const r = await send(tlsTo({ cert, key }));
        assert(!r.text.includes('"req_id"'), `served a stranger's certificate: ${r.text}`);
        assert.equal(r.closed, true, "the connection stayed open");
        const err = await Client.connect(tcp, {
          caFile: tls.ca,
          certFile: tls.strangerCert,
          keyFile: tls.strangerKey,
        })
          .then((c) => c.call("fs.list", { path: node.exportRoot }, { token: good.token }))
          .then(() => undefined, (e: Error) => e);
        assert.ok(err, "fs.list with a stranger's certificate was answered");
        assert.equal((err as { errorName?: string }).errorName ?? err.name, "UNAVAILABLE");
      });

      await t.step(
        "the server's own certificate, not signed for client use, is refused",
        async () => {
          // server.pem is signed by the cluster CA but only for serverAuth.
          const cert = await Deno.readTextFile(tls.cert);
          const key = await Deno.readTextFile(tls.key);
          const r = await send(tlsTo({ cert, key }));
          assert(!r.text.includes('"req_id"'), `served a serverAuth-only certificate: ${r.text}`);
        },
      );

      await t.step("a plain TCP client gets no frame", async () => {
        const r = await send(() => Deno.connect({ hostname: "127.0.0.1", port }));
        assert(!r.text.includes('"req_id"'), `plain TCP was answered: ${r.text}`);
        assert.equal(r.closed, true, "the plain TCP connection stayed open");
      });

      await t.step("afterwards fs is Healthy, never restarted", async () => {
        const s = await svcStatus(node, "fs");
        assert.equal(s.state, "Healthy");
        assert.equal(s.restarts, 0);
      });
    } finally {
      await node.stop();
    }
  } finally {
    await temp.cleanup();
    await etcd.stop();
  }
});
