/**
 * TLS to etcd (docs/cluster.md): an etcd started with `--cert-file`,
 * `--key-file`, `--trusted-ca-file` and `--client-cert-auth` (certificates
 * made with openssl in a temp dir). The etcd client of the layout reaches it
 * with the CA and a client certificate, and is refused without the
 * certificate, with another CA, or under a name etcd's certificate does not
 * carry; a node whose every program talks to etcd over https:// with its
 * exact grants publishes its registry entries and commits a revocation there.
 */

import assert from "node:assert/strict";
import { checkLayout, type Layout } from "../../src/runtime/config.ts";
import { permissionFlags } from "../../src/runtime/permissions.ts";
import { etcdHttp } from "../../src/sources/cluster.ts";
import { generateSigningKey, publicPaserk } from "../../src/token/keys.ts";
import { issue, makeTestTls, startNode, tempLayout, waitFor } from "../helpers.ts";
import { startEtcd } from "../etcd.ts";

/** One put and get through the layout's etcd client; the error message when it fails. */
async function tryEtcd(layout: Layout): Promise<string> {
  const client = etcdHttp(layout);
  const deadline = new Date(Date.now() + 5000);
  try {
    await client.put("/strata-tls-probe", "x", { deadline });
    return await client.get("/strata-tls-probe", { deadline }) ?? "(none)";
  } catch (err) {
    return `refused: ${(err as Error).message}`;
  } finally {
    client.close();
  }
}

Deno.test("cluster over https:// etcd: CA and client certificate from the layout, exact grants", async (t) => {
  const temp = await tempLayout();
  const dir = `${temp.root}/tls`;
  // Nothing left in /tmp when etcd cannot start (not installed).
  const { tls, etcd } = await (async () => {
    await Deno.mkdir(dir);
    // etcd's certificate names 127.0.0.1 and etcd.test (the name the client checks).
    const tls = await makeTestTls(dir, { dnsName: "etcd.test", serverAlsoClient: true });
    return { tls, etcd: await startEtcd(1, { tls }) };
  })().catch(async (err) => {
    await temp.cleanup();
    throw err;
  });
  try {
    const root = await generateSigningKey();
    await Deno.writeTextFile(`${dir}/root.pub`, publicPaserk(root.publicKey) + "\n");
    const cluster = {
      name: "tls",
      etcd: etcd.endpoints,
      root: `${dir}/root.pub`,
      etcdCa: tls.ca,
      etcdCert: tls.clientCert,
      etcdKey: tls.clientKey,
      etcdServerName: "etcd.test",
    };
    temp.layout = checkLayout({ ...temp.layout, nodeId: "a", cluster });
    assert.match(etcd.endpoints[0], /^https:\/\/127\.0\.0\.1:\d+$/);

    await t.step("the layout's client reaches etcd over TLS", async () => {
      assert.equal(await tryEtcd(temp.layout), "x");
    });

    await t.step("an address, without a server name: checked against the address", async () => {
      const { etcdServerName: _, ...byAddress } = cluster;
      assert.equal(await tryEtcd({ ...temp.layout, cluster: byAddress }), "x");
    });

    await t.step("without the client certificate, etcd refuses", async () => {
      const { etcdCert: _, etcdKey: __, ...bare } = cluster;
      // etcd's alert, or a broken pipe when it hangs up before the client has written.
      assert.match(
        await tryEtcd({ ...temp.layout, cluster: bare }),
        /^refused: .*(BadCertificate|CertificateRequired|EPIPE)/s,
      );
    });

    await t.step("trusting another CA, the client refuses etcd", async () => {
      const other = { ...cluster, etcdCa: tls.otherCa };
      assert.match(
        await tryEtcd({ ...temp.layout, cluster: other }),
        /^refused: .*unable to verify/s,
      );
    });

    await t.step("under a name etcd's certificate does not carry, the client refuses", async () => {
      const wrong = { ...cluster, etcdServerName: "elsewhere.test" };
      assert.match(await tryEtcd({ ...temp.layout, cluster: wrong }), /^refused: .*altnames/s);
    });

    await t.step("plain http:// to the https:// port gets nothing", async () => {
      const plain = {
        ...temp.layout,
        cluster: { ...cluster, etcd: etcd.endpoints.map((e) => e.replace("https", "http")) },
      };
      const { etcdCa: _, etcdCert: __, etcdKey: ___, etcdServerName: ____, ...c } = plain.cluster;
      assert.match(await tryEtcd({ ...plain, cluster: c }), /^refused: /);
    });

    await t.step("every program reads exactly etcd's TLS files", () => {
      for (const p of ["supervisor", "registry", "identity", "fs", "ctl"] as const) {
        const flags = permissionFlags(p, temp.layout).join(" ");
        for (const f of [tls.ca, tls.clientCert, tls.clientKey]) {
          assert.match(flags, new RegExp(`--allow-read=[^ ]*${f}(,| |$)`), `${p}: ${f}`);
        }
        const port = new URL(etcd.endpoints[0]).port;
        assert.match(flags, new RegExp(`--allow-net=[^ ]*127\\.0\\.0\\.1:${port}`), p);
      }
    });

    await t.step("a node on https:// etcd publishes its services and its revocations", async () => {
      const node = await startNode({ temp });
      const client = etcdHttp(temp.layout);
      try {
        await waitFor("a's registry entries in etcd", async () => {
          return (await client.range("/strata/tls/registry/a/")).kvs.length > 0;
        }, 10_000);
        const tok = await issue(node, { service: "fs", rights: ["fs.list"] });
        const r = await node.request(
          "identity",
          "identity.revoke",
          { cap_id: tok.cap_id },
          node.operatorToken(),
        );
        assert.ok(r.ok, `revoke over https:// etcd: ${JSON.stringify(r)}`);
        const entries = await client.strings("/strata/tls/revocations/a/");
        assert.ok(
          [...entries.values()].some((v) => v.length > 0),
          "no revocation entry in etcd",
        );
      } finally {
        client.close();
        await node.stop();
      }
    });
  } finally {
    await etcd.stop();
    await temp.cleanup();
  }
});

Deno.test("https:// etcd whose certificate is for servers only: the refusal says what to change", async () => {
  const temp = await tempLayout();
  const dir = `${temp.root}/tls`;
  const { tls, etcd } = await (async () => {
    await Deno.mkdir(dir);
    // extendedKeyUsage=serverAuth alone: etcd's gateway cannot present it to etcd itself.
    const tls = await makeTestTls(dir);
    return { tls, etcd: await startEtcd(1, { tls }) };
  })().catch(async (err) => {
    await temp.cleanup();
    throw err;
  });
  try {
    const layout = checkLayout({
      ...temp.layout,
      nodeId: "a",
      cluster: {
        name: "tls",
        etcd: etcd.endpoints,
        root: `${dir}/root.pub`,
        etcdCa: tls.ca,
        etcdCert: tls.clientCert,
        etcdKey: tls.clientKey,
      },
    });
    assert.match(await tryEtcd(layout), /^refused: .*extendedKeyUsage clientAuth/s);
  } finally {
    await etcd.stop();
    await temp.cleanup();
  }
});
