/**
 * The command table of strata-ctl: status, svc, token, fs, registry,
 * completion, version and help, each with its summary, arguments, options,
 * examples and what it runs. Help, suggestions and completion come from here.
 * @module
 */

import { posix } from "../runtime/paths.ts";
import type { EtcdHttp } from "../sources/etcd_http.ts";
import { CHILD_SERVICES } from "../runtime/config.ts";
import { humanLine } from "../runtime/log.ts";
// ./cluster.ts and ./cluster_status.ts are imported by the commands that use
// them: with the token, key-set and endorsement modules they bring, loading
// them took 17-23 ms of every strata-ctl start, `status` included.
import { VERSION } from "../runtime/version.ts";
import { completionScript, SHELLS } from "./completion.ts";
import { findCommand } from "./dispatch.ts";
import { CtlError, EXIT, unknownName, usage } from "./errors.ts";
import { parseDuration } from "./format.ts";
import {
  getFile,
  getSummary,
  streamFile,
  terminalProgress,
  untilReaderGone,
  writeAll,
} from "./files.ts";
import { commandHelp, groupHelp, overviewHelp } from "./help.ts";
import { METHODS, nearest } from "./methods.ts";
import {
  type CapList,
  type Introspection,
  type Listing,
  type LogLine,
  type LogPage,
  type LogTail,
  type NodeStatus,
  type RegistryEntry,
  renderCapList,
  renderCapRecord,
  renderIntrospection,
  renderIssued,
  renderListing,
  renderLogLines,
  renderRegistryList,
  renderResolved,
  renderRevoked,
  renderStatus,
  renderSvcAction,
  renderSvcDetail,
  renderSvcList,
  type Revoked,
  type SvcDetail,
  type SvcEntry,
} from "./render.ts";
import type { Command, Context, Entry, Group, Input, OptionSpec, Outcome } from "./spec.ts";
import { issueParams, prefixWarning, revokeParams } from "./tokens.ts";

/** The NAME of a supervised service; a typo gets the nearest name. */
function serviceName(name: string): string {
  if ((CHILD_SERVICES as readonly string[]).includes(name)) return name;
  if (name === "supervisor") {
    throw usage(
      "the supervisor is not one of the services it runs",
      "stop the whole node where it runs (Ctrl-C, or `systemctl stop strata`); " +
        `the supervisor runs ${CHILD_SERVICES.join(", ")}`,
    );
  }
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

/**
 * Warns on stderr when an fs token's path_prefix lies outside every root fs
 * serves, asking fs itself (fs.roots), since only the running fs knows its
 * roots. Best effort: when fs cannot be asked, nothing is printed.
 */
async function warnOutsideRoots(ctx: Context, params: Record<string, unknown>): Promise<void> {
  const prefix = params.path_prefix;
  if (typeof prefix !== "string" || (params.service !== "fs" && params.service !== "*")) return;
  const answer = await ctx.session.call<{ roots: string[] }>("fs.roots", undefined, {
    auth: false,
  }).catch(() => undefined);
  const warning = answer &&
    prefixWarning(prefix, answer.roots, { cluster: ctx.session.layout.cluster !== undefined });
  if (warning) ctx.writeErr(`strata-ctl: ${warning}\n`);
}

/** `-n`/`--lines`: how many log lines, 1 to 1000. */
function LINES_OPTION(byDefault: number): OptionSpec {
  return {
    name: "lines",
    short: "n",
    value: "N",
    summary: `the last N log lines (default ${byDefault}, up to 1000)`,
  };
}

/** The value of `-n`/`--lines`. */
function linesOf(input: Input, byDefault: number): number {
  const text = input.options.lines as string | undefined;
  if (text === undefined) return byDefault;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1 || n > 1000) {
    throw usage(`--lines: ${text} is not a number from 1 to 1000`, "e.g. -n 100");
  }
  return n;
}

