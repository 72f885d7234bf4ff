/**
 * Unit tests for src/runtime/command.ts: the command line that starts each
 * program.
 */

import assert from "node:assert/strict";
import {
  BINARY_NAMES,
  BUNDLE_RUN_FLAGS,
  bundleCommand,
  BUNDLED,
  entryOf,
  programCommand,
  QUIET_SERVICE_V8_FLAGS,
  REPO_ROOT,
  SERVICE_ENV,
  SERVICE_V8_FLAGS,
  serviceV8Flags,
} from "../../src/runtime/command.ts";
import { type Layout, layoutArgs } from "../../src/runtime/config.ts";
import { permissionFlags, PROGRAMS } from "../../src/runtime/permissions.ts";

const LAYOUT: Layout = {
  runtimeDir: "/run/st",
  stateDir: "/var/lib/st",
  nodeId: "n1",
  fsRoots: ["/srv"],
};
const DEV = { kind: "dev", deno: "/usr/bin/deno", root: "/repo" } as const;

Deno.test("programCommand (dev): deno run with the program's own flags, its entry, then the layout and extras", () => {
  // given the fs program in development mode
  const { cmd, args } = programCommand("fs", LAYOUT, DEV, { extra: ["--x"] });
  // then it is deno run, with exactly fs's permission flags before the entry
  assert.equal(cmd, "/usr/bin/deno");
  const entry = args.indexOf("/repo/src/fs/main.ts");
  assert.ok(entry > 0);
  assert.deepEqual(args.slice(0, 4), ["run", "--quiet", "--no-prompt", "--config=/repo/deno.json"]);
  assert.ok(args.includes(`--v8-flags=${SERVICE_V8_FLAGS}`));
  const flags = args.slice(0, entry).filter((a) => /^--(allow|deny)-/.test(a));
  assert.deepEqual(flags, permissionFlags("fs", LAYOUT));
  // and after the entry: the layout, then the extra arguments
  assert.deepEqual(args.slice(entry + 1), [...layoutArgs(LAYOUT), "--x"]);
});

Deno.test("programCommand (dev): no program gets a permission flag that is not its own", () => {
  for (const program of PROGRAMS) {
    const { args } = programCommand(
      program,
      LAYOUT,
      DEV,
      program === "supervisor" ? { run: ["/usr/bin/deno"] } : {},
    );
    const entry = args.indexOf(`/repo/${entryOf(program)}`);
    const allow = args.filter((a, i) => i < entry && /^--(allow|deny)-/.test(a));
    assert.deepEqual(
      allow,
      permissionFlags(program, LAYOUT, program === "supervisor" ? { run: ["/usr/bin/deno"] } : {}),
    );
    // ctl keeps V8's defaults but for --expose-gc, so it shares the services' cached code
    assert.ok(args.includes(`--v8-flags=${serviceV8Flags(program)}`), program);
    assert.ok(serviceV8Flags(program).split(",").includes("--expose-gc"), program);
  }
});

Deno.test("programCommand (dev, bundled): a service runs its bundle without config, strata-ctl its modules", () => {
  // given the development mode over a folder of bundles
  const mode = { ...DEV, bundled: true };
  for (const program of PROGRAMS) {
    const { args } = programCommand(program, LAYOUT, mode);
    if (program === "ctl") {
      // then strata-ctl, which is not bundled, runs from its modules with the config
      assert.ok(args.includes("/repo/src/ctl/main.ts"));
      assert.ok(args.includes("--config=/repo/deno.json"));
      continue;
    }
    // then each service runs dist/<program>/main.js, with no config to read
    const entry = args.indexOf(`/repo/dist/${program}/main.js`);
    assert.ok(entry > 0, program);
    assert.deepEqual(args.slice(3, 3 + BUNDLE_RUN_FLAGS.length), [...BUNDLE_RUN_FLAGS]);
    assert.ok(!args.some((a) => a.startsWith("--config")), program);
    // with the same permission flags as from its modules, and its bundled V8 flags
    const modules = programCommand(program, LAYOUT, DEV).args;
    const flagsOf = (a: string[]) => a.filter((x) => /^--(allow|deny)-/.test(x));
    assert.deepEqual(flagsOf(args), flagsOf(modules), program);
    assert.ok(args.includes(`--v8-flags=${serviceV8Flags(program, true)}`), program);
    assert.deepEqual(args.slice(entry + 1), layoutArgs(LAYOUT));
  }
});

Deno.test("bundleCommand: one minified file with its npm packages inside, from the locked packages", () => {
  // given fs of the checkout at /repo bundled into /out
  const { cmd, args } = bundleCommand("/usr/bin/deno", "fs", "/repo", "/out");
  // then deno bundle writes /out/dist/fs/main.js, the file a bundled launch runs
  assert.equal(cmd, "/usr/bin/deno");
  assert.equal(args[0], "bundle");
  assert.ok(args.includes(`--output=/out/${entryOf("fs", true)}`));
  assert.equal(args.at(-1), "/repo/src/fs/main.ts");
  for (
    const flag of [
      "--config=/repo/deno.json",
      "--frozen-lockfile",
      "--packages=bundle",
      "--minify",
      "--keep-names",
      "--sourcemap=external",
    ]
  ) assert.ok(args.includes(flag), flag);
});

