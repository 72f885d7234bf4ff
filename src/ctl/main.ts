/**
 * strata-ctl: the operator's CLI.
 *
 * Commands that read like systemctl or kubectl (`strata-ctl status`,
 * `strata-ctl svc list`, `strata-ctl fs get PATH`; see commands.ts), and
 * beside them the raw form, which scripts depend on and which stays as it is:
 *   strata-ctl [-token T | --token T] METHOD ['{json params}']
 * prints the response envelope as JSON; exit 0 when ok, 1 when refused, 2 on
 * a usage or connection error, with one line on stderr saying what to do.
 * A first word with a dot is a METHOD; any other is a command.
 * @module
 */

import { StrataError } from "../wire/errors.ts";
import { checkLayout, type ChildService, DEFAULT_LAYOUT, type Layout } from "../runtime/config.ts";
import { COMMANDS, helpText } from "./commands.ts";
import { COMPLETE_COMMAND } from "./dynamic.ts";
import { chooseToken, envVar, requestOnce, unreachableAdvice } from "./connect.ts";
import { type DispatchArgs, runCommand } from "./dispatch.ts";
import { CtlError, errorLine, EXIT, UsageError } from "./errors.ts";
import { writeAll } from "./files.ts";
import { METHODS, nearest } from "./methods.ts";

export { EXIT, helpText, UsageError };

/** The parsed command line (the same shape the subcommands are run with). */
export type CtlArgs = DispatchArgs;

const LAYOUT_FLAGS: Record<string, keyof Layout> = {
  "runtime-dir": "runtimeDir",
  "state-dir": "stateDir",
  "node-id": "nodeId",
};

const CLUSTER_FLAGS = [
  "cluster",
  "etcd-endpoints",
  "cluster-root",
  "cluster-ca",
  // Accepted and ignored: the etcd client read the etcd3 package's proto files until 2026-12-04.
  "etcd-proto",
  "partition-bound-ms",
  "cluster-peers",
  "etcd-ca",
  "etcd-cert",
  "etcd-key",
  "etcd-server-name",
];

/**
 * Parses global options anywhere before or after the command. Accepts the
 * Go-style `-token T` of the seed CLI as well as `--token T` and `--token=T`.
 */
export function parseCtlArgs(argv: string[]): CtlArgs {
  const layout: Layout = { ...DEFAULT_LAYOUT, fsRoots: [] };
  const out: CtlArgs = { layout, timeoutMs: 10_000, json: false, help: false, positionals: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      // A subcommand parses its own words, and `--` still means "no more options" there.
      const sub = out.positionals.length > 0 && !out.positionals[0].includes(".");
      out.positionals.push(...(sub ? ["--"] : []), ...argv.slice(i + 1));
      break;
    }
    const m = /^--?([a-z][a-z-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) {
      out.positionals.push(arg);
      continue;
    }
    const [, name, inline] = m;
    const value = () => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (name === "token") out.token = value();
    else if (name === "timeout") {
      const ms = Number(value());
      if (!Number.isSafeInteger(ms) || ms <= 0) {
        throw new UsageError("--timeout takes milliseconds");
      }
      out.timeoutMs = ms;
    } else if (name === "json") out.json = true;
    else if (name === "node") out.node = value(); // cluster mode: call that node's services
    else if (name === "help" || name === "h") out.help = true;
    else if (name === "version" && out.positionals.length === 0) out.positionals.push("version");
    else if (LAYOUT_FLAGS[name] !== undefined) {
      (layout as unknown as Record<string, string>)[LAYOUT_FLAGS[name]] = value();
    } else if (name === "fs-roots") value(); // the launcher's layout; ctl serves no files
    else if (name === "group-access") continue;
    else if (/^tls-(cert|key|ca)$/.test(name)) {
      // The CA checks tcp:// servers; cert and key come with a layout that has listeners.
      (layout.tls ??= {})[name.slice(4) as "cert" | "key" | "ca"] = value();
    } else if (/^[a-z]+-listen$/.test(name)) {
      // The layout's tcp:// endpoints (the registry may resolve a service to one).
      (layout.listen ??= {})[name.slice(0, -7) as ChildService] = value();
    } else if (CLUSTER_FLAGS.includes(name)) {
      // Cluster mode (docs/cluster.md): `cluster join` and `leave` write to its etcd.
      const c = (layout.cluster ??= { name: "", etcd: [], root: "" });
      const v = value();
      if (name === "cluster") c.name = v;
      else if (name === "etcd-endpoints") c.etcd = v.split(",").filter((e) => e !== "");
      else if (name === "cluster-root") c.root = v;
      else if (name === "cluster-ca") c.ca = v;
      else if (name === "partition-bound-ms") c.partitionBoundMs = Number(v);
      else if (name === "cluster-peers") c.peers = v.split(",").filter((p) => p !== "");
      else if (name === "etcd-ca") c.etcdCa = v;
      else if (name === "etcd-cert") c.etcdCert = v;
      else if (name === "etcd-key") c.etcdKey = v;
      else if (name === "etcd-server-name") c.etcdServerName = v;
    } else if (name === "looked-in") (out.lookedIn ??= []).push(value()); // set by the launcher
    else if (out.positionals.length > 0) out.positionals.push(arg); // a subcommand's own option
    else throw new UsageError(`unknown option ${arg}; see strata-ctl --help`);
  }
  out.layout = checkLayout(layout);
  return out;
}

