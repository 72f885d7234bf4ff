/**
 * `deno task install`: the installed form, which needs no denort. Lays down
 * the program, its npm dependencies fetched and type-checked into a DENO_DIR
 * that is read-only once installed, the services bundled (scripts/bundle.ts),
 * and one launcher per program that runs `deno run` with exactly that
 * program's flags from src/runtime/permissions.ts.
 *
 *   (usage: USAGE below; `deno task install --help` prints it)
 *
 * The cluster and transport settings may also come from the environment, as
 * for `deno task start` (STRATA_CLUSTER, STRATA_ETCD_ENDPOINTS, ...,
 * STRATA_FS_LISTEN, STRATA_TLS_CERT, ...); an option wins over its variable.
 *
 * It writes, below the prefix:
 *   bin/strata-supervisor, strata-registry, strata-identity, strata-fs, strata-ctl
 *   lib/strata/app/    deno.json, deno.lock and src/ (the program); dist/, each
 *                      service as one file (with a source map), which its
 *                      launcher runs
 *   lib/strata/deno/   the DENO_DIR (npm packages from deno.lock, type-checked;
 *                      every module transpiled ahead of time, in its gen/)
 *   lib/systemd/system/strata.service   the unit for this layout (installed form)
 *   share/doc/strata/  README.md, docs/, protocol.md
 * The supervisor starts its children through their launchers, so its run
 * grant is those three files and nothing else.
 * @module
 */

import { cpSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { operatorScript } from "./operator_script.ts";
import { bundleServices } from "./bundle.ts";
import { entryOf, LAUNCHER_NAMES, programCommand, REPO_ROOT } from "../src/runtime/command.ts";
import {
  checkLayout,
  CHILD_SERVICES,
  DEFAULT_LAYOUT,
  type Layout,
  NODE_SETTING_OPTIONS,
  nodeSettings,
} from "../src/runtime/config.ts";
import { binOverrideVar, type Program, PROGRAMS } from "../src/runtime/permissions.ts";
import { renderUnit, TEMPLATE, UNIT_DEFAULTS } from "./unit.ts";

/** The command line, for --help. */
export const USAGE = `deno task install [--prefix=/opt/strata] [--runtime-dir=/run/strata]
                  [--state-dir=/var/lib/strata] [--node-id=local]
                  [--fs-roots=/srv/strata] [--group-access]
                  [--user=strata] [--group=strata] [--deno=<deno the launchers run>]
                  [--deps=<a DENO_DIR holding the locked npm packages: no network;
                          only those packages are copied from it>]
                  [--cluster=NAME --etcd-endpoints=URL,... --cluster-root=FILE
                   --cluster-ca=FILE --cluster-peers=HOST:PORT,... --partition-bound-ms=MS
                   --etcd-ca=FILE --etcd-cert=FILE --etcd-key=FILE --etcd-server-name=NAME
                   --fs-listen=tcp://HOST:PORT ... --tls-cert=FILE --tls-key=FILE --tls-ca=FILE]`;

operatorScript("install", USAGE);

const { values } = parseArgs({
  args: Deno.args,
  options: {
    prefix: { type: "string", default: "/opt/strata" },
    "runtime-dir": { type: "string", default: DEFAULT_LAYOUT.runtimeDir },
    "state-dir": { type: "string", default: DEFAULT_LAYOUT.stateDir },
    "node-id": { type: "string", default: DEFAULT_LAYOUT.nodeId },
    "fs-roots": { type: "string", default: UNIT_DEFAULTS.fsRoots.join(":") },
    "group-access": { type: "boolean", default: false },
    user: { type: "string", default: UNIT_DEFAULTS.user },
    group: { type: "string", default: UNIT_DEFAULTS.group },
    deno: { type: "string" },
    deps: { type: "string" },
    ...Object.fromEntries(NODE_SETTING_OPTIONS.map((o) => [o, { type: "string" as const }])),
  },
});

/** Quotes one word for /bin/sh. */
function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Sets every file and folder below `path` to read-only (folders stay searchable). */
function makeReadOnly(path: string): void {
  const info = Deno.lstatSync(path);
  if (info.isSymlink) return;
  if (info.isDirectory) {
    for (const e of Deno.readDirSync(path)) makeReadOnly(`${path}/${e.name}`);
    Deno.chmodSync(path, 0o555);
  } else Deno.chmodSync(path, (info.mode ?? 0o444) & 0o555 | 0o444);
}

/** Makes `path` writable again so a reinstall can replace it. */
function makeWritable(path: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return;
  }
  if (info.isSymlink) return;
  Deno.chmodSync(path, (info.mode ?? 0) | 0o200);
  if (info.isDirectory) {
    for (const e of Deno.readDirSync(path)) {
      makeWritable(`${path}/${e.name}`);
    }
  }
}

