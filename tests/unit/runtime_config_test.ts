/**
 * Unit tests for src/runtime/config.ts: layout parsing, validation and the
 * paths derived from it.
 */

import assert from "node:assert/strict";
import {
  checkLayout,
  ConfigError,
  DEFAULT_LAYOUT,
  endpointsOf,
  issuerOf,
  type Layout,
  layoutArgs,
  runtimeFiles,
  socketPath,
  stateFiles,
  transportFromEnv,
} from "../../src/runtime/config.ts";
import { parseLayoutArgs } from "../../src/runtime/layout_args.ts";

const LAYOUT: Layout = {
  runtimeDir: "/run/strata-test",
  stateDir: "/var/lib/strata-test",
  nodeId: "node-1.example_a",
  fsRoots: ["/srv/data", "/home/shared"],
  groupAccess: true,
};

Deno.test("layoutArgs → parseLayoutArgs: a layout survives the round trip", () => {
  // given a full layout and a minimal one
  for (
    const layout of [LAYOUT, { ...DEFAULT_LAYOUT, fsRoots: [] }, {
      ...LAYOUT,
      fsRoots: ["/x"],
      groupAccess: true,
    }]
  ) {
    // when written as arguments and parsed back
    const { layout: back } = parseLayoutArgs(layoutArgs(layout));
    // then it is the same layout
    assert.deepEqual(back, layout);
  }
});

Deno.test("layoutArgs: uses --name=value options, and omits empty roots and group access when off", () => {
  assert.deepEqual(layoutArgs(LAYOUT), [
    "--runtime-dir=/run/strata-test",
    "--state-dir=/var/lib/strata-test",
    "--node-id=node-1.example_a",
    "--fs-roots=/srv/data:/home/shared",
    "--group-access",
  ]);
  assert.deepEqual(layoutArgs({ ...DEFAULT_LAYOUT, fsRoots: [] }), [
    "--runtime-dir=/run/strata",
    "--state-dir=/var/lib/strata",
    "--node-id=local",
  ]);
});

Deno.test("parseLayoutArgs: no arguments means the default layout", () => {
  const { layout } = parseLayoutArgs([]);
  assert.deepEqual(layout, { ...DEFAULT_LAYOUT, fsRoots: [] });
});

Deno.test("parseLayoutArgs: extra options are parsed and returned", () => {
  const { layout, options } = parseLayoutArgs(
    ["--node-id", "n2", "--verbose", "--name=x"],
    { verbose: { type: "boolean" }, name: { type: "string" } },
  );
  assert.equal(layout.nodeId, "n2");
  assert.equal(options.verbose, true);
  assert.equal(options.name, "x");
});

Deno.test("parseLayoutArgs: trailing slashes and dot segments are normalised", () => {
  const { layout } = parseLayoutArgs([
    "--runtime-dir=/run/x/",
    "--state-dir=/var//lib/./s/",
    "--fs-roots=/srv/a/::/srv/b/../c",
  ]);
  assert.equal(layout.runtimeDir, "/run/x");
  assert.equal(layout.stateDir, "/var/lib/s");
  assert.deepEqual(layout.fsRoots, ["/srv/a", "/srv/c"]);
});

Deno.test("parseLayoutArgs: a relative path is a ConfigError naming what it is", () => {
  assert.throws(
    () => parseLayoutArgs(["--runtime-dir=run/strata"]),
    (e: unknown) =>
      e instanceof ConfigError &&
      /^runtime dir must be an absolute path: run\/strata$/.test(e.message),
  );
  assert.throws(() => parseLayoutArgs(["--state-dir=."]), /state dir must be an absolute path/);
  assert.throws(
    () => parseLayoutArgs(["--fs-roots=/ok:relative"]),
    /fs root must be an absolute path: relative/,
  );
});

