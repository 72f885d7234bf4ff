/**
 * Running a subcommand: find it in the table (suggesting the nearest name for
 * a typo), parse its arguments and options, run it, and print its outcome as
 * text or JSON, or its failure as one line (and as JSON with --json).
 * @module
 */

import type { Layout } from "../runtime/config.ts";
import {
  CtlError,
  type ErrorJson,
  errorLine,
  EXIT,
  unknownName,
  usage,
  UsageError,
} from "./errors.ts";
import { colorWanted } from "./format.ts";
import { commandHelp, groupHelp } from "./help.ts";
import { nearest } from "./methods.ts";
import { refuseEmptyToken } from "./connect.ts";
import { Session } from "./session.ts";
import {
  type Command,
  commandPath,
  type Context,
  type Entry,
  type Group,
  type Input,
  isGroup,
  usageLine,
} from "./spec.ts";

/** The global part of the command line, as main.ts's parseCtlArgs returns it. */
export interface DispatchArgs {
  layout: Layout;
  token?: string;
  timeoutMs: number;
  json: boolean;
  help: boolean;
  positionals: string[];
  /** Where the launcher looked for the supervisor (its hidden --looked-in options). */
  lookedIn?: string[];
  /** Cluster mode: the node whose services to call (`--node NAME`). */
  node?: string;
}

/** Where output goes, and what the terminal is like. */
export interface Io {
  stdout(text: string): void | Promise<void>;
  stderr(text: string): void;
  stdoutIsTerminal: boolean;
  stderrIsTerminal: boolean;
  /** The value of NO_COLOR, if set. */
  noColor?: string;
}

/** A command found in the table, and the words after its name. */
export interface Found {
  group?: Group;
  command?: Command;
  rest: string[];
}

/**
 * Finds the command named by the first words. A group without a subcommand
 * is returned without one; an unknown name is a usage error with the
 * nearest known one.
 */
export function findCommand(entries: readonly Entry[], words: readonly string[]): Found {
  const [first, second] = words;
  const entry = entries.find((e) => e.name === first);
  if (!entry) {
    const groups = entries.filter((e) => isGroup(e) && e.commands.some((c) => c.name === first))
      .map((g) => `${g.name} ${first}`);
    throw unknownName(`unknown command ${first}`, {
      near: nearest(first, entries.map((e) => e.name)) ??
        (groups.length ? groups.join(" or ") : undefined),
      otherwise:
        "`strata-ctl --help` lists the commands (a raw METHOD has a dot, e.g. supervisor.status)",
    });
  }
  if (!isGroup(entry)) return { command: entry, rest: words.slice(1) };
  if (second === undefined || second.startsWith("-")) return { group: entry, rest: words.slice(1) };
  const command = entry.commands.find((c) => c.name === second);
  if (!command) {
    const near = nearest(second, entry.commands.map((c) => c.name));
    throw unknownName(`unknown command ${entry.name} ${second}`, {
      near: near ? `${entry.name} ${near}` : undefined,
      otherwise: `\`strata-ctl ${entry.name} --help\` lists them`,
    });
  }
  return { group: entry, command, rest: words.slice(2) };
}

/** Turns node:util's parse errors into ours, naming the command and the nearest option. */
function optionError(err: unknown, command: Command, group: Group | undefined): CtlError {
  const name = commandPath(command, group).join(" ");
  const help = `see \`strata-ctl ${name} --help\``;
  const msg = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: string }).code;
  const opt = /'(-[^' ]*)/.exec(msg)?.[1] ?? "";
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    return unknownName(`unknown option ${opt} for ${name}`, {
      near: nearest(opt, command.options.map((o) => `--${o.name}`)),
      otherwise: help,
    });
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const spec = command.options.find((o) => msg.includes(`--${o.name}`));
    if (spec && !spec.value) return usage(`--${spec.name} takes no value`, help);
    if (spec) return usage(`--${spec.name} needs a value (${spec.value})`, help);
  }
  return usage(`${name}: ${msg.split("\n")[0]}`, help);
}

/**
 * Vault-style single-dash long options (`-ttl 1h`, `-path-prefix=/srv`) in
 * their double-dash form, so every long option takes one dash or two; a
 * cluster of the command's one-letter flags (`-qf`) stays as it is, and so
 * does everything after `--`.
 */
export function doubleDashes(command: Command, words: readonly string[]): string[] {
  const shorts = new Set(command.options.flatMap((o) => (o.short ? [o.short] : [])));
  const end = words.indexOf("--");
  const options = end === -1 ? words : words.slice(0, end);
  const out = options.map((w) => {
    const m = /^-([a-z][a-z-]+)(=.*)?$/s.exec(w);
    if (!m) return w;
    const cluster = m[2] === undefined && [...m[1]].every((c) => shorts.has(c));
    return cluster ? w : `-${w}`;
  });
  return end === -1 ? out : [...out, ...words.slice(end)];
}

/** The group a command belongs to, for messages ("fs get"). */
export interface ParseOptions {
  group?: Group;
}

/** node:util's parseArgs, once {@link loadParser} has loaded it. */
let nodeParseArgs: typeof import("node:util").parseArgs | undefined;

/**
 * Loads node:util's parseArgs for {@link parseInput}: a `node:` module starts
 * Deno's Node layer, which `strata-ctl status` and the other commands run
 * without words do without (see runtime/paths.ts), so it is loaded only for
 * a command with words to parse.
 */
export async function loadParser(): Promise<void> {
  nodeParseArgs ??= (await import("node:util")).parseArgs;
}

