/**
 * The development launcher behind `deno task start` and `deno task ctl`.
 *
 * It works out the layout from the environment (STRATA_RUNTIME_DIR,
 * STRATA_STATE_DIR, STRATA_NODE_ID, STRATA_FS_ROOTS, STRATA_GROUP_ACCESS=1,
 * STRATA_<SERVICE>_LISTEN, STRATA_TLS_CERT / _KEY / _CA, and cluster mode's
 * STRATA_CLUSTER, STRATA_ETCD_ENDPOINTS, STRATA_CLUSTER_ROOT / _CA) with
 * development defaults, then starts the program with `deno run` and exactly
 * the flags src/runtime/permissions.ts gives it. Defaults: the runtime dir is
 * /run/strata when this user can write there, else $XDG_RUNTIME_DIR/strata,
 * else /tmp/strata-$USER; the state dir is $XDG_STATE_HOME/strata (or
 * ~/.local/state/strata); fs exports /tmp, so the README's examples
 * work unchanged.
 *
 * The supervisor prints readable log lines on a terminal and JSON otherwise
 * (`deno task start --json` asks for JSON anyway); `--help` and `--version`
 * are passed on to the program.
 *
 * Usage: deno run <launcher flags> scripts/launch.ts supervisor|ctl [args...]
 * @module
 */

import { programCommand, REPO_ROOT } from "../src/runtime/command.ts";
import {
  checkLayout,
  CHILD_SERVICES,
  clusterFromEnv,
  ConfigError,
  type Layout,
  transportFromEnv,
} from "../src/runtime/config.ts";
import {
  fallbackRuntimeDirs,
  findRuntimeDir,
  SYSTEM_RUNTIME_DIR,
  userStateDir,
} from "../src/runtime/locate.ts";
import { binOverrideVar, type Program } from "../src/runtime/permissions.ts";
import { posix } from "../src/runtime/paths.ts";

/**
 * This Deno executable, as the one path the task lines grant with `--allow-run`. Deno matches a
 * run grant against the path as spawned, without resolving links, so granting
 * `Deno.execPath()` took a `$(deno eval ...)` in the task line: a third Deno process, about
 * 64 ms of every `deno task ctl`. Linux's /proc/self/exe is, in the spawned process until its
 * exec, the same executable (and `ps` shows the program's command line starting with it).
 */
const SELF = "/proc/self/exe";

function getEnv(name: string): string | undefined {
  return Deno.env.get(name) || undefined;
}

/** Whether this user can create and write files in `dir`. */
function writable(dir: string): boolean {
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const probe = Deno.makeTempFileSync({ dir, prefix: ".probe-" });
    Deno.removeSync(probe);
    return true;
  } catch {
    return false;
  }
}

/** Where strata-ctl looked for a running supervisor, for its advice when none was found. */
const lookedIn: string[] = [];

/**
 * The runtime dir: STRATA_RUNTIME_DIR, else /run/strata when usable, else
 * the per-user fallback. strata-ctl looks for a running supervisor in each
 * of them (the supervisor may have been started with another
 * XDG_RUNTIME_DIR) and, finding none, says where it looked.
 */
function runtimeDir(program: Program): string {
  const explicit = getEnv("STRATA_RUNTIME_DIR");
  if (explicit) return explicit;
  if (program === "ctl") {
    const found = findRuntimeDir();
    lookedIn.push(...found.lookedIn);
    return found.dir ?? SYSTEM_RUNTIME_DIR;
  }
  return writable(SYSTEM_RUNTIME_DIR) ? SYSTEM_RUNTIME_DIR : fallbackRuntimeDirs()[0];
}

function stateDir(): string {
  return getEnv("STRATA_STATE_DIR") ?? userStateDir();
}

/**
 * The folder strata-ctl runs in, and the only one it may write (for `fs
 * get`): where the user typed the command. A deno task runs in the repo
 * root and passes the user's folder as INIT_CWD. Nothing is granted for
 * "/" or a path Deno's flags cannot carry (a comma); `fs get` then says to
 * cd elsewhere or use `fs cat PATH > DEST`.
 */
function userDir(): { cwd: string; downloads: string[] } {
  const cwd = getEnv("INIT_CWD") ?? Deno.cwd();
  const grantable = cwd.startsWith("/") && cwd !== "/" && !cwd.includes(",");
  return { cwd, downloads: grantable ? [cwd] : [] };
}

/** The value of `--name VALUE` or `--name=VALUE` among `args`. */
function optionValue(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
  }
  return undefined;
}

