/**
 * The command line that starts a Strata program: `deno run` with the
 * program's permission flags in development, the compiled binary next to
 * the supervisor, whose flags were baked in by `deno task compile`, or the
 * launcher `deno task install` wrote for it (`deno run` with the same flags).
 * @module
 */

import { CHILD_SERVICES, type Layout, layoutArgs } from "./config.ts";
import { permissionFlags, type PermissionOptions, type Program } from "./permissions.ts";

/**
 * How programs are started. `bundled`: the services run from their bundles
 * under `root` (dist/<program>/main.js, see {@link bundleCommand}), strata-ctl
 * from its modules.
 */
export type LaunchMode =
  | { kind: "dev"; deno: string; root: string; bundled?: boolean }
  | { kind: "compiled"; binDir: string }
  | { kind: "installed"; binDir: string };

/**
 * The repository root, for development launches: this module's file URL
 * made a path (percent-decoded, as node:url's fileURLToPath does; not with
 * it, so that the launcher behind `deno task start` and `deno task ctl`
 * imports no `node:` module, see runtime/paths.ts).
 */
export const REPO_ROOT: string = decodeURIComponent(new URL("../../", import.meta.url).pathname)
  .replace(/\/$/, "");

/** The compiled binary name of each program. */
export const BINARY_NAMES: Readonly<Record<Program, string>> = {
  supervisor: "supervisor",
  registry: "registry",
  identity: "identity",
  fs: "fs",
  ctl: "strata-ctl",
};

/** The launcher name of each program in the installed form (`deno task install`). */
export const LAUNCHER_NAMES: Readonly<Record<Program, string>> = {
  supervisor: "strata-supervisor",
  registry: "strata-registry",
  identity: "strata-identity",
  fs: "strata-fs",
  ctl: "strata-ctl",
};

/**
 * Whether this code runs from a service's bundle rather than from its
 * modules: bundled, this module is part of dist/<program>/main.js and its
 * URL is that file's. The supervisor then starts its children from their
 * bundles beside its own.
 */
export const BUNDLED: boolean = !import.meta.url.endsWith("/src/runtime/command.ts");

/**
 * The entry of a program, relative to the repository root (or to the
 * folder its bundle was built under): its source module, or for a service
 * run `bundled` the bundle {@link bundleCommand} writes.
 */
export function entryOf(program: Program, bundled = false): string {
  return bundled && program !== "ctl" ? `dist/${program}/main.js` : `src/${program}/main.ts`;
}

/**
 * V8 settings for identity and fs, the services on the request paths:
 *
 * - A young generation of up to 8 MB a semi-space (an issue makes ~33 KB of
 *   short-lived garbage; with 1 MB the scavenger ran every ~30 requests, and
 *   8 measured 1.16x issues/s, 1.15x single-connection listings at no cost
 *   in memory after the load, since the idle collector shrinks it again).
 * - An old generation capped well above what a service holds (every cache
 *   and table is bounded), so garbage is collected before it piles up.
 * - The optimising compiler on the main thread instead of V8's worker
 *   threads (--no-concurrent-recompilation), so its memory is freed by the
 *   thread that took it and reused there. With the worker threads, what the
 *   compiler freed stayed in their own malloc arena: identity held 24.6-26.3
 *   MB anonymous after 30,000 issues and 16 s idle against 20.1-21.5 with
 *   the flag (six alternated runs; `malloc_info`: a second arena of 1.7-4.3
 *   MB, mostly free); fs after the bench's listings and reads held a 2.6-4.6
 *   MB mapping of that arena, and with the flag 4.8 and 6.1 MB less PSS
 *   (`deno task bench --baseline` of the change, two runs). A function is
 *   compiled while requests wait, mostly as the service warms up: issuing
 *   showed no cost (three alternated pairs); in the same two runs fs.list
 *   at 8 connections 0.98x and 0.97x, at 1 connection 0.99x and 1.01x,
 *   fs.read 4 KiB 0.94x and 0.97x, 720 KiB 1.02x and 1.00x, first use 1.05x
 *   and 1.02x.
 *
 * (V8's --optimize-for-size saved about 30 MB of PSS over the four services
 * but halved large-read throughput and cut issues/s by a third: left off.)
 * --expose-gc lets a quiet service run one memory-reducing collection after
 * a burst (src/node/idle_gc.ts); only Strata's own code runs in a service.
 */
