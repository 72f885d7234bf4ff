/**
 * The command table of strata-ctl: status, svc, token, fs, registry,
 * completion, version and help, each with its summary, arguments, options,
 * examples and what it runs. Help, suggestions and completion come from here.
 * @module
 */

import { CHILD_SERVICES } from "../runtime/config.ts";
import { VERSION } from "../version.ts";
import { completionScript, SHELLS } from "./completion.ts";
import { findCommand } from "./dispatch.ts";
import { EXIT, unknownName, usage } from "./errors.ts";
import { parseDuration } from "./format.ts";
import { getFile, getSummary, streamFile, terminalProgress, writeAll } from "./files.ts";
import { commandHelp, groupHelp, overviewHelp } from "./help.ts";
import { METHODS, nearest } from "./methods.ts";
import {
  type Introspection,
  type Listing,
  type NodeStatus,
  type RegistryEntry,
  renderIntrospection,
  renderIssued,
  renderListing,
  renderRegistryList,
  renderResolved,
  renderRevoked,
  renderStatus,
  renderSvcAction,
  renderSvcList,
  type Revoked,
  type SvcEntry,
} from "./render.ts";
import type { Command, Entry, Group, Input, OptionSpec, Outcome } from "./spec.ts";
import { issueParams, revokeParams } from "./tokens.ts";

/** The NAME of a supervised service; a typo gets the nearest name. */
function serviceName(name: string): string {
  if ((CHILD_SERVICES as readonly string[]).includes(name)) return name;
  throw unknownName(`there is no service ${name}`, {
    near: nearest(name, CHILD_SERVICES),
    otherwise: `the supervisor runs ${CHILD_SERVICES.join(", ")}`,
  });
}

/** `--drain` in milliseconds (default 5 s). */
function drainMs(input: Input): number | undefined {
  const text = input.options.drain as string | undefined;
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined || ms < 1) {
    throw usage(`--drain: cannot read "${text}" as a duration`, "use e.g. 500ms, 5s or 1m");
  }
  return ms;
}

const DRAIN: OptionSpec = {
  name: "drain",
  value: "DURATION",
  summary: "how long open requests may take before SIGKILL (default 5s)",
};

/** svc stop and svc restart: same shape, different method and verb. */
function svcChange(name: "stop" | "restart", verb: string, summary: string): Command {
  return {
    name,
    summary,
    args: [{ name: "NAME", complete: "supervised" }],
    options: [DRAIN],
    description: [
      "The service stops accepting connections, answers what it was already asked, and",
      "exits; it gets SIGKILL if it is still running after the drain time.",
    ],
    examples: [`strata-ctl svc ${name} fs`, `strata-ctl svc ${name} fs --drain 10s`],
    async run(ctx, input) {
      const drain = drainMs(input);
      const entry = await ctx.session.call<SvcEntry>(
        `supervisor.svc.${name}`,
        { name: serviceName(input.args[0]), ...(drain !== undefined ? { drain_ms: drain } : {}) },
        { timeoutMs: ctx.session.timeoutMs + (drain ?? 5000) },
      );
      return { data: entry, text: renderSvcAction(verb, entry, { style: ctx.style }) };
    },
  };
}

const SVC: Group = {
  name: "svc",
  summary: "list, start, stop and restart the supervised services",
  commands: [
    {
      name: "list",
      summary: "state, pid, restarts and last exit of each service",
      args: [],
      options: [],
      examples: ["strata-ctl svc list"],
      async run(ctx) {
        const r = await ctx.session.call<{ services: SvcEntry[] }>(
          "supervisor.svc.list",
          undefined,
          { auth: false },
        );
        return { data: r, text: renderSvcList(r, { style: ctx.style, now: ctx.now() }) };
      },
    },
    {
      name: "start",
      summary: "start a service (also lifts a quarantine)",
      args: [{ name: "NAME", complete: "supervised" }],
      options: [],
      description: ["Waits until the service is Healthy (or has failed to start)."],
      examples: ["strata-ctl svc start fs"],
      async run(ctx, input) {
        const entry = await ctx.session.call<SvcEntry>(
          "supervisor.svc.start",
          { name: serviceName(input.args[0]) },
          { timeoutMs: Math.max(ctx.session.timeoutMs, 30_000) },
        );
        return { data: entry, text: renderSvcAction("started", entry, { style: ctx.style }) };
      },
    },
    svcChange("stop", "stopped", "drain and stop a service"),
    svcChange("restart", "restarted", "stop a service, then start it again"),
  ],
};

