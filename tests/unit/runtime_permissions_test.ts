/**
 * Unit tests for src/runtime/permissions.ts: each program's Deno flags, the
 * second lock on every door.
 */

import assert from "node:assert/strict";
import { type Layout, runtimeFiles, socketPath, stateFiles } from "../../src/runtime/config.ts";
import {
  binOverrideVar,
  CTL_ENV,
  permissionFlags,
  permissionSet,
  type Program,
  PROGRAMS,
} from "../../src/runtime/permissions.ts";

const LAYOUT: Layout = {
  runtimeDir: "/run/st",
  stateDir: "/var/lib/st",
  nodeId: "n1",
  fsRoots: ["/srv/data", "/home/shared"],
};

const RUN = ["/usr/bin/deno", "/opt/strata/bin/fs"];

/** The flags of `program` as a map from flag name to its comma list. */
function flagsOf(program: Program, layout: Layout = LAYOUT): Map<string, string[]> {
  const flags = permissionFlags(program, layout, program === "supervisor" ? { run: RUN } : {});
  const out = new Map<string, string[]>();
  for (const f of flags) {
    const eq = f.indexOf("=");
    assert.ok(eq > 0, `flag without a list: ${f}`);
    assert.ok(!out.has(f.slice(0, eq)), `flag given twice: ${f}`);
    out.set(f.slice(0, eq), f.slice(eq + 1).split(","));
  }
  return out;
}

Deno.test("permissionFlags: no program gets a bare or blanket permission", () => {
  for (const program of PROGRAMS) {
    const flags = permissionFlags(program, LAYOUT, program === "supervisor" ? { run: RUN } : {});
    for (const f of flags) {
      // no bare --allow-read, --allow-write, --allow-net, --allow-run, --allow-env
      assert.ok(
        /^--(allow-(read|write|net|run|env)|deny-read)=[^,]+(,[^,]+)*$/.test(f),
        `${program}: ${f}`,
      );
    }
    for (
      const banned of [
        "-A",
        "--allow-all",
        "--allow-sys",
        "--allow-ffi",
        "--allow-hrtime",
        "--allow-import",
      ]
    ) {
      assert.ok(
        !flags.some((f) => f === banned || f.startsWith(banned + "=")),
        `${program} has ${banned}`,
      );
    }
  }
});

Deno.test("permissionFlags: only the supervisor may run programs, exactly the ones it was given", () => {
  for (const program of PROGRAMS) {
    const run = flagsOf(program).get("--allow-run");
    if (program === "supervisor") assert.deepEqual(run, RUN);
    else assert.equal(run, undefined, `${program} has --allow-run`);
  }
  // a supervisor given nothing to run gets no --allow-run at all
  assert.ok(!permissionFlags("supervisor", LAYOUT).some((f) => f.startsWith("--allow-run")));
  // and a run list handed to another program is never granted
  for (const p of ["registry", "identity", "fs"] as const) {
    assert.deepEqual(permissionSet(p, LAYOUT, { run: ["/bin/sh"] }).run, [], p);
  }
  assert.ok(
    !permissionFlags("ctl", LAYOUT, { run: ["/bin/sh"] }).some((f) => f.startsWith("--allow-run")),
  );
});