if (!values.prefix.startsWith("/")) {
  console.error(`--prefix must be an absolute path: ${values.prefix}`);
  Deno.exit(2);
}
const prefix = resolve(values.prefix);
const lib = `${prefix}/lib/strata`;
const denoDir = `${lib}/deno`;
const settings = nodeSettings(values, (n) => Deno.env.get(n));
const layout: Layout = checkLayout({
  runtimeDir: values["runtime-dir"],
  stateDir: values["state-dir"],
  nodeId: values["node-id"],
  fsRoots: values["fs-roots"].split(":"),
  ...(values["group-access"] ? { groupAccess: true } : {}),
  ...settings,
});
const deno = values.deno ?? Deno.execPath();
const bin = `${prefix}/bin`;
const app = `${lib}/app`;
const doc = `${prefix}/share/doc/strata`;
const overrides = CHILD_SERVICES.map((s) => Deno.env.get(binOverrideVar(s)))
  .filter((x): x is string => !!x);

// 1. The program, replacing an earlier install.
makeWritable(lib);
await Deno.remove(lib, { recursive: true }).catch(() => {});
for (const dir of [bin, app, doc, `${prefix}/lib/systemd/system`]) {
  await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
}
for (const f of ["deno.json", "deno.lock"]) cpSync(`${REPO_ROOT}/${f}`, `${app}/${f}`);
cpSync(`${REPO_ROOT}/src`, `${app}/src`, { recursive: true });
cpSync(`${REPO_ROOT}/README.md`, `${doc}/README.md`);
cpSync(`${REPO_ROOT}/docs`, `${doc}/docs`, { recursive: true }); // README links to docs/*.md
cpSync(`${REPO_ROOT}/api/protocol.md`, `${doc}/protocol.md`);

// 2. Its npm dependencies, exactly as deno.lock pins them, fetched (or taken
// from --deps, as the Nix build does) and type-checked.
if (values.deps) {
  copyLockedPackages(resolve(values.deps), denoDir);
  makeWritable(denoDir); // a copy out of the Nix store is read-only
}
console.log(`${values.deps ? "type-checking" : "fetching and type-checking"} into ${denoDir}`);
/**
 * Copies the npm packages deno.lock pins, and nothing else, from the DENO_DIR
 * `from` (--deps) into `to`. A DENO_DIR a developer has used also holds the
 * transpiled code of every project it ran, V8's code cache of it, and other
 * packages: copied whole, all of that ended up in the installed DENO_DIR,
 * which every user of the machine can read (a workstation's ~/.cache/deno:
 * 158 MB of transpiled code and 30 MB of code cache beside 3.5 MB of packages).
 */
function copyLockedPackages(from: string, to: string): void {
  const lock = JSON.parse(Deno.readTextFileSync(`${REPO_ROOT}/deno.lock`)) as {
    npm?: Record<string, unknown>;
  };
  let registries: string[] = [];
  try {
    registries = [...Deno.readDirSync(`${from}/npm`)].filter((e) => e.isDirectory).map((e) =>
      e.name
    );
  } catch { /* reported below, package by package */ }
  const isDir = (path: string) => {
    try {
      return Deno.statSync(path).isDirectory;
    } catch {
      return false;
    }
  };
  for (const key of Object.keys(lock.npm ?? {})) {
    // "@scope/name@1.2.3" (as nix/package.nix reads them: peer-dependency suffixes are not supported)
    const m = /^(@?[^@]+)@([^@_]+)$/.exec(key);
    if (!m) {
      console.error(`install: deno.lock npm entry ${key} is not name@version`);
      Deno.exit(1);
    }
    const [, name, version] = m;
    const found = registries.filter((r) => isDir(`${from}/npm/${r}/${name}/${version}`));
    if (found.length === 0) {
      console.error(`install: --deps: ${from} has no ${key} (npm/<registry>/${name}/${version})`);
      Deno.exit(1);
    }
    for (const r of found) {
      const dir = `npm/${r}/${name}`;
      cpSync(`${from}/${dir}/${version}`, `${to}/${dir}/${version}`, { recursive: true });
      // The package's registry metadata, where the cache has it (Nix's has none: the lock suffices).
      try {
        cpSync(`${from}/${dir}/registry.json`, `${to}/${dir}/registry.json`);
      } catch { /* none */ }
    }
  }
}

