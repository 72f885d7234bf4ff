/**
 * Cluster mode's configuration (src/runtime/config.ts) and the grants it
 * derives (src/runtime/permissions.ts): options and STRATA_* variables give
 * the same layout, bad values name the option, and only the etcd clients get
 * etcd's exact host:port, grpc-js's variables and the root key.
 */

import assert from "node:assert/strict";
import {
  audienceOf,
  checkLayout,
  clusterFromEnv,
  ConfigError,
  type Layout,
  layoutArgs,
} from "../../src/runtime/config.ts";
import { parseLayoutArgs } from "../../src/runtime/layout_args.ts";
import { OPENSSL, permissionFlags, permissionSet } from "../../src/runtime/permissions.ts";

const BASE: Layout = {
  runtimeDir: "/run/s",
  stateDir: "/var/lib/s",
  nodeId: "a",
  fsRoots: ["/srv"],
};

const CLUSTER: Layout = {
  ...BASE,
  cluster: {
    name: "prod",
    etcd: ["http://127.0.0.1:2379", "http://10.0.0.2:2379"],
    root: "/etc/strata/root.pub",
    ca: "/etc/strata/ca.pem",
    partitionBoundMs: 1500,
  },
};

Deno.test("cluster config: options and variables give the same layout, and round-trip", () => {
  const fromArgs = parseLayoutArgs(layoutArgs(CLUSTER)).layout;
  assert.deepEqual(fromArgs, CLUSTER);
  const env: Record<string, string> = {
    STRATA_CLUSTER: "prod",
    STRATA_ETCD_ENDPOINTS: "http://127.0.0.1:2379,http://10.0.0.2:2379",
    STRATA_CLUSTER_ROOT: "/etc/strata/root.pub",
    STRATA_CLUSTER_CA: "/etc/strata/ca.pem",
    // Set by units written before 2026-12-04: accepted and ignored, as --etcd-proto is.
    STRATA_ETCD_PROTO: "/deno/npm/registry.npmjs.org/etcd3/1.1.2/proto",
    STRATA_PARTITION_BOUND_MS: "1500",
  };
  assert.deepEqual(checkLayout({ ...BASE, ...clusterFromEnv((n) => env[n]) }), CLUSTER);
  const old = [...layoutArgs(CLUSTER), "--etcd-proto=/nonexistent/proto"];
  assert.deepEqual(parseLayoutArgs(old).layout, CLUSTER);
  assert.equal(audienceOf(CLUSTER), "prod");
});

Deno.test("cluster config: single-node mode is untouched when nothing is set", () => {
  assert.deepEqual(clusterFromEnv(() => undefined), {});
  const { layout } = parseLayoutArgs(layoutArgs(BASE));
  assert.equal(layout.cluster, undefined);
  assert.equal(audienceOf(layout), "strata");
  assert.ok(!layoutArgs(layout).some((a) => a.startsWith("--cluster")));
});

Deno.test("cluster config: bad values are refused naming the option", () => {
  const bad = (c: Partial<NonNullable<Layout["cluster"]>>, re: RegExp) =>
    assert.throws(
      () => checkLayout({ ...BASE, cluster: { name: "", etcd: [], root: "", ...c } }),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
    );
  bad(
    { etcd: ["http://h:1"], root: "/r" },
    /--cluster: cluster settings are given .* but no cluster name/,
  );
  bad({ name: "a/b", etcd: ["http://h:1"], root: "/r" }, /--cluster/);
  bad({ name: "p", root: "/r" }, /--etcd-endpoints: cluster mode needs/);
  bad(
    { name: "p", etcd: ["https://h:1"], root: "/r" },
    /--etcd-ca: https:\/\/ etcd endpoints need/,
  );
  bad({ name: "p", etcd: ["ftp://h:1"], root: "/r" }, /--etcd-endpoints: ftp:\/\/h:1/);
  bad({ name: "p", etcd: ["http://h:99999"], root: "/r" }, /--etcd-endpoints/);
  bad({ name: "p", etcd: ["http://h:1"] }, /--cluster-root: cluster mode needs/);
  for (const partitionBoundMs of [NaN, 50, 1.5]) {
    bad({ name: "p", etcd: ["http://h:1"], root: "/r", partitionBoundMs }, /--partition-bound-ms/);
  }
  bad(
    { name: "p", etcd: ["http://h:1"], root: "rel.pub" },
    /--cluster-root must be an absolute path/,
  );
});