Deno.test("permissionFlags: every socket in --allow-net is also in --allow-read and --allow-write", () => {
  for (const program of PROGRAMS) {
    const flags = flagsOf(program);
    const net = flags.get("--allow-net") ?? [];
    assert.ok(net.length > 0, `${program} has no socket`);
    for (const entry of net) {
      assert.match(entry, /^unix:\//, `${program}: ${entry}`);
      const path = entry.slice("unix:".length);
      assert.ok(flags.get("--allow-read")?.includes(path), `${program}: ${path} not readable`);
      assert.ok(flags.get("--allow-write")?.includes(path), `${program}: ${path} not writable`);
    }
  }
});

Deno.test("permissionFlags: each service may use its own socket, identity too (no service takes pushes)", () => {
  const net = (p: Program) => flagsOf(p).get("--allow-net")!.map((s) => s.slice(5)).sort();
  assert.deepEqual(net("registry"), [socketPath(LAYOUT, "registry")]);
  assert.deepEqual(net("fs"), [socketPath(LAYOUT, "fs")]);
  assert.deepEqual(net("identity"), [socketPath(LAYOUT, "identity")]);
  assert.deepEqual(
    net("ctl"),
    (["supervisor", "registry", "identity", "fs"] as const).map((s) => socketPath(LAYOUT, s))
      .sort(),
  );
});

Deno.test("permissionFlags: fs reads its export roots and the published files, and writes only the audit log (and its rotation)", () => {
  const flags = flagsOf("fs");
  const read = flags.get("--allow-read")!;
  for (const root of LAYOUT.fsRoots) assert.ok(read.includes(root), root);
  assert.ok(read.includes(runtimeFiles(LAYOUT).identityPub));
  assert.ok(read.includes(runtimeFiles(LAYOUT).revocations));
  const write = flags.get("--allow-write")!.filter((p) => p !== socketPath(LAYOUT, "fs"));
  assert.deepEqual(write, [stateFiles(LAYOUT).audit, stateFiles(LAYOUT).auditOld]);
  // no roots, no extra reads
  const bare = flagsOf("fs", { ...LAYOUT, fsRoots: [] }).get("--allow-read")!;
  assert.ok(!bare.includes("/srv/data"));
});

Deno.test("permissionFlags: only identity can reach the state dir's keys and revocation log", () => {
  const st = stateFiles(LAYOUT);
  for (const program of PROGRAMS) {
    const flags = flagsOf(program);
    const reach = [...(flags.get("--allow-read") ?? []), ...(flags.get("--allow-write") ?? [])];
    const touchesKeys = reach.some((p) =>
      p === LAYOUT.stateDir || p === st.keys || p === st.revocationLog
    );
    assert.equal(touchesKeys, program === "identity", program);
  }
  // and every other program is refused the key by name wherever one of its read
  // grants covers it by path (Deno matches a deny as written), strata-ctl always
  const around: Layout[] = [
    { ...LAYOUT, fsRoots: ["/var/lib"] },
    { ...LAYOUT, runtimeDir: "/var/lib/st/run" },
    { ...LAYOUT, stateDir: "/run/st/state" },
  ];
  for (const program of PROGRAMS) {
    const named = (layout: Layout) => {
      const deny = flagsOf(program, layout).get("--deny-read") ?? [];
      const s = stateFiles(layout);
      return deny.includes(s.keys) && deny.includes(s.keysTmp);
    };
    assert.equal(named(LAYOUT), program === "ctl", program);
    for (const layout of around) {
      const s = stateFiles(layout);
      const reads = flagsOf(program, layout).get("--allow-read") ?? [];
      const covers = reads.some((g) => s.keys.startsWith(`${g}/`));
      assert.equal(named(layout), program !== "identity" && (covers || program === "ctl"), program);
    }
  }
  // the cases above do cover it for fs and the supervisor
  assert.ok(flagsOf("fs", around[0]).get("--deny-read")!.includes(st.keys));
  assert.ok(
    flagsOf("supervisor", around[2]).get("--deny-read")!.includes(stateFiles(around[2]).keys),
  );
  // and ctl reads only the operator token from it
  const ctlReads = flagsOf("ctl").get("--allow-read")!.filter((p) => p.startsWith(LAYOUT.stateDir));
  assert.deepEqual(ctlReads, [st.operatorToken]);
});

Deno.test("permissionFlags: fs is refused each entry of the state dir it is not granted, when it lies inside an export root", () => {
  const dev = { ...LAYOUT, fsRoots: ["/tmp"], runtimeDir: "/tmp/strata-me" };
  const deny = (l: Layout) => flagsOf("fs", l).get("--deny-read") ?? [];
  // never a folder that holds one of its grants (see permissions.ts: Deno misplaces such a deny)
  for (
    const l of [dev, { ...dev, stateDir: "/tmp/st" }, { ...LAYOUT, fsRoots: ["/var", "/run"] }]
  ) {
    assert.ok(!deny(l).includes(l.runtimeDir), JSON.stringify(l));
    assert.ok(!deny(l).includes(l.stateDir), JSON.stringify(l));
  }
  // a runtime dir inside a root: nothing denied (nothing in it is secret; each deny costs every check)
  assert.deepEqual(deny(dev), []);
  // outside every root the grants are exact already: nothing is named
  assert.equal(flagsOf("fs").get("--deny-read"), undefined);
  // a root around the state dir: every entry of it but the audit log, the logs folder too
  const wide = { ...LAYOUT, fsRoots: ["/var"] };
  const st = stateFiles(LAYOUT);
  const secret = Object.values(st).filter((p) => p !== st.audit && p !== st.auditOld);
  assert.deepEqual(deny(wide).sort(), [...secret].sort());
  assert.ok(deny(wide).includes(st.logs));
  const both = { ...dev, stateDir: "/tmp/st" };
  // the exact grants inside them stay (Deno lets the more specific one win)
  const read = flagsOf("fs", both).get("--allow-read")!;
  for (
    const p of [runtimeFiles(both).identityPub, stateFiles(both).audit, "/tmp/strata-me/fs.sock"]
  ) {
    assert.ok(read.includes(p), p);
  }
});

Deno.test("permissionFlags: only identity (and the supervisor that owns the runtime dir) may write identity.pub", () => {
  const pub = runtimeFiles(LAYOUT).identityPub;
  for (const program of PROGRAMS) {
    const write = flagsOf(program).get("--allow-write") ?? [];
    const can = write.includes(pub) || write.includes(LAYOUT.runtimeDir);
    assert.equal(can, program === "identity" || program === "supervisor", program);
  }
});

Deno.test("permissionFlags: environment access is limited to named variables", () => {
  assert.deepEqual(flagsOf("ctl").get("--allow-env"), CTL_ENV);
  assert.deepEqual(flagsOf("supervisor").get("--allow-env"), [
    "STRATA_REGISTRY_BIN",
    "STRATA_IDENTITY_BIN",
    "STRATA_FS_BIN",
  ]);
  for (const p of ["registry", "identity", "fs"] as const) {
    assert.equal(flagsOf(p).get("--allow-env"), undefined, p);
  }
  assert.equal(binOverrideVar("fs"), "STRATA_FS_BIN");
});

Deno.test("permissionFlags: a path with a comma is refused, wherever it comes from", () => {
  assert.throws(() => permissionFlags("fs", { ...LAYOUT, fsRoots: ["/srv/a,b"] }), /has a comma/);
  assert.throws(
    () => permissionFlags("identity", { ...LAYOUT, stateDir: "/var/a,b" }),
    /has a comma/,
  );
  assert.throws(
    () => permissionFlags("registry", { ...LAYOUT, runtimeDir: "/run/a,b" }),
    /has a comma/,
  );
  assert.throws(
    () => permissionFlags("ctl", LAYOUT, { downloads: ["/home/me/a,b"] }),
    /has a comma/,
  );
  assert.throws(
    () => permissionFlags("supervisor", LAYOUT, { run: ["/usr/bin/a,b"] }),
    /has a comma/,
  );
});

Deno.test("permissionFlags: ctl may write only the download folders it is given", () => {
  assert.equal(
    flagsOf("ctl").get("--allow-write")!.every((p) => p.endsWith(".sock")),
    true,
  );
  const flags = permissionFlags("ctl", LAYOUT, { downloads: ["/home/me/dl"] });
  assert.ok(
    flags.includes(
      `--allow-write=${[...permissionSet("ctl", LAYOUT).sockets, "/home/me/dl"].join(",")}`,
    ),
  );
});

/** The layout with fs also listening on tcp:// and the TLS files outside every root. */
const TCP_LAYOUT: Layout = {
  ...LAYOUT,
  listen: { fs: "tcp://127.0.0.1:7402" },
  tls: {
    cert: "/etc/strata/tls/fs.pem",
    key: "/etc/strata/tls/fs.key",
    ca: "/etc/strata/tls/ca.pem",
  },
};

Deno.test("permissionFlags: --allow-net is derived from the endpoints: exact unix:<path> and host:port", () => {
  // given a node whose fs also listens on tcp://
  // then fs may use its socket and exactly that host:port, and reads its certificate and key
  const fs = flagsOf("fs", TCP_LAYOUT);
  assert.deepEqual(fs.get("--allow-net"), [`unix:${socketPath(LAYOUT, "fs")}`, "127.0.0.1:7402"]);
  assert(fs.get("--allow-read")!.includes("/etc/strata/tls/fs.pem"));
  assert(fs.get("--allow-read")!.includes("/etc/strata/tls/fs.key"));
  assert(!fs.get("--allow-read")!.includes("/etc/strata/tls/ca.pem"));
  assert.deepEqual(permissionSet("fs", TCP_LAYOUT).endpoints, [
    `unix://${socketPath(LAYOUT, "fs")}`,
    "tcp://127.0.0.1:7402",
  ]);
  // and strata-ctl may dial it too, reading the CA (not the key, which it is refused)
  const ctl = flagsOf("ctl", TCP_LAYOUT);
  assert(ctl.get("--allow-net")!.includes("127.0.0.1:7402"));
  assert(ctl.get("--allow-read")!.includes("/etc/strata/tls/ca.pem"));
  assert(!ctl.get("--allow-read")!.includes("/etc/strata/tls/fs.key"));
  // and every other program keeps exactly its sockets, and cannot read the key
  for (const program of ["registry", "identity", "supervisor", "ctl"] as const) {
    const before = flagsOf(program, LAYOUT).get("--allow-net")!;
    const after = flagsOf(program, TCP_LAYOUT).get("--allow-net")!;
    assert.deepEqual(after.filter((g) => g.startsWith("unix:")), before, program);
    assert(!flagsOf(program, TCP_LAYOUT).get("--allow-read")!.includes("/etc/strata/tls/fs.key"));
  }
  // a key kept in a folder another program may read (identity's state dir) is refused to it
  const inState: Layout = {
    ...TCP_LAYOUT,
    tls: { ...TCP_LAYOUT.tls, key: "/var/lib/st/tls/fs.key" },
  };
  assert(flagsOf("identity", inState).get("--deny-read")!.includes("/var/lib/st/tls/fs.key"));
  assert(flagsOf("ctl", TCP_LAYOUT).get("--deny-read")!.includes("/etc/strata/tls/fs.key"));
  assert(!(flagsOf("fs", inState).get("--deny-read") ?? []).includes("/var/lib/st/tls/fs.key"));
  assert(flagsOf("fs", inState).get("--allow-read")!.includes("/var/lib/st/tls/fs.key"));
  // and no grant is bare: every entry names a socket path or a host and a port
  for (const program of PROGRAMS) {
    for (const g of flagsOf(program, TCP_LAYOUT).get("--allow-net") ?? []) {
      assert.match(g, /^unix:\/.+|^[A-Za-z0-9.-]+:\d+$/, `${program}: ${g}`);
    }
  }
});

Deno.test("permissionFlags: a unix-only layout's --allow-net is exactly the sockets, as before", () => {
  assert.deepEqual(flagsOf("registry").get("--allow-net"), [
    `unix:${socketPath(LAYOUT, "registry")}`,
  ]);
  assert.deepEqual(flagsOf("identity").get("--allow-net"), [
    `unix:${socketPath(LAYOUT, "identity")}`,
  ]);
});

Deno.test("cluster mode: strata-ctl's grants are the same however often they are computed", () => {
  const layout: Layout = {
    ...LAYOUT,
    cluster: { name: "c", etcd: ["http://127.0.0.1:2379"], root: "/etc/strata/root.pub" },
  };
  const first = permissionFlags("ctl", layout);
  const single = permissionFlags("ctl", LAYOUT);
  assert.deepEqual(permissionFlags("ctl", layout), first);
  // The shared list of strata-ctl's variables is not grown by a cluster layout.
  assert.deepEqual(permissionFlags("ctl", LAYOUT), single);
  assert.deepEqual(CTL_ENV, ["STRATA_TOKEN", "NO_COLOR"]);
});