/** Runs `deno WORDS` over every program's entry with the installed DENO_DIR; exits on failure. */
async function overPrograms(words: string[], failed: string): Promise<void> {
  const status = await new Deno.Command(deno, {
    args: [...words, `--config=${app}/deno.json`, ...PROGRAMS.map((p) => `${app}/${entryOf(p)}`)],
    env: { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1" },
  }).spawn().status;
  if (status.success) return;
  console.error(`install: ${failed} failed (see above); nothing was made read-only`);
  Deno.exit(1);
}
await overPrograms(
  ["check", "--quiet", "--frozen", ...(values.deps ? ["--cached-only"] : [])],
  "type check or fetch",
);
// The services as bundles, which their launchers run: less memory and a
// quicker start (docs/performance.md, "How it gets there"). `deno bundle` takes
// the packages and its esbuild from the installer's DENO_DIR (or --deps), or
// fetches them; where it cannot (no network, no esbuild cached), the
// services run from their modules, as before.
let bundled = true;
try {
  await bundleServices(deno, app, app, {
    DENO_NO_UPDATE_CHECK: "1",
    ...(values.deps ? { DENO_DIR: resolve(values.deps) } : {}),
  });
} catch (err) {
  bundled = false;
  // No half of the bundles left beside the modules the launchers then run.
  await Deno.remove(`${app}/dist`, { recursive: true }).catch(() => {});
  console.error(`note: the services will run from their modules: ${(err as Error).message}`);
}
// Each module transpiled to JavaScript ahead of time (`deno install --entrypoint`,
// which is `deno cache`, from the packages now cached), into the DENO_DIR's
// gen/: the programs run as a user who cannot write there, and a `deno run`
// that finds no transpiled copy tries to store one, retrying for 150 ms
// before it goes on (strata-ctl --help took 227 ms so, 40 ms with gen/).
await overPrograms(
  ["install", "--entrypoint", "--quiet", "--cached-only", "--frozen"],
  "transpiling the program",
);
// Each program run once, as its launcher runs it, to print its version: a
// program that fails to start stops the install here. From its modules (strata-ctl,
// and the services where they could not be bundled), that loads every
// module it imports and leaves V8's code cache of them in the DENO_DIR,
// which the programs cannot write. As a user who cannot write there, up to
// where each would start: strata-fs 57.0 ms against 70.4 without,
// strata-identity 51.2 against 62.4, strata-supervisor 43.2 against 50.0,
// strata-ctl --help 37.1 against 41.2. The cached code of a module serves
// every program, as they all run with --expose-gc (CTL_V8_FLAGS). A bundled
// service runs without the code cache (BUNDLE_RUN_FLAGS).
for (const program of PROGRAMS) {
  const [cmd, ...args] = launcherWords(program);
  const out = await new Deno.Command(cmd, {
    args: [...args, program === "ctl" ? "--help" : "--version"],
    env: { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    console.error(`install: ${program} did not start: ${new TextDecoder().decode(out.stderr)}`);
    Deno.exit(1);
  }
}
makeReadOnly(lib);

// 3. The launchers: `deno run` with exactly each program's flags.
/** The launcher's words for `program`; strata-ctl's `cluster` commands get the cluster folder. */
function launcherWords(program: Program, clusterDir?: string): string[] {
  const { cmd, args } = programCommand(program, layout, { kind: "dev", deno, root: app, bundled }, {
    run: program === "supervisor"
      ? [...CHILD_SERVICES.map((s) => `${bin}/${LAUNCHER_NAMES[s]}`), ...overrides]
      : undefined,
    // strata-ctl's `fs get` may save into the folder it is run from, and only there.
    downloads: program === "ctl" ? ["."] : undefined,
    clusterDir,
    extra: program === "supervisor" ? [`--launchers=${bin}`] : [],
  });
  // Only what is cached: the launchers never fetch.
  return [cmd, args[0], "--cached-only", "--frozen", ...args.slice(1)];
}
for (const program of PROGRAMS) {
  const { env } = programCommand(program, layout, { kind: "dev", deno, root: app });
  const vars = { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1", ...env };
  // `strata-ctl cluster ...` (the first word) reads and writes the operator's cluster folder,
  // the folder it is run in (the default --dir), and runs openssl, as the launcher grants it.
  const clusterCase = program === "ctl"
    ? [
      "# strata-ctl cluster ...: run in the operator's cluster folder (--dir defaults to it).",
      `[ "$1" = cluster ] && exec ${launcherWords(program, ".").map(shellQuote).join(" ")} "$@"`,
    ]
    : [];
  const script = [
    "#!/bin/sh",
    `# ${LAUNCHER_NAMES[program]}: written by \`deno task install\`; runs Strata's ${program}`,
    "# with exactly its flags from src/runtime/permissions.ts. Reinstall to change it.",
    ...Object.entries(vars).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    ...clusterCase,
    `exec ${launcherWords(program).map(shellQuote).join(" ")} "$@"`,
    "",
  ].join("\n");
  const path = `${bin}/${LAUNCHER_NAMES[program]}`;
  await Deno.writeTextFile(path, script, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
}

// 4. The unit for this layout (a layout outside /run and /var/lib gets none).
const unitPath = `${prefix}/lib/systemd/system/strata.service`;
try {
  const unit = renderUnit(await Deno.readTextFile(TEMPLATE), {
    ...UNIT_DEFAULTS,
    form: "installed",
    binDir: bin,
    runtimeDir: layout.runtimeDir,
    stateDir: layout.stateDir,
    fsRoots: layout.fsRoots,
    groupAccess: layout.groupAccess ?? false,
    user: values.user,
    group: values.group,
    docDir: doc,
    network: layout.cluster !== undefined || Object.keys(layout.listen ?? {}).length > 0,
  });
  await Deno.writeTextFile(unitPath, unit, { mode: 0o644 });
  console.log(`installed into ${prefix}: launchers in ${bin}, systemd unit ${unitPath}`);
} catch (e) {
  console.log(`installed into ${prefix}: launchers in ${bin}`);
  console.log(`note: no systemd unit written: ${(e as Error).message}`);
}
