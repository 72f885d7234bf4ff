/**
 * `deno task compile` bakes into each binary exactly the flags the
 * permissions module gives that program, and nothing broader.
 */

import assert from "node:assert/strict";
import {
  BINARY_NAMES,
  checkCommand,
  compileCommand,
  programCommand,
  serviceV8Flags,
} from "../../src/runtime/command.ts";
import { type Layout, layoutArgs } from "../../src/runtime/config.ts";
import { permissionFlags, PROGRAMS } from "../../src/runtime/permissions.ts";

const layout: Layout = {
  runtimeDir: "/run/strata",
  stateDir: "/var/lib/strata",
  nodeId: "node-1",
  fsRoots: ["/srv/data", "/srv/media"],
};
const options = { deno: "/usr/bin/deno", outDir: "/build/out", binDir: "/opt/strata/bin" };

function flagsOf(args: string[]): string[] {
  return args.filter((a) => a.startsWith("--allow-") || a.startsWith("--deny-") || a === "-A");
}

for (const program of PROGRAMS) {
  Deno.test(`compile: ${program} carries exactly its permission flags`, () => {
    const { cmd, args } = compileCommand(program, layout, options);
    assert.equal(cmd, "/usr/bin/deno");
    assert.equal(args[0], "compile");
    assert(args.includes(`--output=/build/out/${BINARY_NAMES[program]}`));
    const run = program === "supervisor"
      ? ["registry", "identity", "fs"].map((s) => `/opt/strata/bin/${s}`)
      : undefined;
    assert.deepEqual(flagsOf(args), permissionFlags(program, layout, { run }));
    // The layout is baked in as the program's arguments, after its entry.
    const entry = args.findIndex((a) => a.endsWith(`/src/${program}/main.ts`));
    assert(entry > 0);
    assert.deepEqual(args.slice(entry + 1), layoutArgs(layout));
    // Nothing broader: no -A, no bare grants, no sys or ffi.
    for (const a of args) {
      assert(
        !/^(-A|--allow-all|--allow-sys|--allow-ffi|--allow-hrtime)/.test(a),
        `${program}: ${a}`,
      );
      assert(!/^--allow-(read|write|net|env|run)$/.test(a), `${program}: bare ${a}`);
    }
  });
}

Deno.test("compile: only the supervisor may run programs, and only its siblings", () => {
  for (const program of PROGRAMS) {
    const runFlags = compileCommand(program, layout, options).args.filter((a) =>
      a.startsWith("--allow-run")
    );
    if (program === "supervisor") {
      assert.deepEqual(runFlags, [
        "--allow-run=/opt/strata/bin/registry,/opt/strata/bin/identity,/opt/strata/bin/fs",
      ]);
    } else {
      assert.deepEqual(runFlags, [], program);
    }
  }
});

Deno.test("compile: STRATA_<NAME>_BIN overrides given at build time join the run grant", () => {
  const { args } = compileCommand("supervisor", layout, {
    ...options,
    overrides: ["/usr/local/bin/my-fs"],
  });
  assert(args.some((a) => a.startsWith("--allow-run=") && a.endsWith(",/usr/local/bin/my-fs")));
});

Deno.test("compile and dev launches give a program the same grants", () => {
  for (const program of PROGRAMS) {
    const dev = programCommand(program, layout, {
      kind: "dev",
      deno: "/usr/bin/deno",
      root: "/src",
    }, {
      run: program === "supervisor" ? ["/usr/bin/deno"] : undefined,
    });
    const compiled = compileCommand(program, layout, options);
    const strip = (flags: string[]) => flags.filter((f) => !f.startsWith("--allow-run"));
    assert.deepEqual(strip(flagsOf(dev.args)), strip(flagsOf(compiled.args)), program);
  }
});

Deno.test("compile: services get the runtime V8 flags baked in; the compiler checks nothing", () => {
  for (const program of PROGRAMS) {
    const { args } = compileCommand(program, layout, options);
    // deno compile applies --v8-flags to itself too: the type check is a separate step.
    assert(args.includes("--no-check"), program);
    assert.equal(
      program !== "ctl" && args.includes(`--v8-flags=${serviceV8Flags(program)}`),
      program !== "ctl",
      program,
    );
  }
  const check = checkCommand("/usr/bin/deno", PROGRAMS);
  assert.deepEqual(check.args.slice(0, 3), ["check", "--quiet", "--frozen"]);
  assert(!check.args.some((a) => a.startsWith("--v8-flags")));
  assert.equal(check.args.filter((a) => a.endsWith("/main.ts")).length, PROGRAMS.length);
});

Deno.test("compile: cluster mode, given as options, bakes in exactly the cluster grants", async () => {
  const cluster: Layout = {
    ...layout,
    cluster: {
      name: "prod",
      etcd: ["http://10.0.0.1:2379", "http://10.0.0.2:2379"],
      root: "/etc/strata/root.pub",
      ca: "/etc/strata/ca.pem",
      peers: ["10.0.0.2:7402"],
    },
  };
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "task",
      "--quiet",
      "compile",
      "--print",
      "--bin-dir=/opt/strata/bin",
      "--out=/build/out",
      "--fs-roots=/srv/data:/srv/media",
      "--node-id=node-1",
      "--cluster=prod",
      "--etcd-endpoints=http://10.0.0.1:2379,http://10.0.0.2:2379",
      "--cluster-root=/etc/strata/root.pub",
      "--cluster-ca=/etc/strata/ca.pem",
      // Accepted and ignored, as build scripts written before 2026-12-04 pass it.
      "--etcd-proto=/opt/strata/proto",
      "--cluster-peers=10.0.0.2:7402",
    ],
    cwd: new URL("../../", import.meta.url),
    env: { NO_COLOR: "1" },
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").slice(1);
  assert.equal(lines.length, PROGRAMS.length);
  for (const [i, program] of PROGRAMS.entries()) {
    const expected = compileCommand(program, cluster, {
      ...options,
      ...(program === "ctl" ? { downloads: ["."] } : {}),
    });
    const words = lines[i].split(" ").slice(1);
    assert.deepEqual(flagsOf(words), flagsOf(expected.args), program);
    assert(flagsOf(words).some((f) => f.startsWith("--allow-net=") && f.includes("10.0.0.2:2379")));
    assert.deepEqual(words.slice(-layoutArgs(cluster).length), layoutArgs(cluster), program);
  }
});