export const SERVICE_V8_FLAGS =
  "--no-concurrent-recompilation,--max-semi-space-size=8,--max-old-space-size=64,--expose-gc";

/**
 * V8 settings for supervisor and registry, which serve no request path
 * (they take ctl's status calls and registrations): a 1 MB young
 * generation. After 25,000 revocations and the bench's load, the two held
 * 0.8-0.9 MB less PSS together than with 8 MB (two runs, nodes side by
 * side). --optimize-for-size made start → all Healthy about 100 ms slower
 * (three interleaved runs): left off. They keep V8's worker threads for the
 * compiler: with --no-concurrent-recompilation the four held 103 MB PSS
 * after 80,000 revocations and listings against 101 (`deno task bench
 * --baseline`). Bundled, they also run in {@link LITE_MODE}.
 */
export const QUIET_SERVICE_V8_FLAGS = "--max-semi-space-size=1,--max-old-space-size=64,--expose-gc";

/**
 * V8's lite mode (no optimizing compiler; feedback kept only for code that
 * runs often), for supervisor and registry when they run bundled: their
 * code runs rarely and briefly. With the services bundled, the four held
 * 91.4 MB PSS after the bench's load against 97.2 without it, start → all
 * Healthy took 139 ms against 140, and revocations, which both follow, ran
 * at 15,077 a second against 14,978 (`deno task bench
 * --only=start,kill,revoke,conn,PSS` against the same code without it).
 * Not from their modules: lite mode changes V8's flag hash, so the code
 * cache Deno keeps of each module, shared by every program, was made anew
 * whenever a program with other flags had run last, and start → all
 * Healthy took about 100 ms longer (2026-12-02). Bundled services run
 * without the code cache ({@link BUNDLE_RUN_FLAGS}).
 */
export const LITE_MODE = "--lite-mode";

/**
 * V8 settings for strata-ctl run by `deno run` (the development and installed
 * forms): V8's defaults and --expose-gc, which ctl never uses but every
 * service has. Deno keeps each module's compiled code in the DENO_DIR, one
 * copy for every program, and that copy holds only for the V8 flags it was
 * made with; of the services' flags, only --expose-gc changes that. Without
 * it, strata-ctl and the services compiled the modules they share again each
 * time the other had run last: strata-ctl --help took 39.5 ms with the code
 * a service left, and 31-32 ms with this flag (as a user who cannot write
 * the DENO_DIR, 20 runs each).
 */
export const CTL_V8_FLAGS = "--expose-gc";

/**
 * The --v8-flags value a service runs with, from its modules or `bundled`
 * (for strata-ctl: {@link CTL_V8_FLAGS}).
 */
export function serviceV8Flags(program: Program, bundled = false): string {
  if (program === "ctl") return CTL_V8_FLAGS;
  if (program === "supervisor" || program === "registry") {
    return bundled ? `${LITE_MODE},${QUIET_SERVICE_V8_FLAGS}` : QUIET_SERVICE_V8_FLAGS;
  }
  return SERVICE_V8_FLAGS;
}