Deno.test("BUNDLED: this module, run from its source, knows it is not bundled", () => {
  assert.equal(BUNDLED, false);
  assert.equal(entryOf("fs"), "src/fs/main.ts");
  assert.equal(entryOf("fs", true), "dist/fs/main.js");
  assert.equal(entryOf("ctl", true), "src/ctl/main.ts");
});

Deno.test("serviceV8Flags: supervisor and registry run light, identity and fs keep their young generation", () => {
  assert.equal(serviceV8Flags("supervisor"), QUIET_SERVICE_V8_FLAGS);
  assert.equal(serviceV8Flags("registry"), QUIET_SERVICE_V8_FLAGS);
  assert.equal(serviceV8Flags("fs"), SERVICE_V8_FLAGS);
  assert.equal(serviceV8Flags("identity"), SERVICE_V8_FLAGS);
  // bundled (no code cache to share), supervisor and registry also run in V8's lite mode
  assert.equal(serviceV8Flags("supervisor", true), `--lite-mode,${QUIET_SERVICE_V8_FLAGS}`);
  assert.equal(serviceV8Flags("registry", true), `--lite-mode,${QUIET_SERVICE_V8_FLAGS}`);
  assert.equal(serviceV8Flags("fs", true), SERVICE_V8_FLAGS);
  assert.equal(serviceV8Flags("identity", true), SERVICE_V8_FLAGS);
  assert.ok(!QUIET_SERVICE_V8_FLAGS.includes("lite"));
  // identity and fs compile on their main thread, where the compiler's memory is reused
  assert.ok(SERVICE_V8_FLAGS.split(",").includes("--no-concurrent-recompilation"));
  assert.ok(!QUIET_SERVICE_V8_FLAGS.split(",").includes("--no-concurrent-recompilation"));
  // every service can run the idle collector, and identity and fs keep 8 MB semi-spaces
  for (const flags of [SERVICE_V8_FLAGS, QUIET_SERVICE_V8_FLAGS]) {
    assert.ok(flags.split(",").includes("--expose-gc"), flags);
  }
  assert.ok(SERVICE_V8_FLAGS.split(",").includes("--max-semi-space-size=8"));
});

Deno.test("programCommand (compiled): the binary next to the supervisor, with only the extras", () => {
  const c = programCommand("ctl", LAYOUT, { kind: "compiled", binDir: "/opt/strata/bin" }, {
    extra: ["fs.list"],
  });
  assert.equal(c.cmd, "/opt/strata/bin/strata-ctl");
  assert.deepEqual(c.args, ["fs.list"]);
  const fs = programCommand("fs", LAYOUT, { kind: "compiled", binDir: "/opt/strata/bin" });
  assert.equal(fs.cmd, "/opt/strata/bin/fs");
  assert.deepEqual(fs.args, []);
  assert.equal(BINARY_NAMES.supervisor, "supervisor");
});

Deno.test("programCommand (installed): the launcher deno task install wrote, with only the extras", () => {
  const fs = programCommand("fs", LAYOUT, { kind: "installed", binDir: "/opt/strata/bin" });
  assert.equal(fs.cmd, "/opt/strata/bin/strata-fs");
  assert.deepEqual(fs.args, []);
  assert.deepEqual(fs.env, SERVICE_ENV);
  const ctl = programCommand("ctl", LAYOUT, { kind: "installed", binDir: "/opt/strata/bin" }, {
    extra: ["status"],
  });
  assert.equal(ctl.cmd, "/opt/strata/bin/strata-ctl");
  assert.deepEqual(ctl.args, ["status"]);
});

Deno.test("programCommand: services get the service environment, ctl inherits its own", () => {
  for (const mode of [DEV, { kind: "compiled", binDir: "/opt/strata/bin" } as const]) {
    for (const program of PROGRAMS) {
      const { env } = programCommand(
        program,
        LAYOUT,
        mode,
        program === "supervisor" ? { run: ["/x"] } : {},
      );
      if (program === "ctl") assert.equal(env, undefined, `${mode.kind} ctl`);
      else assert.deepEqual(env, { ...SERVICE_ENV }, `${mode.kind} ${program}`);
    }
  }
});

Deno.test("REPO_ROOT: the repository root, without a trailing slash, with every program's entry", () => {
  assert.ok(!REPO_ROOT.endsWith("/"));
  Deno.statSync(`${REPO_ROOT}/deno.json`);
  for (const program of PROGRAMS) {
    assert.ok(Deno.statSync(`${REPO_ROOT}/${entryOf(program)}`).isFile, program);
  }
});

Deno.test("deno task start and ctl: one Deno before the program's own, granted only to run itself", () => {
  const { tasks } = JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}/deno.json`));
  for (const name of ["start", "ctl"]) {
    const line: string = tasks[name];
    // A `$(deno eval ...)` to name the executable was a third Deno start, about 64 ms of each
    // `deno task ctl`; the launcher runs its program as /proc/self/exe instead.
    assert.ok(!line.includes("$("), `${name}: ${line}`);
    const run = line.split(" ").filter((a) => a.startsWith("--allow-run"));
    assert.deepEqual(run, ["--allow-run=/proc/self/exe"], name);
  }
});