Deno.test("cluster grants: etcd host:port exactly, the root key, no variables or proto folder", () => {
  for (const p of ["supervisor", "registry", "identity", "fs", "ctl"] as const) {
    const flags = permissionFlags(p, CLUSTER).join(" ");
    assert.match(flags, /--allow-net=[^ ]*127\.0\.0\.1:2379,10\.0\.0\.2:2379/, p);
    const set = permissionSet(p, CLUSTER);
    assert.ok(set.read.includes("/etc/strata/root.pub"), p);
    // The etcd client is fetch: no grpc-js reading variables, no proto files to parse.
    assert.ok(!set.env.some((v) => v.startsWith("GRPC") || v.endsWith("_proxy")), p);
    assert.ok(!set.read.some((r) => r.includes("proto")), p);
    assert.deepEqual(set.env, permissionSet(p, { ...CLUSTER, cluster: undefined }).env, p);
  }
  // Without a cluster section the flags are exactly the single-node ones.
  for (const p of ["supervisor", "registry", "identity", "fs", "ctl"] as const) {
    assert.deepEqual(
      permissionFlags(p, { ...CLUSTER, cluster: undefined }),
      permissionFlags(p, BASE),
    );
  }
});

Deno.test("cluster grants: only `strata-ctl cluster` gets its folder and openssl", () => {
  const plain = permissionSet("ctl", CLUSTER);
  assert.deepEqual(plain.run, []);
  const admin = permissionSet("ctl", CLUSTER, { clusterDir: "/home/op/root" });
  assert.deepEqual(admin.run, [OPENSSL]);
  assert.ok(admin.read.includes("/home/op/root") && admin.write.includes("/home/op/root"));
  // The node's signing keys stay out of reach whatever the folder.
  assert.ok(admin.denyRead.includes(`${CLUSTER.stateDir}/keys.json`));
});

Deno.test("cluster grants: strata-ctl dials exactly the --cluster-peers, and reads the cluster CA", () => {
  const layout = {
    ...CLUSTER,
    cluster: { ...CLUSTER.cluster!, ca: "/etc/strata/ca.pem", peers: ["10.0.0.7:7402"] },
  };
  const ctl = permissionFlags("ctl", layout).join(" ");
  assert.match(ctl, /--allow-net=[^ ]*10\.0\.0\.7:7402/);
  assert.ok(permissionSet("ctl", layout).read.includes("/etc/strata/ca.pem"));
  // No service is granted the peers: only strata-ctl dials other nodes.
  for (const p of ["supervisor", "registry", "identity", "fs"] as const) {
    assert.doesNotMatch(permissionFlags(p, layout).join(" "), /10\.0\.0\.7/, p);
  }
  // A peer that is not host:port is refused with the option's name.
  assert.throws(
    () => checkLayout({ ...layout, cluster: { ...layout.cluster, peers: ["http://x:1"] } }),
    /--cluster-peers: http:\/\/x:1 is not host:port/,
  );
});

Deno.test("mutual TLS grants: a tcp:// listener reads the cluster CA; strata-ctl with peers reads the node's key", () => {
  const tls = { cert: "/etc/strata/node.pem", key: "/etc/strata/node.key" };
  const layout = checkLayout({
    ...CLUSTER,
    listen: { fs: "tcp://10.0.0.1:7402" },
    tls,
    cluster: { ...CLUSTER.cluster!, peers: ["10.0.0.7:7402"] },
  });
  const fs = permissionSet("fs", layout);
  assert.ok(fs.read.includes("/etc/strata/ca.pem") && fs.read.includes(tls.key));
  // The other services neither listen on tcp:// nor dial it: the key stays out of reach.
  for (const p of ["supervisor", "registry", "identity"] as const) {
    assert.ok(!permissionSet(p, layout).read.includes(tls.key), p);
  }
  // strata-ctl --node presents the node's certificate: it reads both files.
  const ctl = permissionSet("ctl", layout);
  assert.ok(ctl.read.includes(tls.cert) && ctl.read.includes(tls.key));
  assert.ok(!ctl.denyRead.includes(tls.key));
  // Without peers it dials no other node, and the key stays refused.
  const alone = permissionSet("ctl", { ...layout, cluster: { ...layout.cluster!, peers: [] } });
  assert.ok(!alone.read.includes(tls.key) && alone.denyRead.includes(tls.key));
  // Single node: tcp:// stays one-way TLS, strata-ctl never reads the key.
  const single = permissionSet("ctl", { ...layout, cluster: undefined });
  assert.ok(single.denyRead.includes(tls.key));
});

Deno.test("mutual TLS config: a cluster node listening on tcp:// needs the cluster CA", () => {
  assert.throws(
    () =>
      checkLayout({
        ...CLUSTER,
        listen: { fs: "tcp://10.0.0.1:7402" },
        tls: { cert: "/etc/strata/node.pem", key: "/etc/strata/node.key" },
        cluster: { ...CLUSTER.cluster!, ca: undefined },
      }),
    (e: unknown) => e instanceof ConfigError && /--cluster-ca: in cluster mode/.test(e.message),
  );
});