/** strata-ctl's command: the first word that is neither an option nor a global option's value. */
function commandWord(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (/^--?(token|timeout)$/.test(args[i])) i++;
    else if (!args[i].startsWith("-")) return args[i];
  }
  return undefined;
}

const [program, ...rest] = Deno.args;
if (program !== "supervisor" && program !== "ctl") {
  console.error("usage: launch.ts supervisor|ctl [args...]");
  Deno.exit(2);
}
// `--help` and `--version` only print: no runtime dir is probed (or created) for them.
const onlyAsks = rest.some((a) => a === "--help" || a === "-h" || a === "--version");
const layout: Layout = envLayout(program, onlyAsks);

/** STRATA_GROUP_ACCESS: 1 is on; unset, empty or 0 is off; anything else is refused, not taken for off. */
function groupAccessFromEnv(): boolean {
  const v = getEnv("STRATA_GROUP_ACCESS");
  if (v === undefined || v === "" || v === "0") return false;
  if (v === "1") return true;
  throw new ConfigError(`--group-access: must be 1 (on) or 0 (off), not ${JSON.stringify(v)}`);
}

/**
 * The layout from the STRATA_* variables; a bad one is the operator's input: one line naming the
 * setting and the fix, exit 2 (as strata-ctl's usage errors), not an uncaught exception.
 */
function envLayout(program: Program, onlyAsks: boolean): Layout {
  // strata-ctl's own --tls-cert, --cluster-ca, --cluster-peers, ... (its --help lists them) win
  // over their variables, so that its grants name the files and hosts it was given.
  const settings = (name: string) =>
    (program === "ctl"
      ? optionValue(rest, `--${name.slice("STRATA_".length).toLowerCase().replaceAll("_", "-")}`)
      : undefined) ?? getEnv(name);
  try {
    return checkLayout({
      runtimeDir: onlyAsks ? SYSTEM_RUNTIME_DIR : runtimeDir(program),
      stateDir: stateDir(),
      nodeId: getEnv("STRATA_NODE_ID") ?? "local",
      fsRoots: (getEnv("STRATA_FS_ROOTS") ?? "/tmp").split(":"),
      ...(groupAccessFromEnv() ? { groupAccess: true } : {}),
      ...transportFromEnv(settings),
      ...clusterFromEnv(settings),
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // The launcher reads each option from its variable: name the variable the operator sets.
    const option = /^--([a-z-]+)/.exec(err.message)?.[1];
    const variable = option ? ` (set by STRATA_${option.toUpperCase().replaceAll("-", "_")})` : "";
    console.error(`strata: ${err.message}${variable}`);
    Deno.exit(2);
  }
}
const overrides = CHILD_SERVICES.map((s) => getEnv(binOverrideVar(s))).filter((x) =>
  x !== undefined
);
const user = program === "ctl" ? userDir() : undefined;
// `strata-ctl cluster ...` reads and writes the operator's cluster folder (--dir, default here)
// and runs openssl; no other command gets either.
const clusterDir = program === "ctl" && commandWord(rest) === "cluster" && user
  ? posix.resolve(user.cwd, optionValue(rest, "--dir") ?? ".")
  : undefined;
const { cmd, args, env } = programCommand(program, layout, {
  kind: "dev",
  deno: Deno.execPath(),
  root: REPO_ROOT,
}, {
  run: program === "supervisor" ? [Deno.execPath(), ...overrides] : undefined,
  downloads: user?.downloads,
  clusterDir,
  extra: [...lookedIn.map((l) => `--looked-in=${l}`), ...rest],
});

// `cmd` is this Deno (a dev launch): run it as SELF, the one path the task grants.
const self = cmd === Deno.execPath();
let child: Deno.ChildProcess;
try {
  child = new Deno.Command(self ? SELF : cmd, {
    args,
    ...(env ? { env } : {}),
    ...(user ? { cwd: user.cwd } : {}),
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
} catch (err) {
  if (!(self && err instanceof Deno.errors.NotFound)) throw err;
  console.error(
    `strata: ${SELF} is missing: deno task start and ctl run on Linux; elsewhere, ` +
      `deno task install makes launchers that start each program with its flags (docs/operations.md)`,
  );
  Deno.exit(2);
}
// Ctrl-C reaches the child too (same process group); wait for it to finish.
Deno.addSignalListener("SIGINT", () => {});
Deno.addSignalListener("SIGTERM", () => child.kill("SIGTERM"));
Deno.exit((await child.status).code);