Deno.test("parseLayoutArgs: a path with a comma is a ConfigError (Deno's flags are comma lists)", () => {
  for (const arg of ["--runtime-dir=/run/a,b", "--state-dir=/var/a,b", "--fs-roots=/srv/a,b"]) {
    assert.throws(
      () => parseLayoutArgs([arg]),
      (e: unknown) => e instanceof ConfigError && /must not contain a comma/.test(e.message),
      arg,
    );
  }
});

Deno.test("parseLayoutArgs: a bad node id is a ConfigError", () => {
  for (const id of ["", "-lead", ".dot", "has space", "a/b", "a".repeat(64), "ü"]) {
    assert.throws(
      () => parseLayoutArgs([`--node-id=${id}`]),
      (e: unknown) => e instanceof ConfigError && /node id must be/.test(e.message),
      id,
    );
  }
  assert.equal(parseLayoutArgs([`--node-id=${"a".repeat(63)}`]).layout.nodeId.length, 63);
});

Deno.test("checkLayout: cluster settings without a cluster name say the name is missing", () => {
  const cluster = { name: "", etcd: ["http://127.0.0.1:2379"], root: "/etc/strata/root.pub" };
  assert.throws(
    () => checkLayout({ ...LAYOUT, cluster }),
    (e: unknown) =>
      e instanceof ConfigError &&
      /^--cluster: cluster settings are given .* but no cluster name;/.test(e.message),
  );
  // a bad name is still named as such
  assert.throws(
    () => checkLayout({ ...LAYOUT, cluster: { ...cluster, name: "a b" } }),
    (e: unknown) => e instanceof ConfigError && /cluster name must be .*: a b$/.test(e.message),
  );
});

Deno.test("parseLayoutArgs: --group-access is a switch; without it there is no group access", () => {
  assert.equal(parseLayoutArgs(["--group-access"]).layout.groupAccess, true);
  assert.equal("groupAccess" in parseLayoutArgs([]).layout, false);
  assert.equal("groupAccess" in checkLayout({ ...LAYOUT, groupAccess: false }), false);
  // it takes no value
  assert.throws(() => parseLayoutArgs(["--group-access=yes"]));
});

Deno.test("parseLayoutArgs: unknown options and positionals are refused", () => {
  assert.throws(() => parseLayoutArgs(["--runtimedir=/x"]));
  assert.throws(() => parseLayoutArgs(["stray"]));
});

Deno.test("checkLayout: every layout it accepts survives layoutArgs/parseLayoutArgs", () => {
  // given an fs root with a colon, which layoutArgs uses to separate roots
  const layout: Layout = { ...LAYOUT, fsRoots: ["/srv/a:b"] };
  // when checked: it must either be refused, or come back unchanged from a round trip
  let checked: Layout | undefined;
  try {
    checked = checkLayout(layout);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return;
  }
  assert.deepEqual(parseLayoutArgs(layoutArgs(checked)).layout, checked);
});

Deno.test("derived paths: sockets, issuer, runtime and state files", () => {
  assert.equal(socketPath(LAYOUT, "fs"), "/run/strata-test/fs.sock");
  assert.equal(socketPath(LAYOUT, "supervisor"), "/run/strata-test/supervisor.sock");
  assert.equal(issuerOf(LAYOUT), "identity@node-1.example_a");
  const rt = runtimeFiles(LAYOUT);
  assert.equal(rt.identityPub, "/run/strata-test/identity.pub");
  assert.equal(rt.revocations, "/run/strata-test/revocations");
  const st = stateFiles(LAYOUT);
  assert.equal(st.keys, "/var/lib/strata-test/keys.json");
  assert.equal(st.revocationLog, "/var/lib/strata-test/revocations.log");
  assert.equal(st.operatorToken, "/var/lib/strata-test/operator.token");
  assert.equal(st.audit, "/var/lib/strata-test/audit.log");
  // every temporary file sits next to the file it replaces
  for (const [k, v] of Object.entries({ ...rt, ...st })) {
    if (k.endsWith("Tmp")) {
      const target = (({ ...rt, ...st }) as Record<string, string>)[k.slice(0, -3)];
      assert.equal(v, `${target}.tmp`, k);
    }
  }
});