/** What parseArgs gives for no words: no values (in an object without a prototype, as its own). */
function noWords(): {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
} {
  return { values: Object.create(null), positionals: [] };
}

/**
 * Parses a command's own words against its declared arguments and options
 * (with words, once {@link loadParser} has run).
 */
export function parseInput(command: Command, words: string[], options: ParseOptions = {}): Input {
  const group = options.group;
  const parseArgs = words.length === 0 ? noWords : nodeParseArgs;
  if (parseArgs === undefined) throw new Error("parseInput: loadParser() has not run");
  const specs: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const o of command.options) {
    specs[o.name] = {
      type: o.value ? "string" : "boolean",
      ...(o.short ? { short: o.short } : {}),
    };
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: doubleDashes(command, words),
      options: specs,
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw optionError(err, command, group);
  }
  const args = parsed.positionals;
  const required = command.args.filter((a) => !a.optional).length;
  const variadic = command.args.some((a) => a.variadic);
  const usageHint = `usage: ${usageLine(command, group)}`;
  if (args.length < required) {
    const missing = command.args[args.length].name;
    throw usage(`${commandPath(command, group).join(" ")} needs ${missing}`, usageHint);
  }
  if (!variadic && args.length > command.args.length) {
    throw usage(`unexpected argument ${args[command.args.length]}`, usageHint);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  for (const o of command.options) {
    if (o.required && values[o.name] === undefined) {
      throw usage(`${commandPath(command, group).join(" ")} needs --${o.name}`, usageHint);
    }
  }
  return { args, options: values };
}

/** The error object --json prints for anything a command throws. */
function failure(err: unknown): { exit: number; json: ErrorJson } {
  if (err instanceof CtlError) return { exit: err.exit, json: { ...err.json } };
  if (err instanceof UsageError) {
    return { exit: EXIT.USAGE, json: { name: "USAGE", message: err.message } };
  }
  if (err instanceof Deno.errors.NotCapable) {
    return {
      exit: EXIT.USAGE,
      json: {
        name: "USAGE",
        message: `strata-ctl's sandbox refused: ${err.message}`,
        hint: "strata-ctl may use only the node's sockets, the operator token and the folder " +
          "it was started from",
      },
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof Error && Object.values(Deno.errors).some((E) => err instanceof E)) {
    // The system refused something local: a full disk, a folder we may not write.
    return {
      exit: EXIT.USAGE,
      json: { name: "LOCAL", message, hint: "check the local file or folder named above" },
    };
  }
  return {
    exit: EXIT.USAGE,
    json: {
      name: "INTERNAL",
      message,
      hint: "this is a bug in strata-ctl; please report it with the command you ran",
    },
  };
}

/** The words naming the command the positionals start with ("fs get"), for hints. */
function commandWords(entries: readonly Entry[], positionals: readonly string[]): string {
  const entry = entries.find((e) => e.name === positionals[0]);
  const sub = entry && isGroup(entry) && entry.commands.some((c) => c.name === positionals[1]);
  return positionals.slice(0, sub ? 2 : 1).join(" ");
}

/** The command table to run from, and where output goes. */
export interface RunOptions {
  entries: readonly Entry[];
  io: Io;
}

/** Runs the subcommand the positionals name; prints its outcome; returns the exit code. */
export async function runCommand(args: DispatchArgs, options: RunOptions): Promise<number> {
  const { entries, io } = options;
  let session: Session | undefined;
  try {
    const found = findCommand(entries, args.positionals);
    if (args.help) {
      await io.stdout(
        (found.command ? commandHelp(found.command, found.group) : groupHelp(found.group!)) + "\n",
      );
      return EXIT.OK;
    }
    if (!found.command) {
      const g = found.group!;
      throw usage(
        `${g.name} needs a command: ${g.commands.map((c) => c.name).join(", ")}`,
        `e.g. \`${g.commands[0].examples[0]}\`; \`strata-ctl ${g.name} --help\` shows them all`,
      );
    }
    if (found.rest.length > 0) await loadParser();
    const input = parseInput(found.command, found.rest, { group: found.group });
    refuseEmptyToken(args.token);
    session = new Session(args.layout, {
      token: args.token,
      timeoutMs: args.timeoutMs,
      lookedIn: args.lookedIn,
      node: args.node,
    });
    const ctx: Context = {
      session,
      style: { color: colorWanted(io.stdoutIsTerminal, io.noColor) },
      json: args.json,
      stderrIsTerminal: io.stderrIsTerminal,
      writeErr: (t) => io.stderr(t),
      now: Date.now,
    };
    const outcome = await found.command.run(ctx, input);
    if (args.json && outcome.data !== undefined) {
      await io.stdout(JSON.stringify(outcome.data, null, 2) + "\n");
    } else if (outcome.text) {
      await io.stdout(outcome.text + "\n");
    }
    return outcome.exit ?? EXIT.OK;
  } catch (err) {
    const { exit, json } = failure(err);
    if (json.name === "INVALID_ARGUMENT" && args.positionals.length > 0) {
      // The service named the field; the command's help shows how to give it.
      const words = commandWords(entries, args.positionals);
      json.hint = `\`strata-ctl ${words} --help\` shows the options and an example`;
    }
    if (args.json) await io.stdout(JSON.stringify(json, null, 2) + "\n");
    io.stderr(errorLine(json.message, json.hint) + "\n");
    return exit;
  } finally {
    await session?.close();
  }
}
