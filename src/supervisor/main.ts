/**
 * supervisor: the process entry. Creates the runtime dir, serves
 * supervisor.sock, starts registry and identity side by side and fs once
 * identity is Healthy, and on SIGINT/SIGTERM stops them in reverse order.
 * @module
 */

import { Audit } from "../runtime/audit.ts";
import { posix } from "../runtime/paths.ts";
import {
  CHILD_SERVICES,
  type ChildService,
  type Layout,
  layoutArgs,
  runtimeFiles,
  socketPath,
  stateFiles,
} from "../runtime/config.ts";
import { parseLayoutArgs } from "../runtime/layout_args.ts";
import {
  BUNDLED,
  type ProgramCommand,
  programCommand,
  REPO_ROOT,
  SERVICE_ENV,
} from "../runtime/command.ts";
import { ensureDir, holdLock, makeDir } from "../runtime/files.ts";
import { emitLines, logger, setLogFormat } from "../runtime/log.ts";
import { binOverrideVar } from "../runtime/permissions.ts";
import { runMain, runService } from "../node/service.ts";
import { VERSION } from "../runtime/version.ts";
import { LogBook } from "./logs.ts";
import { Manager, type ServiceSpec } from "./manager.ts";
import { DEFAULT_DRAIN_MS, supervisorMethods } from "./service.ts";

/** `--help`: what the supervisor does and takes. */
const HELP = `supervisor ${VERSION}: starts registry, identity and fs, restarts them when they
crash, and stops them in order on Ctrl-C or SIGTERM.

Usage: deno task start [--json]      (a compiled one: supervisor [--json])

Options:
  --json      log lines as JSON even on a terminal (they are JSON when not on one)
  --help      this help
  --version   the version

Layout (set by deno task start from STRATA_RUNTIME_DIR, STRATA_STATE_DIR, STRATA_NODE_ID,
STRATA_FS_ROOTS and STRATA_GROUP_ACCESS=1): --runtime-dir DIR --state-dir DIR --node-id ID
--fs-roots DIR:DIR --group-access
A tcp:// endpoint with TLS besides a socket (STRATA_FS_LISTEN, STRATA_TLS_CERT, STRATA_TLS_KEY,
STRATA_TLS_CA): --fs-listen tcp://HOST:PORT --tls-cert FILE --tls-key FILE [--tls-ca FILE]
Cluster mode (STRATA_CLUSTER, STRATA_ETCD_ENDPOINTS, STRATA_CLUSTER_ROOT, STRATA_CLUSTER_CA,
STRATA_CLUSTER_PEERS, STRATA_PARTITION_BOUND_MS, STRATA_ETCD_CA, STRATA_ETCD_CERT,
STRATA_ETCD_KEY, STRATA_ETCD_SERVER_NAME; docs/cluster.md): --cluster NAME --etcd-endpoints URLS
--cluster-root FILE [--cluster-ca FILE, required with a tcp:// endpoint: mutual TLS] ...

Each service's log lines are also kept in <state dir>/logs/<service>.log (0600, rotated at
4 MiB): strata-ctl logs [SERVICE] [-f] shows them.`;

/** Whether stderr is a terminal; false when Deno cannot tell. */
function stderrIsTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

/**
 * What each service needs Healthy before it starts. fs waits for identity:
 * it judges tokens by the key set and revocation list identity publishes
 * before it answers its health check, so an fs started earlier could read a
 * list from before a revocation identity has yet to write again. identity
 * needs nothing of the registry (the supervisor announces it there whenever
 * the registry comes up), so the two start side by side, each Deno start-up
 * on its own core.
 */
const DEPENDENCIES: Record<ChildService, ChildService[]> = {
  registry: [],
  identity: [],
  fs: ["identity"],
};