const TOKEN: Group = {
  name: "token",
  summary: "issue, inspect and revoke capability tokens",
  commands: [
    {
      name: "issue",
      summary: "mint a capability token (never broader than yours)",
      args: [],
      options: [
        {
          name: "service",
          value: "NAME",
          required: true,
          summary: "the service it is for",
          complete: "services",
        },
        { name: "rights", value: "LIST", summary: "full rights, comma-separated: fs.read,fs.list" },
        { name: "actions", value: "LIST", summary: "the same without the prefix: read,list" },
        { name: "path-prefix", value: "DIR", summary: "confine file access to DIR" },
        {
          name: "ttl",
          value: "DURATION",
          summary: "how long it is valid: 90s, 15m, 1h, 7d (default 1h)",
        },
        { name: "rate", value: "RATE", summary: "a request rate limit, e.g. 50rps" },
        { name: "sub", value: "NAME", summary: "who it is for (default: inherited)" },
        { name: "quiet", short: "q", summary: "print only the token" },
      ],
      description: [
        "Presents your token (-token, $STRATA_TOKEN or the operator token), which must",
        "hold identity.issue; the new token is never broader than it.",
      ],
      examples: [
        "strata-ctl token issue --service fs --rights fs.read,fs.list --path-prefix /srv/data --ttl 1h",
        "strata-ctl token issue --service fs --actions open,read --ttl 15m --rate 50rps",
        "export STRATA_TOKEN=$(strata-ctl token issue --service fs --actions list,open,read -q)",
      ],
      async run(ctx, input) {
        const issued = await ctx.session.call<{ token: string; cap_id: string; expires: number }>(
          "identity.issue",
          issueParams(input.options),
        );
        if (ctx.json) return { data: issued };
        if (input.options.quiet) return { data: issued, text: issued.token };
        const seen = await ctx.session.call<Introspection>(
          "identity.introspect",
          { token: issued.token },
          { auth: false },
        ).catch(() => undefined);
        return {
          data: issued,
          text: renderIssued(issued.token, seen?.claims, { style: ctx.style, now: ctx.now() }),
        };
      },
    },
    {
      name: "inspect",
      summary: "is a token valid, and what does it allow",
      args: [{ name: "TOKEN", optional: true }],
      options: [],
      description: [
        "Without TOKEN, inspects the token strata-ctl would present; `-` reads it from",
        "stdin. Exits 1 when the token is not valid.",
      ],
      examples: ["strata-ctl token inspect", 'strata-ctl token inspect "$TOKEN"'],
      async run(ctx, input) {
        const given = input.args[0];
        const token = given === "-" ? await readStdin() : given ?? ctx.session.token();
        if (!token) {
          throw usage(
            "there is no token to inspect",
            "pass one, set STRATA_TOKEN, or point --state-dir at a readable operator token",
          );
        }
        const source = given !== undefined ? "argument" : ctx.session.tokenSource();
        const r = await ctx.session.call<Introspection>(
          "identity.introspect",
          { token },
          { auth: false },
        );
        return {
          data: r,
          text: renderIntrospection(r, { style: ctx.style, now: ctx.now(), source }),
          exit: r.valid ? EXIT.OK : EXIT.REFUSED,
        };
      },
    },
    {
      name: "revoke",
      summary: "revoke a capability and everything delegated from it",
      args: [{ name: "CAP_ID|TOKEN" }],
      options: [{
        name: "force",
        short: "f",
        summary: "allow revoking the root operator capability (and with it every token)",
      }],
      description: [
        "Give the cap_id, or the token itself (a delegated revoker must give the token).",
        "Every reachable service refuses it when this returns. An id this node never",
        "issued, or a token that has expired, is NOT_FOUND. The operator token is",
        "revoked only with --force: every token of the node goes with it.",
      ],
      examples: [
        "strata-ctl token revoke 3f9a0c1e5b7d4f2a8c6e0b1d3f5a7c9e",
        'strata-ctl token revoke "$TOKEN"',
      ],
      async run(ctx, input) {
        const params = revokeParams(input.args[0]);
        if (input.options.force === true) params.confirm_root = true;
        const r = await ctx.session.call<Revoked>("identity.revoke", params);
        return { data: r, text: renderRevoked(r, { style: ctx.style }) };
      },
    },
  ],
};

