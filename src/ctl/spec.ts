/**
 * The shape of a strata-ctl subcommand: its name, summary, arguments,
 * options, examples and what it runs. Help, "did you mean", argument
 * parsing and shell completion are all derived from these declarations.
 * @module
 */

import type { Style } from "./format.ts";
import type { Session } from "./session.ts";

/**
 * What a shell may offer for a value: service names (any service, or the
 * supervised ones), local files, strata-ctl's commands, remote paths (asked
 * of fs), cap_ids (asked of identity), nothing, or fixed words.
 */
export type Completion =
  | "services"
  | "remote"
  | "caps"
  | "supervised"
  | "files"
  | "commands"
  | "none"
  | readonly string[];

/** An option of one subcommand. */
export interface OptionSpec {
  /** Long name without dashes ("path-prefix"). */
  name: string;
  /** One-letter alias without the dash ("f"). */
  short?: string;
  /** The value's placeholder ("DURATION") when it takes one; a flag has none. */
  value?: string;
  summary: string;
  /** The command refuses to run without it. */
  required?: boolean;
  /** What completes its value (default: nothing). */
  complete?: Completion;
}

/** A positional argument. */
export interface ArgSpec {
  /** Placeholder in usage lines ("NAME"). */
  name: string;
  optional?: boolean;
  /** Takes every remaining word. */
  variadic?: boolean;
  /** What completes it (default: nothing). */
  complete?: Completion;
}

/** What a subcommand gets to work with. */
export interface Context {
  session: Session;
  /** How stdout is painted. */
  style: Style;
  /** Whether --json was given. */
  json: boolean;
  /** Whether stderr is a terminal (progress bars go there). */
  stderrIsTerminal: boolean;
  /** Writes text to stderr as is (no newline added). */
  writeErr(text: string): void;
  /** The clock, for relative times. */
  now(): number;
}

/** A subcommand's parsed words. */
export interface Input {
  args: string[];
  options: Record<string, string | boolean | undefined>;
}

/**
 * What a subcommand produced: `data` is printed as JSON with --json, `text`
 * otherwise (either may be absent, e.g. when the bytes went to stdout).
 */
export interface Outcome {
  data?: unknown;
  text?: string;
  /** Exit code when it is not 0 (e.g. `token inspect` of an invalid token). */
  exit?: number;
}

/** One subcommand. */
export interface Command {
  name: string;
  summary: string;
  args: readonly ArgSpec[];
  options: readonly OptionSpec[];
  /** Paragraph lines shown by --help under the usage line. */
  description?: readonly string[];
  /** Complete command lines, at least one. */
  examples: readonly string[];
  run(ctx: Context, input: Input): Promise<Outcome>;
}

/** A family of subcommands (`svc`, `token`, `fs`, `registry`). */
export interface Group {
  name: string;
  summary: string;
  commands: readonly Command[];
}

/** An entry of the top-level command table. */
export type Entry = Command | Group;

/** Whether an entry is a group of subcommands. */
export function isGroup(entry: Entry): entry is Group {
  return "commands" in entry;
}

/** The words that name a command: ["fs", "get"] or ["status"]. */
export function commandPath(command: Command, group?: Group): string[] {
  return group ? [group.name, command.name] : [command.name];
}

/** The usage line: "strata-ctl fs get PATH [DEST] [--force]". */
export function usageLine(command: Command, group?: Group): string {
  const args = command.args.map((a) => {
    const word = a.variadic ? `${a.name}...` : a.name;
    return a.optional ? `[${word}]` : word;
  });
  const opts = command.options.map((o) => {
    const flag = o.value ? `--${o.name} ${o.value}` : `--${o.name}`;
    return o.required ? flag : `[${flag}]`;
  });
  return ["strata-ctl", ...commandPath(command, group), ...args, ...opts].join(" ");
}

/** The options every command takes (parsed by main.ts's parseCtlArgs), for help and completion. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  {
    name: "token",
    value: "T",
    summary: "the token to present (default: $STRATA_TOKEN, else the operator token)",
  },
  { name: "json", summary: "print the machine form (JSON) instead of text" },
  { name: "timeout", value: "MS", summary: "how long to wait for each answer (default 10000)" },
  {
    name: "node",
    value: "NAME",
    summary: "cluster mode: call that node's services over tcp:// (docs/cluster.md)",
  },
  {
    name: "runtime-dir",
    value: "DIR",
    summary: "where the node's sockets are",
    complete: "files",
  },
  {
    name: "state-dir",
    value: "DIR",
    summary: "where the operator token is",
    complete: "files",
  },
  {
    name: "tls-ca",
    value: "FILE",
    summary: "the CA (PEM) that tcp:// services' certificates must chain to",
    complete: "files",
  },
  {
    name: "tls-cert",
    value: "FILE",
    summary: "cluster mode: the certificate (PEM) --node presents to other nodes (mutual TLS)",
    complete: "files",
  },
  {
    name: "tls-key",
    value: "FILE",
    summary: "its private key (PEM; the node's key, readable by the operators' group)",
    complete: "files",
  },
  { name: "help", short: "h", summary: "this help; after a command, that command's help" },
];