function envOrUndefined(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The command of a child: STRATA_<NAME>_BIN if set; else, installed by
 * `deno task install` (--launchers=DIR), the child's launcher in DIR; else,
 * for a compiled supervisor, the binary next to it; else `deno run` of the
 * source, or of the child's bundle when this supervisor runs from its own.
 */
function childCommand(name: ChildService, layout: Layout, launchers?: string): ProgramCommand {
  const override = envOrUndefined(binOverrideVar(name));
  if (override) return { cmd: override, args: layoutArgs(layout), env: { ...SERVICE_ENV } };
  if (launchers) return programCommand(name, layout, { kind: "installed", binDir: launchers });
  if (Deno.build.standalone) {
    return programCommand(name, layout, {
      kind: "compiled",
      binDir: posix.dirname(Deno.execPath()),
    });
  }
  return programCommand(name, layout, {
    kind: "dev",
    deno: Deno.execPath(),
    root: REPO_ROOT,
    bundled: BUNDLED,
  });
}

/** The children's lines waiting to be passed on to stderr. */
const passing: string[] = [];

/** Passes a child's line on to stderr: the lines of one chunk go out in one write. */
function passOn(_service: string, line: string): void {
  if (passing.push(line) === 1) queueMicrotask(() => emitLines(passing.splice(0)));
}

/** The last error a service logged (its message and error), if one is among its recent lines. */
function lastError(logs: LogBook, service: string): string | undefined {
  const { lines } = logs.read({ service, lines: 50 });
  for (const { line } of lines.toReversed()) {
    try {
      const o = JSON.parse(line);
      if (o?.level === "error") return o.error ? `${o.msg}: ${o.error}` : String(o.msg);
    } catch { /* not JSON */ }
  }
  return undefined;
}

if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
  console.log(HELP);
  Deno.exit(0);
}

await runMain("supervisor", async () => {
  const started = Date.now();
  const { layout, options } = parseLayoutArgs(Deno.args, {
    launchers: { type: "string" },
    json: { type: "boolean" },
  });
  const launchers = options.launchers as string | undefined;
  // A person at a terminal reads lines; journald, files and pipes get JSON.
  setLogFormat(options.json !== true && stderrIsTerminal() ? "human" : "json");
  const log = logger("supervisor");
  const dirMode = layout.groupAccess ? 0o750 : 0o700;
  makeDir(layout.runtimeDir, dirMode);
  // One node per runtime dir, claimed before anything is started or written
  // (the dir's mode too, which a second start with other settings would
  // change): a second start would otherwise start its own children, which
  // write the running node's key set and revocation list before their
  // sockets refuse them.
  const lock = runtimeFiles(layout).supervisorLock;
  await holdLock(
    lock,
    `another supervisor is running with the runtime dir ${layout.runtimeDir} (it holds ${lock}); ` +
      "stop it first (strata-ctl status shows it), or give this node a runtime dir of its own",
  );
  ensureDir(layout.runtimeDir, dirMode);
  const specs: ServiceSpec[] = CHILD_SERVICES.map((name) => ({
    name,
    deps: DEPENDENCIES[name],
    command: childCommand(name, layout, launchers),
    endpoint: `unix://${socketPath(layout, name)}`,
  }));
  const audit = new Audit({ path: stateFiles(layout).audit, program: "supervisor" });
  const logs = new LogBook(layout, CHILD_SERVICES, passOn);
  const manager = new Manager({ specs, audit, log, logs });
  audit.event("svc.start", { name: "supervisor", pid: Deno.pid });
  // The children start while the supervisor sets up its own socket: each Deno start-up is
  // mostly loading code, which they then do side by side with it.
  manager.begin();
  await runService({
    service: "supervisor",
    layout,
    supervised: false,
    light: true,
    audit,
    methods: () =>
      supervisorMethods({
        manager,
        logs,
        audit: stateFiles(layout),
        nodeId: layout.nodeId,
        startedAt: started,
      }),
    onStop: async () => {
      try {
        Deno.removeSync(runtimeFiles(layout).ready);
      } catch { /* not ready yet */ }
      await manager.stopAll(DEFAULT_DRAIN_MS);
      logs.close();
    },
  });
  await manager.startAll();
  const ms = Date.now() - started;
  const out = (line: string) => console.log(`strata: ${line}`);
  const notHealthy = () => manager.list().filter((s) => s.state !== "Healthy");
  const bad = notHealthy();
  if (bad.length === 0) {
    out(`all services healthy (${manager.order.join(", ")}) in ${ms} ms; node ${layout.nodeId}`);
  } else {
    out(
      `started in ${ms} ms, but not everything is healthy: ${
        bad.map((s) => `${s.name} ${s.state}`).join(", ")
      }`,
    );
    for (const s of bad) {
      const why = lastError(logs, s.name);
      if (why) out(`${s.name}'s last error: ${why} (strata-ctl logs ${s.name} shows more)`);
    }
  }
  out(`sockets in ${layout.runtimeDir}; operator token in ${stateFiles(layout).operatorToken}`);
  out(
    Deno.build.standalone || launchers
      ? "try: strata-ctl svc list"
      : "try: deno task ctl svc list   (Ctrl-C stops everything)",
  );
  // Readiness for systemd (ExecStartPost waits for this file): every service Healthy.
  while (notHealthy().length > 0) await new Promise((r) => setTimeout(r, 250));
  Deno.writeTextFileSync(runtimeFiles(layout).ready, `${Deno.pid}\n`, { mode: 0o644 });
});