const SVC: Group = {
  name: "svc",
  summary: "list, start, stop and restart the supervised services",
  commands: [
    {
      name: "list",
      summary: "state, pid, restarts and last exit of each service",
      args: [],
      options: [{
        name: "all-nodes",
        summary: "cluster mode: every node's services from the registry, with their health",
      }],
      examples: ["strata-ctl svc list", "strata-ctl svc list --all-nodes"],
      async run(ctx, input) {
        if (input.options["all-nodes"] === true) {
          if (!ctx.session.layout.cluster) {
            throw usage(
              "--all-nodes: this node is not in a cluster",
              "set STRATA_CLUSTER and friends (docs/cluster.md), or leave --all-nodes out",
            );
          }
          const { allNodeServices, renderAllNodes } = await import("./cluster_status.ts");
          const services = await allNodeServices(ctx.session);
          return { data: { services }, text: renderAllNodes(services) };
        }
        const r = await ctx.session.call<{ services: SvcEntry[] }>(
          "supervisor.svc.list",
          undefined,
          { auth: false },
        );
        return { data: r, text: renderSvcList(r, { style: ctx.style, now: ctx.now() }) };
      },
    },
    {
      name: "status",
      summary: "one service in detail, with its last log lines",
      args: [{ name: "NAME", complete: "supervised" }],
      options: [LINES_OPTION(10)],
      description: [
        "Like `systemctl status`: state and since when, pid, restarts (after a crash and",
        "by an operator), last exit, memory, endpoint and log file, then the last log lines",
        "(which need supervisor.logs: the operator token has it). Exits 3 when the service",
        "is not Healthy.",
      ],
      examples: ["strata-ctl svc status fs", "strata-ctl svc status identity -n 30"],
      async run(ctx, input) {
        const name = serviceName(input.args[0]);
        const detail = await ctx.session.call<SvcDetail>(
          "supervisor.svc.status",
          { name },
          { auth: false },
        );
        const tail: LogTail = await ctx.session.call<LogPage>("supervisor.logs", {
          service: name,
          lines: linesOf(input, 10),
        }).then((p) => ({ lines: p.lines }), (err) => ({
          error: err instanceof CtlError
            ? `${err.message}; ${err.hint ?? ""}`.replace(/; $/, "")
            : String(err),
        }));
        return {
          data: { ...detail, logs: "lines" in tail ? tail.lines : null },
          text: renderSvcDetail(detail, tail, { style: ctx.style, now: ctx.now() }),
          exit: detail.state === "Healthy" ? EXIT.OK : EXIT.DEGRADED,
        };
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
  summary: "issue, list, inspect and revoke capability tokens",
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
          summary: "how long it is valid, 1s to 365d: 90s, 15m, 1h, 7d (default 1h)",
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
        "strata-ctl token issue --service fs --rights fs.open,fs.read,fs.list --path-prefix /srv/data --ttl 1h",
        "strata-ctl token issue --service fs --actions open,read --ttl 15m --rate 50rps",
        "export STRATA_TOKEN=$(strata-ctl token issue --service fs --actions list,open,read -q)",
      ],
      async run(ctx, input) {
        const params = issueParams(input.options);
        const issued = await ctx.session.call<{ token: string; cap_id: string; expires: number }>(
          "identity.issue",
          params,
        );
        await warnOutsideRoots(ctx, params);
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
      name: "list",
      summary: "the live capabilities identity has issued",
      args: [],
      options: [
        { name: "service", value: "NAME", summary: "only tokens for NAME", complete: "services" },
        { name: "sub", value: "NAME", summary: "only tokens issued to NAME" },
        { name: "revoked", summary: "only revoked ones" },
        { name: "live", summary: "only ones not revoked" },
        {
          name: "lines",
          short: "n",
          value: "N",
          summary: "at most N, newest first (default 1000, up to 2000)",
        },
      ],
      description: [
        "Like `vault list auth/token/accessors`: cap_id, subject, service, rights, prefix,",
        "expiry, parent, and whether it (or an ancestor) is revoked. The operator token",
        "sees every capability; a delegated token sees its own and those delegated from",
        "it. Needs identity.list (the operator token has it).",
      ],
      examples: [
        "strata-ctl token list",
        "strata-ctl token list --service fs --live",
        "strata-ctl token list --json | jq -r '.capabilities[].cap_id'",
      ],
      async run(ctx, input) {
        const o = input.options;
        if (o.revoked === true && o.live === true) {
          throw usage("--revoked and --live exclude each other", "give one of them, or neither");
        }
        const n = o.lines === undefined ? 1000 : Number(o.lines);
        if (!Number.isSafeInteger(n) || n < 1 || n > 2000) {
          throw usage(`--lines: ${o.lines} is not a number from 1 to 2000`, "e.g. -n 50");
        }
        const r = await ctx.session.call<CapList>("identity.list", {
          ...(o.service !== undefined ? { service: o.service } : {}),
          ...(o.sub !== undefined ? { sub: o.sub } : {}),
          ...(o.revoked === true ? { revoked: true } : o.live === true ? { revoked: false } : {}),
          limit: n,
        });
        return { data: r, text: renderCapList(r, { style: ctx.style, now: ctx.now() }) };
      },
    },
    {
      name: "inspect",
      summary: "is a token valid, and what does it allow",
      args: [{ name: "TOKEN|CAP_ID", optional: true, complete: "caps" }],
      options: [],
      description: [
        "Without TOKEN, inspects the token strata-ctl would present; `-` reads it from",
        "stdin. A CAP_ID shows identity's record of it (token list; needs identity.list).",
        "Exits 1 when the token is not valid.",
      ],
      examples: [
        "strata-ctl token inspect",
        'strata-ctl token inspect "$TOKEN"',
        "strata-ctl token inspect 3f9a0c1e5b7d4f2a8c6e0b1d3f5a7c9e",
      ],
      async run(ctx, input) {
        const given = input.args[0];
        if (given !== undefined && CAP_ID_RE.test(given)) return await inspectCapId(ctx, given);
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
        // cap_id, as the text form says it, beside the claims' own name for it (jti).
        const data = r.claims
          ? { valid: r.valid, cap_id: r.claims.jti, reason: r.reason, claims: r.claims }
          : r;
        return {
          data,
          text: renderIntrospection(r, { style: ctx.style, now: ctx.now(), source }),
          exit: r.valid ? EXIT.OK : EXIT.REFUSED,
        };
      },
    },
    {
      name: "revoke",
      summary: "revoke a capability and everything delegated from it",
      args: [{ name: "CAP_ID|TOKEN", complete: "caps" }],
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

const CAP_ID_RE = /^[0-9a-f]{32}$/;

/**
 * `token inspect CAP_ID`: identity's record of a live capability, found
 * with identity.list (the operator's view, or the caller's tree).
 */
async function inspectCapId(ctx: Context, capId: string): Promise<Outcome> {
  const r = await ctx.session.call<CapList>("identity.list", { limit: 2000 });
  const c = r.capabilities.find((c) => c.cap_id === capId);
  if (!c) {
    throw new CtlError(EXIT.REFUSED, {
      name: "NOT_FOUND",
      message: `no live capability ${capId} in identity's record`,
      hint: "it has expired, belongs to another tree than your token's, or is mistyped; " +
        "`strata-ctl token list` shows what is live",
    });
  }
  return {
    data: { valid: !c.revoked, cap_id: c.cap_id, capability: c },
    text: renderCapRecord(c, { style: ctx.style, now: ctx.now() }),
    exit: c.revoked ? EXIT.REFUSED : EXIT.OK,
  };
}

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
      args: [{ name: "PATH", complete: "remote" }],
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
      args: [{ name: "PATH", complete: "remote" }],
      options: [],
      description: ["Binary-safe, any size; `strata-ctl fs cat PATH > FILE` saves it anywhere."],
      examples: [
        "strata-ctl fs cat /srv/data/notes.txt",
        "strata-ctl fs cat /srv/data/a.tar | tar t",
      ],
      async run(ctx, input) {
        await untilReaderGone(
          streamFile(ctx.session, input.args[0], { sink: (c) => writeAll(Deno.stdout, c) }),
        );
        return {};
      },
    },
    {
      name: "get",
      summary: "download a file; DEST appears whole or not at all",
      args: [{ name: "PATH", complete: "remote" }, {
        name: "DEST",
        optional: true,
        complete: "files",
      }],
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
          const download = getFile(ctx.session, remote, {
            dest,
            force: input.options.force === true,
            onProgress: progress?.onProgress,
            // The terminal echoed ^C on the bar's line: clear it, and leave the
            // prompt on a fresh line with a word on what happened.
            onInterrupt: () => {
              progress?.finish();
              ctx.writeErr("strata-ctl: interrupted; nothing was saved\n");
            },
          });
          if (dest === "-") {
            await untilReaderGone(download);
            return {};
          }
          const r = await download;
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
  description: [
    "Exits 0 when every service is Healthy, 3 when the node is degraded (some service",
    "is not), 2 when the supervisor cannot be reached, so a script can test it as it",
    "would `systemctl is-system-running`.",
  ],
  examples: [
    "strata-ctl status",
    "strata-ctl status --json",
    "strata-ctl status >/dev/null || strata-ctl svc list",
  ],
  async run(ctx) {
    const r = await ctx.session.call<NodeStatus>("supervisor.status", undefined, { auth: false });
    const healthy = r.services.healthy === r.services.total;
    return {
      data: r,
      text: renderStatus(r, { style: ctx.style }),
      exit: healthy ? EXIT.OK : EXIT.DEGRADED,
    };
  },
};

/** How often `logs -f` asks for new lines. */
const FOLLOW_POLL_MS = 500;

const LOGS: Command = {
  name: "logs",
  summary: "the services' log lines; -f follows them",
  args: [{ name: "SERVICE", optional: true, complete: "supervised" }],
  options: [
    { name: "follow", short: "f", summary: "keep printing new lines until Ctrl-C" },
    { name: "since", value: "DURATION", summary: "only lines from the last DURATION (10m, 2h)" },
    LINES_OPTION(100),
  ],
  description: [
    "Like journalctl: one service's lines, or every service's in order. The supervisor",
    "keeps each service's last 1000 lines for this; the files in <state dir>/logs/",
    "(0600, rotated at 4 MiB) hold more. Needs supervisor.logs (the operator token has it).",
  ],
  examples: [
    "strata-ctl logs fs",
    "strata-ctl logs -f",
    "strata-ctl logs identity --since 10m -n 500",
    "strata-ctl logs --json | jq -r '.lines[].line'",
  ],
  async run(ctx, input) {
    const service = input.args[0] === undefined ? undefined : serviceName(input.args[0]);
    const sinceText = input.options.since as string | undefined;
    const sinceMs = sinceText === undefined ? undefined : parseDuration(sinceText);
    if (sinceText !== undefined && sinceMs === undefined) {
      throw usage(
        `--since: cannot read "${sinceText}" as a duration`,
        "use e.g. 90s, 10m, 2h or 1d",
      );
    }
    const params = {
      ...(service ? { service } : {}),
      lines: linesOf(input, 100),
      ...(sinceMs !== undefined ? { since_ms: Math.max(0, ctx.now() - sinceMs) } : {}),
    };
    const page = await ctx.session.call<LogPage>("supervisor.logs", params);
    if (input.options.follow !== true) {
      return { data: page, text: page.lines.length ? renderLogLines(page.lines) : undefined };
    }
    // Following: each line as it comes (--json: one JSON object per line).
    const show = (lines: LogLine[]) =>
      lines.length === 0 ? Promise.resolve() : writeAll(
        Deno.stdout,
        encoder.encode(
          (ctx.json ? lines.map((l) => JSON.stringify(l)).join("\n") : renderLogLines(lines)) +
            "\n",
        ),
      );
    await untilReaderGone((async () => {
      await show(page.lines);
      let after = page.next;
      while (true) {
        await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
        const more = await ctx.session.call<LogPage>("supervisor.logs", {
          ...(service ? { service } : {}),
          lines: 1000,
          after,
        });
        await show(more.lines);
        // A restarted supervisor numbers its lines afresh: follow from its count.
        after = more.next;
      }
    })());
    return {};
  },
};

const encoder = new TextEncoder();

/** One page of supervisor.audit. */
interface AuditPage {
  events: Record<string, unknown>[];
  next: string;
  truncated?: boolean;
  more?: boolean;
}

/** Audit events as journalctl shows lines: date and time, program, event, fields. */
function renderAuditEvents(events: readonly Record<string, unknown>[]): string {
  return events.map((e) => humanLine(JSON.stringify(e), { date: true, programWidth: 10 }))
    .join("\n");
}

const AUDIT: Command = {
  name: "audit",
  summary: "the audit trail, filtered; -f follows it",
  args: [],
  options: [
    { name: "follow", short: "f", summary: "keep printing new events until Ctrl-C" },
    { name: "since", value: "DURATION", summary: "only events from the last DURATION (10m, 2h)" },
    { name: "cap", value: "CAP_ID", summary: "only events about CAP_ID (its own, by it, from it)" },
    {
      name: "event",
      value: "EVENT",
      summary: "only EVENT, or every event under a prefix (cap, fs.open, auth.denied)",
    },
    LINES_OPTION(100),
  ],
  description: [
    "Every service's audit events (cap.issued, cap.revoked, auth.denied, fs.open, fs.read,",
    "svc.start, key.rotated, …), read by the supervisor from <state dir>/audit.log and",
    "audit.log.1, which stay 0600. Needs supervisor.audit (the operator token has it).",
  ],
  examples: [
    "strata-ctl audit -n 20",
    "strata-ctl audit --event auth.denied --since 1h",
    "strata-ctl audit -f --cap 3f9a0c1e5b7d4f2a8c6e0b1d3f5a7c9e",
    "strata-ctl audit --json | jq -r '.events[].event'",
  ],
  async run(ctx, input) {
    const o = input.options;
    const sinceText = o.since as string | undefined;
    const sinceMs = sinceText === undefined ? undefined : parseDuration(sinceText);
    if (sinceText !== undefined && sinceMs === undefined) {
      throw usage(
        `--since: cannot read "${sinceText}" as a duration`,
        "use e.g. 90s, 10m, 2h or 1d",
      );
    }
    const cap = o.cap as string | undefined;
    if (cap !== undefined && !/^[0-9a-f]{32}$/.test(cap)) {
      throw usage(
        `--cap: ${cap} is not a cap_id`,
        "a cap_id is 32 hex digits (strata-ctl token list)",
      );
    }
    const filters = {
      ...(cap !== undefined ? { cap_id: cap } : {}),
      ...(o.event !== undefined ? { event: o.event } : {}),
    };
    const page = await ctx.session.call<AuditPage>("supervisor.audit", {
      ...filters,
      lines: linesOf(input, 100),
      ...(sinceMs !== undefined ? { since_ms: Math.max(0, ctx.now() - sinceMs) } : {}),
    });
    if (o.follow !== true) {
      const note = page.more ? "\n(older events were not searched; narrow with --since)" : "";
      return {
        data: page,
        text: page.events.length ? renderAuditEvents(page.events) + note : undefined,
      };
    }
    const show = (events: Record<string, unknown>[]) =>
      events.length === 0 ? Promise.resolve() : writeAll(
        Deno.stdout,
        encoder.encode(
          (ctx.json ? events.map((e) => JSON.stringify(e)).join("\n") : renderAuditEvents(events)) +
            "\n",
        ),
      );
    await untilReaderGone((async () => {
      await show(page.events);
      let after = page.next;
      while (true) {
        await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
        const more = await ctx.session.call<AuditPage>("supervisor.audit", {
          ...filters,
          lines: 1000,
          after,
        });
        await show(more.events);
        after = more.next;
      }
    })());
    return {};
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

/** `--dir` of the cluster commands: the operator's cluster folder (default: here). */
function clusterDir(input: Input): string {
  const dir = (input.options.dir as string | undefined) ?? ".";
  return posix.resolve(Deno.cwd(), dir);
}

/** The cluster section a command that writes to etcd needs, and a client of its etcd. */
async function clusterOf(ctx: Context): Promise<{ name: string; root: string; etcd: EtcdHttp }> {
  const c = ctx.session.layout.cluster;
  if (!c) {
    throw usage(
      "this node is not configured for a cluster",
      "set STRATA_CLUSTER, STRATA_ETCD_ENDPOINTS and STRATA_CLUSTER_ROOT (see docs/cluster.md)",
    );
  }
  const { etcdHttp } = await import("../sources/cluster.ts");
  return { name: c.name, root: c.root, etcd: etcdHttp(ctx.session.layout) };
}

/** `--ttl` of `cluster join` and `cluster endorse`: how long the endorsement holds (ms). */
async function endorsementTtl(input: Input): Promise<number> {
  const ttlText = input.options.ttl as string | undefined;
  const ttlMs = ttlText === undefined
    ? (await import("./cluster.ts")).DEFAULT_ENDORSEMENT_TTL_MS
    : parseDuration(ttlText);
  if (ttlMs === undefined) {
    throw usage(`--ttl: cannot read "${ttlText}" as a duration`, "use e.g. 12h or 30d");
  }
  if (ttlMs < 1000) {
    // An endorsement that has expired when a node reads it vouches for nothing.
    throw usage(
      ttlMs === 0
        ? `--ttl: ${ttlText} is no lifetime; an endorsement holds at least 1s, none for ever, ` +
          "and nodes refuse it once it has expired"
        : `--ttl: ${ttlText} is shorter than a second`,
      "leave --ttl out for 30d, or give e.g. 12h or 90d",
    );
  }
  return ttlMs;
}

/** `--ttl` of the commands that endorse. */
const TTL: OptionSpec = {
  name: "ttl",
  value: "DURATION",
  summary: "how long the endorsement holds, at least 1s (default 30d)",
};

const DIR: OptionSpec = {
  name: "dir",
  value: "DIR",
  summary: "the operator's cluster folder: root key and CA (default: here)",
  complete: "files",
};

const CLUSTER: Group = {
  name: "cluster",
  summary: "the cluster's root of trust and its nodes (docs/cluster.md)",
  commands: [
    {
      name: "init",
      summary: "create the cluster's root key and CA in --dir (kept by the operator)",
      args: [],
      options: [DIR, { name: "name", value: "NAME", summary: "the cluster's name (for the CA)" }],
      examples: ["strata-ctl cluster init --dir ~/strata-root"],
      async run(ctx, input) {
        const name = (input.options.name as string | undefined) ??
          ctx.session.layout.cluster?.name ?? "strata";
        const { initCluster } = await import("./cluster.ts");
        const r = await initCluster(clusterDir(input), { name });
        return {
          data: r,
          text: `root key ${r.root_kid} in ${r.dir}/root.key (keep it offline)
` +
            `trust anchor: ${r.root_pub} (every node's --cluster-root)
cluster CA: ${r.ca}`,
        };
      },
    },
    {
      name: "join",
      summary: "endorse NODE's identity keys with the root key, in etcd, and issue its certificate",
      args: [{ name: "NODE" }],
      options: [
        DIR,
        { name: "keys", value: "FILE", summary: "NODE's identity.pub (default: ask this node)" },
        TTL,
        { name: "host", value: "LIST", summary: "IPs or names of NODE's tcp:// endpoints" },
      ],
      examples: ["strata-ctl cluster join a --dir ~/strata-root --host 10.0.0.1"],
      async run(ctx, input) {
        const node = input.args[0];
        const ttlMs = await endorsementTtl(input);
        const file = input.options.keys as string | undefined;
        const keys = file
          ? JSON.parse(await Deno.readTextFile(file))
          : await ctx.session.call("identity.keys", undefined, { auth: false });
        const hosts = ((input.options.host as string | undefined) ?? "").split(",")
          .filter((h) => h !== "");
        const cluster = await clusterOf(ctx);
        try {
          const { joinNode } = await import("./cluster.ts");
          const r = await joinNode(node, {
            dir: clusterDir(input),
            anchor: cluster.root,
            cluster: cluster.name,
            keys,
            ttlMs,
            etcd: cluster.etcd,
            hosts,
          });
          return {
            data: r,
            text: `endorsed ${r.issuer} (${r.kids.length} key${r.kids.length === 1 ? "" : "s"})` +
              ` until ${r.expires} at ${r.etcd_key}` +
              (r.cert
                ? `
certificate ${r.cert}, key ${r.key}: hand them to ${node}`
                : ""),
          };
        } finally {
          cluster.etcd.close();
        }
      },
    },
    {
      name: "endorse",
      summary: "endorse the keys NODE's identity published as pending after a key rotation",
      args: [{ name: "NODE" }],
      options: [
        DIR,
        TTL,
      ],
      description: [
        "identity.rotate_key on NODE publishes its new key set in etcd, signed by a key",
        "the root endorses for NODE; this checks that signature and endorses the set",
        "(the new key, and old ones while tokens they signed can still be valid).",
        "Run it anywhere the root key is: it does not need to reach NODE.",
      ],
      examples: ["strata-ctl cluster endorse a --dir ~/strata-root"],
      async run(ctx, input) {
        const ttlMs = await endorsementTtl(input);
        const cluster = await clusterOf(ctx);
        try {
          const { endorseNode } = await import("./cluster.ts");
          const r = await endorseNode(input.args[0], {
            dir: clusterDir(input),
            anchor: cluster.root,
            cluster: cluster.name,
            ttlMs,
            etcd: cluster.etcd,
          });
          return {
            data: r,
            text: `endorsed ${r.issuer} (${r.kids.length} key${r.kids.length === 1 ? "" : "s"}` +
              `, new: ${r.added.join(", ") || "none"}) until ${r.expires} at ${r.etcd_key}`,
          };
        } finally {
          cluster.etcd.close();
        }
      },
    },
    {
      name: "status",
      summary: "every node: endorsement, registry lease, services and their health, etcd",
      args: [],
      options: [],
      description: [
        "Nodes come from the endorsements in etcd and from this node's registry; a node",
        "is up while its registry's lease lives. Another node's service is probed over",
        "its tcp:// endpoint when that host:port is in --cluster-peers (STRATA_CLUSTER_PEERS).",
      ],
      examples: ["strata-ctl cluster status"],
      async run(ctx) {
        const cluster = await clusterOf(ctx);
        try {
          const { clusterStatus, renderClusterStatus } = await import("./cluster_status.ts");
          const s = await clusterStatus(ctx.session, { etcd: cluster.etcd });
          return { data: s, text: renderClusterStatus(s) };
        } finally {
          cluster.etcd.close();
        }
      },
    },
    {
      name: "leave",
      summary: "withdraw NODE's endorsement: no node trusts its keys any more",
      args: [{ name: "NODE" }],
      options: [DIR],
      examples: ["strata-ctl cluster leave b --dir ~/strata-root"],
      async run(ctx, input) {
        const cluster = await clusterOf(ctx);
        try {
          const { leaveNode } = await import("./cluster.ts");
          const r = await leaveNode(input.args[0], {
            dir: clusterDir(input),
            anchor: cluster.root,
            cluster: cluster.name,
            etcd: cluster.etcd,
          });
          return {
            data: r,
            text: (r.withdrawn
              ? `withdrew the endorsement of ${r.node}`
              : `${r.node} had no endorsement that holds; withdrew it all the same`) +
              ` (seq ${r.seq}, until ${r.expires})`,
          };
        } finally {
          cluster.etcd.close();
        }
      },
    },
  ],
};

/** Every command, in the order `--help` lists them. */
export const COMMANDS: readonly Entry[] = [
  STATUS,
  SVC,
  LOGS,
  AUDIT,
  TOKEN,
  FS,
  REGISTRY,
  CLUSTER,
  COMPLETION,
  VERSION_COMMAND,
  HELP,
];

/** The text of `strata-ctl --help`: the commands, then the raw methods. */
export function helpText(): string {
  return overviewHelp(COMMANDS, METHODS);
}
