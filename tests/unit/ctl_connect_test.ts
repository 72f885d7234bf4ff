/**
 * Unit tests for src/ctl/connect.ts's endpoint resolution: strata-ctl dials
 * whatever endpoint the registry resolves a service to, a tcp:// one over
 * TLS with the layout's CA (in-process servers in a temp dir, a CA and
 * certificate made for the test).
 */

import assert from "node:assert/strict";
import { connectTo, endpointFor, requestOnce, tlsOf } from "../../src/ctl/connect.ts";
import { type Layout, socketPath } from "../../src/runtime/config.ts";
import { Server } from "../../src/server/server.ts";
import { freePort, makeTestTls } from "../helpers.ts";
import { rejectsStrata, withTempDir } from "./support.ts";

/** A registry stand-in on the layout's registry socket that resolves `echo` to `endpoint`. */
function fakeRegistry(layout: Layout, endpoint: string): Promise<Server> {
  return Server.listen({
    service: "registry",
    path: socketPath(layout, "registry"),
    methods: [{
      name: "registry.resolve",
      access: "public",
      params: { service: { type: "string" } },
      handler: (p: { service: string }) => ({ service: p.service, endpoint, api_v: 1 }),
    }],
  });
}

Deno.test("ctl: a service the registry resolves to tcp:// is dialled over TLS with --tls-ca", async () => {
  await withTempDir(async (dir) => {
    const tls = await makeTestTls(dir);
    const tcp = `tcp://127.0.0.1:${freePort()}`;
    const layout: Layout = {
      runtimeDir: dir,
      stateDir: dir,
      nodeId: "n",
      fsRoots: [],
      tls: { ca: tls.ca },
    };
    const echo = await Server.listen({
      service: "echo",
      endpoints: [tcp],
      tls: { certFile: tls.cert, keyFile: tls.key },
      methods: [],
    });
    const registry = await fakeRegistry(layout, tcp);
    try {
      // the registry's answer is used as is
      assert.equal(await endpointFor(layout, "echo"), tcp);
      // and the raw form reaches the service over TLS
      const r = await requestOnce(layout, "echo.health", undefined, {});
      assert.equal(r.ok && (r.result as { service: string }).service, "echo");
      // without a CA it says which option to give; with another CA the handshake fails
      await rejectsStrata(
        connectTo({ ...layout, tls: {} }, "echo"),
        "INVALID_ARGUMENT",
        /tls-ca: .* needs a PEM file/,
      );
      await rejectsStrata(
        connectTo({ ...layout, tls: { ca: tls.otherCa } }, "echo"),
        "UNAVAILABLE",
        /TLS handshake failed/,
      );
      // a known service the registry has no word on keeps its socket by convention
      assert.equal(
        await endpointFor(layout, "supervisor"),
        `unix://${socketPath(layout, "supervisor")}`,
      );
    } finally {
      await registry.drain(500);
      await echo.drain(500);
    }
  });
});

Deno.test("ctl: in cluster mode with peers, tcp:// dials present the node's certificate (mutual TLS), as the grants allow", () => {
  const base: Layout = {
    runtimeDir: "/run/s",
    stateDir: "/var/lib/s",
    nodeId: "a",
    fsRoots: [],
    tls: { cert: "/etc/strata/a.pem", key: "/etc/strata/a.key", ca: "/etc/strata/tls-ca.pem" },
  };
  const cluster = { name: "prod", etcd: ["http://127.0.0.1:2379"], root: "/r.pub", ca: "/ca.pem" };
  // Single node: the layout's CA, no certificate.
  assert.deepEqual(tlsOf(base), { caFile: "/etc/strata/tls-ca.pem" });
  // Cluster mode without peers: the cluster CA, no certificate (its grants refuse it the key).
  assert.deepEqual(tlsOf({ ...base, cluster }), { caFile: "/ca.pem" });
  // With peers: the node's certificate and key too.
  assert.deepEqual(tlsOf({ ...base, cluster: { ...cluster, peers: ["10.0.0.2:7402"] } }), {
    caFile: "/ca.pem",
    certFile: "/etc/strata/a.pem",
    keyFile: "/etc/strata/a.key",
  });
});