/** The whole of stdin as text, trimmed (for `token inspect -`). */
async function readStdin(): Promise<string> {
  return (await new Response(Deno.stdin.readable).text()).trim();
}

/** `--limit` of fs ls: 1 to 5000. */
function limitOf(input: Input): number | undefined {
  const text = input.options.limit as string | undefined;
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1 || n > 5000) {
    throw usage(`--limit: ${text} is not a number from 1 to 5000`, "e.g. --limit 100");
  }
  return n;
}

const FS: Group = {
  name: "fs",
  summary: "list, print and download files through the fs service",
  commands: [
    {
      name: "ls",
      summary: "list a folder",
      args: [{ name: "PATH" }],
      options: [{
        name: "limit",
        value: "N",
        summary: "at most N entries (default 1000, up to 5000)",
      }],
      description: ["PATH is absolute, or relative to your token's path prefix."],
      examples: ["strata-ctl fs ls /srv/data"],
      async run(ctx, input) {
        const limit = limitOf(input);
        const r = await ctx.session.call<Listing>("fs.list", {
          path: input.args[0],
          ...(limit !== undefined ? { limit } : {}),
        });
        return { data: r, text: renderListing(r, { style: ctx.style }) };
      },
    },
    {
      name: "cat",
      summary: "write a file's bytes to stdout",
      args: [{ name: "PATH" }],
      options: [],
      description: ["Binary-safe, any size; `strata-ctl fs cat PATH > FILE` saves it anywhere."],
      examples: [
        "strata-ctl fs cat /srv/data/notes.txt",
        "strata-ctl fs cat /srv/data/a.tar | tar t",
      ],
      async run(ctx, input) {
        await streamFile(ctx.session, input.args[0], { sink: (c) => writeAll(Deno.stdout, c) });
        return {};
      },
    },
    {
      name: "get",
      summary: "download a file; DEST appears whole or not at all",
      args: [{ name: "PATH" }, { name: "DEST", optional: true, complete: "files" }],
      options: [{ name: "force", short: "f", summary: "replace DEST if it exists" }],
      description: [
        "DEST defaults to PATH's name in the current folder; a folder as DEST keeps the",
        "name; `-` writes to stdout. The file is written beside DEST under a temporary",
        "name and renamed when complete, so DEST is never half-written. strata-ctl may",
        "write only in the folder it was started from: elsewhere, cd there first, or use",
        "`strata-ctl fs cat PATH > DEST`. A progress bar shows on a terminal.",
      ],
      examples: [
        "strata-ctl fs get /srv/data/report.pdf",
        "strata-ctl fs get /srv/data/big.iso ./images/ --force",
        "strata-ctl fs get /srv/data/big.iso - | sha256sum",
      ],
      async run(ctx, input) {
        const [remote, dest] = input.args;
        const progress = ctx.stderrIsTerminal ? terminalProgress(ctx.writeErr) : undefined;
        try {
          const r = await getFile(ctx.session, remote, {
            dest,
            force: input.options.force === true,
            onProgress: progress?.onProgress,
          });
          if (r.dest === "-") return {};
          return { data: r, text: getSummary(r) };
        } finally {
          progress?.finish();
        }
      },
    },
  ],
};