Deno.test("layout: tcp:// listen endpoints and TLS files survive the round trip, and give endpoints", () => {
  const layout: Layout = {
    ...LAYOUT,
    listen: { fs: "tcp://127.0.0.1:7402" },
    tls: { cert: "/etc/strata/fs.pem", key: "/etc/strata/fs.key", ca: "/etc/strata/ca.pem" },
  };
  const args = layoutArgs(layout);
  for (
    const a of [
      "--fs-listen=tcp://127.0.0.1:7402",
      "--tls-cert=/etc/strata/fs.pem",
      "--tls-key=/etc/strata/fs.key",
      "--tls-ca=/etc/strata/ca.pem",
    ]
  ) assert(args.includes(a), a);
  assert.deepEqual(parseLayoutArgs(args).layout, layout);
  assert.deepEqual(endpointsOf(layout, "fs"), [
    `unix://${socketPath(layout, "fs")}`,
    "tcp://127.0.0.1:7402",
  ]);
  // a service without one has only its socket, as before
  assert.deepEqual(endpointsOf(layout, "registry"), [`unix://${socketPath(layout, "registry")}`]);
  assert.deepEqual(endpointsOf(LAYOUT, "fs"), [`unix://${socketPath(LAYOUT, "fs")}`]);
});

Deno.test("layout: a bad listen endpoint or TLS file is a ConfigError naming the option", () => {
  const tls = { cert: "/etc/s/c.pem", key: "/etc/s/k.pem" };
  const bad: [Partial<Layout>, RegExp][] = [
    [{ listen: { fs: "tcp://127.0.0.1" }, tls }, /--fs-listen: must be "tcp:\/\/host:port"/],
    [{ listen: { fs: "unix:///run/x.sock" }, tls }, /--fs-listen: must be tcp:\/\/host:port/],
    [
      { listen: { fs: "tcp://localhost:7402" }, tls },
      /--fs-listen: .* names a host; give the IPv4/,
    ],
    [{ listen: { fs: "tcp://127.0.0.1:7402" } }, /needs --tls-cert=FILE and --tls-key=FILE/],
    [{ listen: { fs: "tcp://127.0.0.1:7402" }, tls: { cert: "/c" } }, /--tls-key=FILE/],
    [{ tls: { cert: "relative.pem" } }, /--tls-cert must be an absolute path/],
    [{ tls: { ca: "/a,b.pem" } }, /--tls-ca must not contain a comma/],
    [
      { listen: { fs: "tcp://127.0.0.1:7402" }, tls: { cert: "/c", key: "/srv/data/k.pem" } },
      /--tls-key: \/srv\/data\/k\.pem lies inside the export root \/srv\/data/,
    ],
  ];
  for (const [extra, message] of bad) {
    assert.throws(
      () => checkLayout({ ...LAYOUT, ...extra }),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(extra),
    );
  }
  // a --supervisor-listen is no option: the supervisor stays on its socket
  assert.throws(() => parseLayoutArgs(["--supervisor-listen=tcp://127.0.0.1:1"]));
});

Deno.test("transportFromEnv: STRATA_<SERVICE>_LISTEN and STRATA_TLS_* give the same layout as the options", () => {
  const env: Record<string, string> = {
    STRATA_FS_LISTEN: "tcp://127.0.0.1:7402",
    STRATA_TLS_CERT: "/etc/s/c.pem",
    STRATA_TLS_KEY: "/etc/s/k.pem",
  };
  const layout = checkLayout({ ...LAYOUT, ...transportFromEnv((n) => env[n]) });
  assert.deepEqual(layout.listen, { fs: "tcp://127.0.0.1:7402" });
  assert.deepEqual(layout.tls, { cert: "/etc/s/c.pem", key: "/etc/s/k.pem" });
  // and with none set the layout is unchanged
  assert.deepEqual(checkLayout({ ...LAYOUT, ...transportFromEnv(() => undefined) }), LAYOUT);
});
