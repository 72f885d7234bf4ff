/**
 * A program's layout from its command line: the options layoutArgs (in
 * config.ts) writes. Apart from config.ts because strata-ctl takes its
 * layout its own way.
 *
 * The words are read by {@link parseLongOptions}, which gives what
 * node:util's parseArgs gives for the same options (strict, long options
 * only, no positionals; a test holds the two together over generated
 * command lines), without `node:util`: importing any `node:` module starts
 * Deno's Node layer, which supervisor and registry otherwise never load
 * (see runtime/paths.ts and node/service.ts' `light`).
 * @module
 */

import {
  checkLayout,
  CHILD_SERVICES,
  clusterSection,
  DEFAULT_LAYOUT,
  type Layout,
} from "./config.ts";

/** The options that carry a layout on a command line. */
const LAYOUT_OPTIONS = {
  "runtime-dir": { type: "string" },
  "state-dir": { type: "string" },
  "node-id": { type: "string" },
  "fs-roots": { type: "string" },
  "group-access": { type: "boolean" },
  ...Object.fromEntries(CHILD_SERVICES.map((s) => [`${s}-listen`, { type: "string" }])),
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-ca": { type: "string" },
  "cluster": { type: "string" },
  "etcd-endpoints": { type: "string" },
  "cluster-root": { type: "string" },
  "cluster-ca": { type: "string" },
  // Accepted and ignored: the etcd client read the etcd3 package's proto files until 2026-12-04.
  "etcd-proto": { type: "string" },
  "partition-bound-ms": { type: "string" },
  "cluster-peers": { type: "string" },
  "etcd-ca": { type: "string" },
  "etcd-cert": { type: "string" },
  "etcd-key": { type: "string" },
  "etcd-server-name": { type: "string" },
} as const;

/** Other options a program's entry may take, by name: boolean or string. */
export type ExtraOptions = Record<string, { type: "boolean" | "string" }>;

/**
 * Parses the layout options (and `extra` ones) from a program's arguments.
 * Returns the layout and the values of the extra options.
 */
export function parseLayoutArgs(
  args: string[],
  extra: ExtraOptions = {},
): { layout: Layout; options: Record<string, string | boolean | undefined> } {
  const v = parseLongOptions(args, { ...LAYOUT_OPTIONS, ...extra });
  const layout = checkLayout({
    runtimeDir: (v["runtime-dir"] as string) ?? DEFAULT_LAYOUT.runtimeDir,
    stateDir: (v["state-dir"] as string) ?? DEFAULT_LAYOUT.stateDir,
    nodeId: (v["node-id"] as string) ?? DEFAULT_LAYOUT.nodeId,
    fsRoots: v["fs-roots"] !== undefined ? (v["fs-roots"] as string).split(":") : [],
    ...(v["group-access"] === true ? { groupAccess: true } : {}),
    listen: Object.fromEntries(
      CHILD_SERVICES.filter((s) => v[`${s}-listen`] !== undefined).map((s) => [
        s,
        v[`${s}-listen`] as string,
      ]),
    ),
    tls: {
      cert: v["tls-cert"] as string | undefined,
      key: v["tls-key"] as string | undefined,
      ca: v["tls-ca"] as string | undefined,
    },
    cluster: clusterSection((name) => v[name] as string | undefined, "option"),
  });
  return { layout, options: v };
}

/** A command-line error, with the code and message node:util's parseArgs gives for it. */
export class OptionError extends TypeError {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/**
 * Reads `--name=value`, `--name value` and `--flag` words against `options`
 * as node:util's parseArgs does with `strict: true` and no positionals: an
 * unknown option, a short one, a positional (also after `--`), a flag given
 * a value, a string option without one, or one whose next word looks like an
 * option (`-x`; write `--name=-x`) is an {@link OptionError}; an option given
 * twice keeps its last value.
 */
export function parseLongOptions(
  args: readonly string[],
  options: ExtraOptions,
): Record<string, string | boolean | undefined> {
  const values: Record<string, string | boolean | undefined> = Object.create(null);
  for (let i = 0; i < args.length; i++) {
    const word = args[i];
    if (word === "--") {
      if (i + 1 < args.length) throw positional(args[i + 1]);
      break;
    }
    if (!word.startsWith("--")) {
      if (word.length > 1 && word[0] === "-") {
        throw new OptionError(
          "ERR_PARSE_ARGS_UNKNOWN_OPTION",
          `Unknown option '-${word[1]}'`,
        );
      }
      throw positional(word);
    }
    // As parseArgs: a word with an "=" after its third character has a value, which starts
    // after its first "=" (so "--=a=b" names the option ""); "--=" and "--=a" are names.
    const eq = word.indexOf("=", 3) === -1 ? -1 : word.indexOf("=");
    const name = eq === -1 ? word.slice(2) : word.slice(2, eq);
    const spec = Object.hasOwn(options, name) ? options[name] : undefined;
    if (spec === undefined) {
      throw new OptionError(
        "ERR_PARSE_ARGS_UNKNOWN_OPTION",
        `Unknown option '--${name}'`,
      );
    }
    if (spec.type === "boolean") {
      if (eq !== -1) {
        throw new OptionError(
          "ERR_PARSE_ARGS_INVALID_OPTION_VALUE",
          `Option '--${name}' does not take an argument`,
        );
      }
      values[name] = true;
    } else if (eq !== -1) {
      values[name] = word.slice(eq + 1);
    } else {
      const next = args[i + 1];
      if (next === undefined) {
        throw new OptionError(
          "ERR_PARSE_ARGS_INVALID_OPTION_VALUE",
          `Option '--${name} <value>' argument missing`,
        );
      }
      if (next.length > 1 && next[0] === "-") {
        throw new OptionError(
          "ERR_PARSE_ARGS_INVALID_OPTION_VALUE",
          `Option '--${name}' argument is ambiguous.\nDid you forget to specify the option argument for '--${name}'?\nTo specify an option argument starting with a dash use '--${name}=-XYZ'.`,
        );
      }
      values[name] = next;
      i++;
    }
  }
  return values;
}

function positional(word: string): OptionError {
  return new OptionError(
    "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL",
    `Unexpected argument '${word}'. This command does not take positional arguments`,
  );
}