Deno.test("etcd TLS config: https:// endpoints with CA, client certificate and server name, from options and variables", () => {
  const secure: Layout = {
    ...CLUSTER,
    cluster: {
      ...CLUSTER.cluster!,
      etcd: ["https://127.0.0.1:2379", "https://10.0.0.2:2379"],
      etcdCa: "/etc/strata/etcd-ca.pem",
      etcdCert: "/etc/strata/etcd-client.pem",
      etcdKey: "/etc/strata/etcd-client.key",
      etcdServerName: "etcd.internal",
    },
  };
  assert.deepEqual(parseLayoutArgs(layoutArgs(secure)).layout, secure);
  const env: Record<string, string> = {
    STRATA_CLUSTER: "prod",
    STRATA_ETCD_ENDPOINTS: "https://127.0.0.1:2379,https://10.0.0.2:2379",
    STRATA_CLUSTER_ROOT: "/etc/strata/root.pub",
    STRATA_CLUSTER_CA: "/etc/strata/ca.pem",
    STRATA_ETCD_PROTO: "/deno/npm/registry.npmjs.org/etcd3/1.1.2/proto",
    STRATA_PARTITION_BOUND_MS: "1500",
    STRATA_ETCD_CA: "/etc/strata/etcd-ca.pem",
    STRATA_ETCD_CERT: "/etc/strata/etcd-client.pem",
    STRATA_ETCD_KEY: "/etc/strata/etcd-client.key",
    STRATA_ETCD_SERVER_NAME: "etcd.internal",
  };
  assert.deepEqual(checkLayout({ ...BASE, ...clusterFromEnv((n) => env[n]) }), secure);
  // Every etcd client reads the three files; net stays etcd's exact host:port (the server
  // name is checked against the certificate, never looked up).
  for (const p of ["supervisor", "registry", "identity", "fs", "ctl"] as const) {
    const set = permissionSet(p, secure);
    for (const f of ["etcd-ca.pem", "etcd-client.pem", "etcd-client.key"]) {
      assert.ok(set.read.includes(`/etc/strata/${f}`), `${p}: ${f}`);
    }
    const flags = permissionFlags(p, secure).join(" ");
    assert.match(flags, /--allow-net=[^ ]*10\.0\.0\.2:2379/, p);
    assert.doesNotMatch(flags, /etcd\.internal/, p);
  }
  // An address needs no server name either: the certificate is checked against the address.
  const byAddress = checkLayout({
    ...BASE,
    cluster: { ...CLUSTER.cluster!, etcd: ["https://10.0.0.5:2379"], etcdCa: "/ca.pem" },
  });
  assert.equal(byAddress.cluster!.etcdServerName, undefined);
  // A host name needs no server name; the CA alone (no client certificate) is enough.
  const byName = checkLayout({
    ...BASE,
    cluster: { ...CLUSTER.cluster!, etcd: ["https://etcd1.internal:2379"], etcdCa: "/ca.pem" },
  });
  assert.equal(byName.cluster!.etcdServerName, undefined);
});

Deno.test("etcd TLS config: bad combinations are refused naming the option", () => {
  const bad = (c: Partial<NonNullable<Layout["cluster"]>>, re: RegExp) =>
    assert.throws(
      () => checkLayout({ ...BASE, cluster: { ...CLUSTER.cluster!, ...c } }),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
    );
  const https = ["https://127.0.0.1:2379"];
  bad({ etcd: https }, /--etcd-ca: https:\/\/ etcd endpoints need the CA/);
  bad(
    { etcd: https, etcdCa: "/ca.pem", etcdServerName: "10.0.0.1" },
    /--etcd-server-name: give a DNS name/,
  );
  bad(
    { etcd: https, etcdCa: "/ca.pem", etcdServerName: "e", etcdCert: "/c.pem" },
    /--etcd-cert and --etcd-key: give both/,
  );
  bad(
    { etcd: [...https, "http://10.0.0.2:2379"], etcdCa: "/ca.pem" },
    /every member as https:\/\//,
  );
  bad({ etcdCa: "/ca.pem" }, /--etcd-ca: only for https:\/\/ etcd endpoints/);
  bad(
    { etcd: https, etcdCa: "rel.pem", etcdServerName: "e" },
    /--etcd-ca must be an absolute path/,
  );
  bad(
    { etcd: https, etcdCa: "/ca.pem", etcdServerName: "e", etcdCert: "/c.pem", etcdKey: "/srv/k" },
    /--etcd-key: \/srv\/k lies inside the export root \/srv/,
  );
});