function parseParams(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UsageError(
      `params are not valid JSON (${(err as Error).message}); quote them, e.g. '{"path":"/tmp"}'`,
    );
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new UsageError('params must be a JSON object, e.g. \'{"path":"/tmp"}\'');
  }
  return v as Record<string, unknown>;
}

/** Runs the raw form: one method, the envelope printed as JSON. */
export async function runRaw(args: CtlArgs): Promise<number> {
  const [method, paramsText, ...extra] = args.positionals;
  if (extra.length > 0) {
    throw new UsageError(`unexpected argument ${extra[0]}; params go in one quoted JSON object`);
  }
  // Any service.action goes to the server, which answers for its own
  // methods: a method added to a service needs nothing of strata-ctl.
  const service = method.split(".")[0];
  const params = parseParams(paramsText);
  let res;
  try {
    res = await requestOnce(args.layout, method, params, {
      token: chooseToken(args.layout, args.token),
      timeoutMs: args.timeoutMs,
      node: args.node,
    });
  } catch (err) {
    if (err instanceof StrataError && err.errorName === "UNAVAILABLE") {
      throw new CtlError(EXIT.USAGE, {
        code: err.code,
        name: "UNAVAILABLE",
        ...unreachableAdvice(service, err, { lookedIn: args.lookedIn }),
        ...(err.details ? { details: err.details } : {}),
      });
    }
    throw err;
  }
  console.log(JSON.stringify(res, null, 2));
  if (!res.ok && /^method: unknown method /.test(res.error.message)) {
    const near = nearest(method, METHODS.map((m) => m.method));
    if (near) console.error(errorLine(`unknown method ${method}; did you mean ${near}?`));
  }
  return res.ok ? EXIT.OK : EXIT.REFUSED;
}

const encoder = new TextEncoder();

/** Whether a stream is a terminal; false when Deno cannot tell. */
function isTerminal(stream: { isTerminal(): boolean }): boolean {
  try {
    return stream.isTerminal();
  } catch {
    return false;
  }
}

/** Runs strata-ctl with `argv`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    const args = parseCtlArgs(argv);
    if (args.positionals.length === 0) {
      console.log(helpText());
      return args.help ? EXIT.OK : EXIT.USAGE;
    }
    if (args.positionals[0].includes(".")) {
      if (args.help) {
        console.log(helpText());
        return EXIT.OK;
      }
      return await runRaw(args);
    }
    return await runCommand(args, {
      // The hidden __complete, which the completion scripts run, besides the listed commands.
      entries: [...COMMANDS, COMPLETE_COMMAND],
      io: {
        stdout: (text) => writeAll(Deno.stdout, encoder.encode(text)),
        stderr: (text) => Deno.stderr.writeSync(encoder.encode(text)),
        stdoutIsTerminal: isTerminal(Deno.stdout),
        stderrIsTerminal: isTerminal(Deno.stderr),
        noColor: envVar("NO_COLOR"),
      },
    });
  } catch (err) {
    if (err instanceof CtlError) {
      console.error(errorLine(err.message, err.hint));
      return err.exit;
    }
    console.error(errorLine(err instanceof Error ? err.message : String(err)));
    return EXIT.USAGE;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
