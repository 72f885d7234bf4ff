/**
 * strata-ctl: the operator's CLI.
 *
 * Raw form (scripts depend on it, it stays as it is):
 *   strata-ctl [-token T | --token T] METHOD ['{json params}']
 * prints the response envelope as JSON; exit 0 when ok, 1 when refused, 2 on
 * a usage or connection error, with one line on stderr saying what to do.
 * @module
 */

import { StrataError } from "../ipc/errors.ts";
import { checkLayout, DEFAULT_LAYOUT, type Layout } from "../runtime/config.ts";
import { chooseToken, requestOnce, unreachableAdvice } from "./connect.ts";
import { METHODS, nearest } from "./methods.ts";

/** Exit codes. */
export const EXIT = { OK: 0, REFUSED: 1, USAGE: 2 } as const;

/** A usage error: printed as one line, exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The parsed command line. */
export interface CtlArgs {
  layout: Layout;
  token?: string;
  timeoutMs: number;
  json: boolean;
  help: boolean;
  positionals: string[];
}

const LAYOUT_FLAGS: Record<string, keyof Layout> = {
  "runtime-dir": "runtimeDir",
  "state-dir": "stateDir",
  "node-id": "nodeId",
};

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
      out.positionals.push(...argv.slice(i + 1));
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
    else if (name === "help" || name === "h") out.help = true;
    else if (LAYOUT_FLAGS[name] !== undefined) {
      (layout as unknown as Record<string, string>)[LAYOUT_FLAGS[name]] = value();
    } else if (name === "fs-roots" || name === "socket-gid") value();
    else if (out.positionals.length > 0) out.positionals.push(arg); // a subcommand's own option
    else throw new UsageError(`unknown option ${arg}; see strata-ctl --help`);
  }
  out.layout = checkLayout(layout);
  return out;
}

/** The text of `strata-ctl --help`. */
export function helpText(): string {
  const width = Math.max(...METHODS.map((m) => m.method.length));
  const lines = METHODS.map((m) => {
    const example = m.example ? ` '${JSON.stringify(m.example)}'` : "";
    const lock = m.protected ? "*" : " ";
    return `  ${m.method.padEnd(width)} ${lock} ${m.summary}\n  ${
      " ".repeat(width + 3)
    }e.g. strata-ctl ${m.method}${example}`;
  });
  return [
    "strata-ctl: talk to a Strata node",
    "",
    "Usage:",
    "  strata-ctl [-token T | --token T] METHOD ['{json params}']",
    "",
    "Prints the response envelope as JSON. Exit 0 when ok, 1 when refused,",
    "2 on a usage or connection error.",
    "",
    "Token: -token, else $STRATA_TOKEN, else the operator token in the state dir",
    "when you may read it. Methods marked * need a token with that right.",
    "",
    "Methods:",
    ...lines,
    "",
    "Options: --token T, --timeout MS, --runtime-dir DIR, --state-dir DIR, --help",
  ].join("\n");
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
  const service = method.split(".")[0];
  const known = METHODS.map((m) => m.method);
  if (!known.includes(method) && known.some((m) => m.startsWith(service + "."))) {
    const near = nearest(method, known);
    throw new UsageError(
      `unknown method ${method}${
        near ? `; did you mean ${near}?` : ""
      } (strata-ctl --help lists them)`,
    );
  }
  const params = parseParams(paramsText);
  let res;
  try {
    res = await requestOnce(args.layout, method, params, {
      token: chooseToken(args.layout, args.token),
      timeoutMs: args.timeoutMs,
    });
  } catch (err) {
    if (err instanceof StrataError && err.errorName === "UNAVAILABLE") {
      throw new UsageError(unreachableAdvice(service, err));
    }
    throw err;
  }
  console.log(JSON.stringify(res, null, 2));
  return res.ok ? EXIT.OK : EXIT.REFUSED;
}

/** Runs strata-ctl with `argv`; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    const args = parseCtlArgs(argv);
    if (args.help || args.positionals.length === 0) {
      console.log(helpText());
      return args.help ? EXIT.OK : EXIT.USAGE;
    }
    if (args.positionals[0].includes(".")) return await runRaw(args);
    const near = nearest(args.positionals[0], METHODS.map((m) => m.method));
    throw new UsageError(
      `unknown command ${args.positionals[0]}${
        near ? `; did you mean ${near}?` : ""
      } (strata-ctl --help lists the methods)`,
    );
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`strata-ctl: ${err.message}`);
      return EXIT.USAGE;
    }
    console.error(`strata-ctl: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.USAGE;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