const REGISTRY: Group = {
  name: "registry",
  summary: "where the services are",
  commands: [
    {
      name: "list",
      summary: "every registered service and its endpoint",
      args: [],
      options: [],
      examples: ["strata-ctl registry list"],
      async run(ctx) {
        const r = await ctx.session.call<{ services: RegistryEntry[] }>(
          "registry.list",
          undefined,
          { auth: false },
        );
        return { data: r, text: renderRegistryList(r, { style: ctx.style }) };
      },
    },
    {
      name: "resolve",
      summary: "the endpoint of one service",
      args: [{ name: "NAME", complete: "supervised" }],
      options: [],
      examples: ["strata-ctl registry resolve fs"],
      async run(ctx, input) {
        const r = await ctx.session.call<RegistryEntry>(
          "registry.resolve",
          { service: input.args[0] },
          { auth: false },
        );
        return { data: r, text: renderResolved(r, { style: ctx.style }) };
      },
    },
  ],
};

const STATUS: Command = {
  name: "status",
  summary: "the node at a glance: id, version, uptime and health",
  args: [],
  options: [],
  examples: ["strata-ctl status", "strata-ctl status --json"],
  async run(ctx) {
    const r = await ctx.session.call<NodeStatus>("supervisor.status", undefined, { auth: false });
    return { data: r, text: renderStatus(r, { style: ctx.style }) };
  },
};

const COMPLETION: Command = {
  name: "completion",
  summary: "print a shell completion script (bash, zsh or fish)",
  args: [{ name: "SHELL", complete: SHELLS }],
  options: [],
  description: [
    "Install it once, e.g. for bash: strata-ctl completion bash > ~/.local/share/bash-completion/completions/strata-ctl",
  ],
  examples: [
    "source <(strata-ctl completion bash)",
    "strata-ctl completion zsh > ~/.zfunc/_strata-ctl",
    "strata-ctl completion fish > ~/.config/fish/completions/strata-ctl.fish",
  ],
  // deno-lint-ignore require-await -- async, so a usage error is a rejection like any other
  async run(_ctx, input) {
    const shell = input.args[0];
    if (!(SHELLS as readonly string[]).includes(shell)) {
      throw unknownName(`no completion for ${shell}`, {
        near: nearest(shell, SHELLS),
        otherwise: `use one of ${SHELLS.join(", ")}`,
      });
    }
    const script = completionScript(shell as typeof SHELLS[number], {
      entries: COMMANDS,
      methods: METHODS,
    });
    return { text: script.trimEnd() };
  },
};

const VERSION_COMMAND: Command = {
  name: "version",
  summary: "strata-ctl's version, and the node's when it is running",
  args: [],
  options: [],
  examples: ["strata-ctl version"],
  async run(ctx) {
    const node = await ctx.session.call<NodeStatus>("supervisor.status", undefined, {
      auth: false,
      timeoutMs: 2000,
    }).catch(() => undefined);
    const data = { ctl: VERSION, node: node?.version ?? null };
    const text = `strata-ctl ${VERSION}\n` +
      (node ? `node ${node.node_id} ${node.version}` : "node: not running");
    return { data, text };
  },
};

const HELP: Command = {
  name: "help",
  summary: "help for strata-ctl or one command",
  args: [
    { name: "COMMAND", optional: true, complete: "commands" },
    { name: "SUBCOMMAND", optional: true },
  ],
  options: [],
  examples: ["strata-ctl help fs get"],
  // deno-lint-ignore require-await -- async, so a usage error is a rejection like any other
  async run(_ctx, input): Promise<Outcome> {
    if (input.args.length === 0) return { text: helpText() };
    const found = findCommand(COMMANDS, input.args);
    return {
      text: found.command ? commandHelp(found.command, found.group) : groupHelp(found.group!),
    };
  },
};

/** Every command, in the order `--help` lists them. */
export const COMMANDS: readonly Entry[] = [
  STATUS,
  SVC,
  TOKEN,
  FS,
  REGISTRY,
  COMPLETION,
  VERSION_COMMAND,
  HELP,
];

/** The text of `strata-ctl --help`: the commands, then the raw methods. */
export function helpText(): string {
  return overviewHelp(COMMANDS, METHODS);
}