/**
 * Environment for the services (glibc's malloc; other libcs ignore it): two
 * malloc arenas instead of one per thread, so memory freed by I/O threads
 * goes back to the pool instead of sitting in a thread's arena; a fixed trim
 * threshold of 128 KiB (the default, which glibc otherwise raises to twice
 * the largest block it has mapped, so up to 2 MiB of free top stayed with
 * each arena after a burst of large reads); and no fastbins, so small
 * blocks freed after a burst coalesce into free space that can be trimmed
 * instead of pinning pages. After the bench's load and 15 s idle, the four
 * processes held 11 and 6 MB less anonymous memory (two runs, four nodes side
 * by side) at no measurable CPU per issue or per 720 KiB read. Turning
 * tcache off as well saved ~4 MB more but cost identity ~15% CPU per issue:
 * left on. Setting the trim threshold also stops glibc's dynamic mmap
 * threshold, which would leave every block over 128 KiB mapped on its own
 * (page faults on every large read), so the mmap threshold is fixed, at
 * 1 MiB: the frame pool's 1 MiB buffers, fs's read buffer and a revocation
 * set's table from 65,536 slots up are then mapped on their own and go back
 * whole when freed, instead of leaving holes in the heap that no trim can
 * return (a table that doubles leaves the old one behind as a hole:
 * malloc_info showed 6.3 MB free inside registry's 14 MB heap after 60,000
 * revocations, the largest hole 1.97 MB, the tables of 32,768 and 65,536
 * slots side by side). Against 4 MiB, after 60,000 revocations and 4 s of
 * 720 KiB reads and 15 s idle, the four processes held 98.6 and 94.5 MB
 * anonymous against 105.7 and 103.3 (two alternated pairs); 256 KiB saved
 * nothing more (98.7 and 97.3). fs's CPU per read was the same within the
 * noise (4 KiB: 37-51 against 35-48 µs; 720 KiB: 659-673 against 643-652 µs,
 * three and two alternated pairs).
 *
 * And Deno's event loop polls its sockets at every turn, as libuv does
 * (DENO_TOKIO_EVENT_INTERVAL, read by Deno's tokio runtime; its default of
 * 61 polls them once every 61 turns while the loop has work of its own). In
 * the 64 KiB unread-reads flood, fs's loop ran its heavy reads' turns (each
 * ends with an immediate, which wakes the loop again at once) for 36.7 ms
 * without an `epoll_wait` (strace), while a good client's fs.list sat unread
 * in its socket: 20-40 ms "to fs" with fs's own handling under 1 ms, and
 * once 107.6 ms. With the poll at
 * every turn, the worst listing of each of eleven runs came at the flood's
 * start (the burst of connections, see ACCEPT_BURST in server/server.ts),
 * where before it came in the middle in four of six. fs's CPU per 4 KiB
 * read at 8 connections was the same within the noise (three alternated
 * triples of 1, 8 and 61: 187-209, 163-209 and 184-229 µs).
 */
export const SERVICE_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: "2",
  DENO_TOKIO_EVENT_INTERVAL: "1",
  GLIBC_TUNABLES:
    "glibc.malloc.trim_threshold=131072:glibc.malloc.mxfast=0:glibc.malloc.mmap_threshold=1048576",
};

/** A command ready for Deno.Command. */
export interface ProgramCommand {
  cmd: string;
  args: string[];
  /** Variables to add to the inherited environment. */
  env?: Record<string, string>;
}

/**
 * The command that starts `program` under `layout` in `mode`, followed by
 * `extra` arguments for the program itself. In development the layout goes
 * on the command line; a compiled binary has it baked in.
 */
export function programCommand(
  program: Program,
  layout: Layout,
  mode: LaunchMode,
  options: PermissionOptions & { extra?: string[] } = {},
): ProgramCommand {
  const extra = options.extra ?? [];
  if (mode.kind === "compiled" || mode.kind === "installed") {
    // The layout and flags were baked into the binary by `deno task compile`,
    // or into the launcher by `deno task install`.
    const names = mode.kind === "compiled" ? BINARY_NAMES : LAUNCHER_NAMES;
    return {
      cmd: `${mode.binDir}/${names[program]}`,
      args: extra,
      ...(program === "ctl" ? {} : { env: { ...SERVICE_ENV } }),
    };
  }
  const bundled = mode.bundled === true && program !== "ctl";
  return {
    cmd: mode.deno,
    ...(program === "ctl" ? {} : { env: { ...SERVICE_ENV } }),
    args: [
      "run",
      "--quiet",
      "--no-prompt",
      // A bundle imports nothing: no import map, lockfile or npm package to resolve.
      ...(bundled ? BUNDLE_RUN_FLAGS : [`--config=${mode.root}/deno.json`]),
      `--v8-flags=${serviceV8Flags(program, bundled)}`,
      ...permissionFlags(program, layout, options),
      `${mode.root}/${entryOf(program, bundled)}`,
      ...layoutArgs(layout),
      ...extra,
    ],
  };
}

