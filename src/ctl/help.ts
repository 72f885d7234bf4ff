/**
 * The text of `--help`: the overview (every command and every raw method),
 * a group's subcommands, and one command's usage, options and examples, all
 * derived from the command table.
 * @module
 */

import type { MethodInfo } from "./methods.ts";
import {
  type Command,
  commandPath,
  type Entry,
  GLOBAL_OPTIONS,
  type Group,
  isGroup,
  type OptionSpec,
  usageLine,
} from "./spec.ts";

/** Two columns: each left cell padded to the widest, then the right cell. */
function columns(rows: readonly [string, string][], indent = "  "): string[] {
  const width = Math.max(0, ...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `${indent}${l.padEnd(width)}  ${r}`.trimEnd());
}

/** A command's words and arguments, without its options: "svc start NAME". */
function synopsis(command: Command, group?: Group): string {
  const args = command.args.map((a) => {
    const word = a.variadic ? `${a.name}...` : a.name;
    return a.optional ? `[${word}]` : word;
  });
  return [...commandPath(command, group), ...args].join(" ");
}

function optionLabel(o: OptionSpec): string {
  const long = o.name === "token" ? "-token T, --token T" : `--${o.name}`;
  const short = o.short ? `-${o.short}, ` : "";
  return o.name === "token" ? long : `${short}${long}${o.value ? ` ${o.value}` : ""}`;
}

/** Every command, one line each, in table order. */
function commandRows(entries: readonly Entry[]): [string, string][] {
  const rows: [string, string][] = [];
  for (const e of entries) {
    if (isGroup(e)) { for (const c of e.commands) rows.push([synopsis(c, e), c.summary]); }
    else rows.push([synopsis(e), e.summary]);
  }
  return rows;
}

/** The text of `strata-ctl --help`: the commands, the options, then the raw methods. */
export function overviewHelp(entries: readonly Entry[], methods: readonly MethodInfo[]): string {
  const width = Math.max(...methods.map((m) => m.method.length));
  const methodLines = methods.map((m) => {
    const example = m.example ? ` '${JSON.stringify(m.example)}'` : "";
    const lock = m.protected ? "*" : " ";
    return `  ${m.method.padEnd(width)} ${lock} ${m.summary}\n  ${
      " ".repeat(width + 3)
    }e.g. strata-ctl ${m.method}${example}`;
  });
  return [
    "strata-ctl: operate a Strata node",
    "",
    "Usage:",
    "  strata-ctl COMMAND [ARGS] [OPTIONS]",
    "  strata-ctl [-token T | --token T] METHOD ['{json params}']",
    "  strata-ctl --help | --version",
    "",
    "Commands:",
    ...columns(commandRows(entries)),
    "",
    "Run `strata-ctl COMMAND --help` for a command's options and examples.",
    "",
    "Options (every command):",
    ...columns(GLOBAL_OPTIONS.map((o) => [optionLabel(o), o.summary])),
    "",
    "Commands print tables and short text; colour only on a terminal and when NO_COLOR",
    "is unset. With --json they print the result (or the error) as JSON on stdout.",
    "Exit 0 when ok, 1 when refused, 2 on a usage or connection error.",
    "",
    "Token: -token, else $STRATA_TOKEN, else the operator token in the state dir",
    "when you may read it.",
    "",
    "Raw form: a METHOD (it has a dot) with its params as one JSON object. It prints",
    "the response envelope as JSON. Methods marked * need a token with that right.",
    "",
    "Methods:",
    ...methodLines,
  ].join("\n");
}

/** The text of `strata-ctl GROUP --help`. */
export function groupHelp(group: Group): string {
  return [
    `strata-ctl ${group.name}: ${group.summary}`,
    "",
    "Usage:",
    `  strata-ctl ${group.name} COMMAND [ARGS] [OPTIONS]`,
    "",
    "Commands:",
    ...columns(group.commands.map((c) => [synopsis(c), c.summary])),
    "",
    "Examples:",
    ...group.commands.map((c) => `  ${c.examples[0]}`),
    "",
    `Run \`strata-ctl ${group.name} COMMAND --help\` for a command's options.`,
  ].join("\n");
}

/** The text of `strata-ctl [GROUP] COMMAND --help`. */
export function commandHelp(command: Command, group?: Group): string {
  const lines = [
    `strata-ctl ${commandPath(command, group).join(" ")}: ${command.summary}`,
    "",
    "Usage:",
    `  ${usageLine(command, group)}`,
  ];
  if (command.description?.length) lines.push("", ...command.description);
  if (command.options.length > 0) {
    lines.push("", "Options:", ...columns(command.options.map((o) => [optionLabel(o), o.summary])));
  }
  lines.push(
    "",
    command.examples.length > 1 ? "Examples:" : "Example:",
    ...command.examples.map((e) => `  ${e}`),
    "",
    "Every command also takes -token T, --json and --timeout MS (see strata-ctl --help).",
  );
  return lines.join("\n");
}