/** Where `deno task compile` writes binaries and where they will run from. */
export interface CompileOptions {
  /** The deno executable that compiles. */
  deno: string;
  /** Folder the binaries are written to. */
  outDir: string;
  /** Folder the binaries will run from (the supervisor's run grant); usually outDir. */
  binDir: string;
  /** STRATA_<NAME>_BIN overrides to allow the compiled supervisor to run. */
  overrides?: string[];
  /** A --target triple for cross-compiling. */
  target?: string;
  /**
   * strata-ctl only: folders `fs get` may save into. `deno task compile`
   * gives ".", a relative grant Deno resolves against the working directory
   * when the binary runs, so strata-ctl saves where the operator runs it.
   */
  downloads?: string[];
}

/**
 * The `deno compile` command line of a program: its permission flags, its
 * V8 flags and its layout baked in, so the binary runs with exactly those.
 * `deno compile` also applies --v8-flags to itself, and the services' heap
 * cap is too small for the type checker, so this compiles with --no-check:
 * `deno task compile` type-checks every program first (checkCommand).
 */
export function compileCommand(
  program: Program,
  layout: Layout,
  options: CompileOptions,
): ProgramCommand {
  const run = program === "supervisor"
    ? [
      ...CHILD_SERVICES.map((s) => `${options.binDir}/${BINARY_NAMES[s]}`),
      ...(options.overrides ?? []),
    ]
    : undefined;
  return {
    cmd: options.deno,
    args: [
      "compile",
      "--quiet",
      "--no-prompt",
      "--no-check",
      ...(options.target ? [`--target=${options.target}`] : []),
      `--output=${options.outDir}/${BINARY_NAMES[program]}`,
      ...(program === "ctl" ? [] : [`--v8-flags=${serviceV8Flags(program)}`]),
      ...permissionFlags(program, layout, {
        run,
        ...(program === "ctl" && options.downloads ? { downloads: options.downloads } : {}),
      }),
      `${REPO_ROOT}/${entryOf(program)}`,
      ...layoutArgs(layout),
    ],
  };
}

/**
 * `deno run`'s flags for a bundled service, instead of --config: a bundle
 * needs no import map, lockfile or npm resolution; and without Deno's code
 * cache. Against the same bundles with --config and the code cache, the
 * four held 98.6 MB PSS after the bench's load against 100 and 64.3 just
 * started against 67.8, while start → all Healthy took 158 ms against 139
 * and kill -9 fs → Healthy 110 against 93.8 (one `deno task bench
 * --baseline` run; bundled with the code cache, against the modules, start
 * took 115 ms against 138). A bundle's code is then never written to the
 * DENO_DIR either, which the services cannot write where installed, and
 * which a bundle in a temp dir (the bench's, a test's) would otherwise fill
 * with an entry under a path never used again.
 */
export const BUNDLE_RUN_FLAGS: readonly string[] = ["--no-config", "--no-code-cache"];

/**
 * The `deno bundle` command line that writes a service of the checkout at
 * `root` as one file under `outRoot` (the file {@link entryOf} names when
 * bundled; `outRoot` may be `root`): its modules and its npm packages
 * inside, minified with names kept (a stack trace names the functions),
 * and its source map beside it, main.js.map, which the bundle does not
 * name: Deno reads a map the bundle names at every start, not only for a
 * stack trace, and the four services held 3.1-5.1 MB more PSS after a load
 * with it (three alternated pairs, a scratch driver). `--frozen-lockfile`
 * refuses a package that differs from deno.lock.
 */
export function bundleCommand(
  deno: string,
  program: Exclude<Program, "ctl">,
  root: string,
  outRoot: string,
): ProgramCommand {
  return {
    cmd: deno,
    args: [
      "bundle",
      "--quiet",
      "--frozen-lockfile",
      `--config=${root}/deno.json`,
      "--platform=deno",
      "--packages=bundle",
      "--minify",
      "--keep-names",
      "--sourcemap=external",
      `--output=${outRoot}/${entryOf(program, true)}`,
      `${root}/${entryOf(program)}`,
    ],
  };
}

/**
 * The `deno check` command line for every program, run once before
 * compiling with the compiler's own (uncapped) heap; `--frozen` refuses a
 * dependency that differs from deno.lock.
 */
export function checkCommand(deno: string, programs: readonly Program[]): ProgramCommand {
  return {
    cmd: deno,
    args: [
      "check",
      "--quiet",
      "--frozen",
      `--config=${REPO_ROOT}/deno.json`,
      ...programs.map((p) => `${REPO_ROOT}/${entryOf(p)}`),
    ],
  };
}
