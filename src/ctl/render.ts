/**
 * The human form of each result strata-ctl prints: tables for lists, aligned
 * label/value lines for one record, one sentence for an action. Pure
 * functions of the result, the style and the clock.
 * @module
 */

import type { ListedCapability } from "../api/identity.ts";
import { humanLine } from "../runtime/log.ts";
import type { Claims } from "../token/claims.ts";
import {
  type Color,
  fields,
  formatBytes,
  formatDuration,
  formatRelative,
  formatTime,
  list,
  paint,
  type Style,
  table,
} from "./format.ts";

/** One service as supervisor.svc.list reports it. */
export interface SvcEntry {
  name: string;
  state: string;
  pid: number | null;
  restarts: number;
  last_exit: { code: number; signal: string | null } | null;
  since: string;
  waiting_for?: string[];
}

/** supervisor.svc.status: one service in detail. */
export interface SvcDetail extends SvcEntry {
  restarts_by: { crash: number; operator: number };
  memory: { rss: number; heap_used: number; heap_total: number; external: number } | null;
  endpoint: string;
  log_file: string | null;
}

/** One line of supervisor.logs. */
export interface LogLine {
  seq: number;
  ts: string;
  service: string;
  line: string;
}

/** The result of supervisor.logs. */
export interface LogPage {
  lines: LogLine[];
  next: number;
  truncated?: boolean;
}

/** The result of supervisor.status. */
export interface NodeStatus {
  node_id: string;
  uptime_sec: number;
  version: string;
  services: { total: number; healthy: number };
}

/** One entry of registry.list. */
export interface RegistryEntry {
  service: string;
  endpoint: string;
  api_v: number;
  owner?: string;
  /** Cluster mode: the node the entry belongs to. */
  node?: string;
}

/** The result of fs.list. */
export interface Listing {
  path: string;
  entries: { name: string; is_dir: boolean; is_symlink: boolean; size: number }[];
  truncated?: boolean;
}

/** The result of identity.introspect. */
export interface Introspection {
  valid: boolean;
  claims?: Claims;
  reason?: string;
}

/** The result of identity.revoke. */
export interface Revoked {
  status: string;
  cap_id: string;
  already?: boolean;
}

/** One capability of identity.list. */
export type IssuedCap = ListedCapability;

/** The result of identity.list. */
export interface CapList {
  capabilities: IssuedCap[];
  total: number;
  truncated?: boolean;
  dropped?: number;
}

/** How a result is shown: the style, the clock for relative times, where a token came from. */
export interface RenderOptions {
  style: Style;
  /** Now, in ms since the epoch (default Date.now()). */
  now?: number;
  /** Where an inspected token came from ("-token", "STRATA_TOKEN", …). */
  source?: string;
}

const STATE_COLOR: Readonly<Record<string, Color>> = {
  Healthy: "green",
  Starting: "yellow",
  Restarting: "yellow",
  Declared: "yellow",
  Crashed: "red",
  Quarantined: "red",
  Stopped: "dim",
};

/** A supervisor state, coloured by how well it is going. */
export function stateText(state: string, style: Style): string {
  return paint(STATE_COLOR[state] ?? "bold", state, style);
}

function lastExit(e: SvcEntry["last_exit"]): string {
  if (!e) return "-";
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}

/** supervisor.svc.list as a table: name, state, pid, restarts, since, last exit. */
export function renderSvcList(r: { services: SvcEntry[] }, options: RenderOptions): string {
  const { style, now = Date.now() } = options;
  const rows = r.services.map((s) => [
    s.name,
    stateText(s.state, style) +
    (s.waiting_for?.length ? ` (waits for ${s.waiting_for.join(", ")})` : ""),
    s.pid === null ? "-" : String(s.pid),
    String(s.restarts),
    formatRelative(Date.parse(s.since), now),
    lastExit(s.last_exit),
  ]);
  return table(
    [
      { header: "NAME" },
      { header: "STATE" },
      { header: "PID", align: "right" },
      { header: "RESTARTS", align: "right" },
      { header: "SINCE" },
      { header: "LAST EXIT" },
    ],
    rows,
    style,
  );
}

/** The answer of svc start, stop or restart, in one line. */
export function renderSvcAction(verb: string, s: SvcEntry, options: RenderOptions): string {
  const { style } = options;
  const pid = s.pid === null ? "" : `, pid ${s.pid}`;
  return `${verb} ${s.name}: ${stateText(s.state, style)}${pid}`;
}

/** supervisor.status as label/value lines, with a pointer when not all is well. */
export function renderStatus(r: NodeStatus, options: RenderOptions): string {
  const { style } = options;
  const { total, healthy } = r.services;
  const health = `${healthy} of ${total} healthy`;
  const text = fields([
    ["node", r.node_id],
    ["version", r.version],
    ["uptime", formatDuration(r.uptime_sec * 1000)],
    ["services", paint(healthy === total ? "green" : "yellow", health, style)],
  ], style);
  return healthy === total ? text : `${text}\nsee which with \`strata-ctl svc list\``;
}

/** registry.list as a table. */
export function renderRegistryList(
  r: { services: RegistryEntry[] },
  options: RenderOptions,
): string {
  const { style } = options;
  // Cluster mode: every node's entries, so which node each is (three fs rows otherwise look alike).
  const nodes = r.services.some((s) => s.node !== undefined);
  const rows = r.services.map((s) => [
    ...(nodes ? [s.node ?? "-"] : []),
    s.service,
    s.endpoint,
    String(s.api_v),
    s.owner ?? "-",
  ]);
  return table(
    [
      ...(nodes ? [{ header: "NODE" }] : []),
      { header: "SERVICE" },
      { header: "ENDPOINT" },
      { header: "API" },
      { header: "OWNER" },
    ],
    rows,
    style,
  );
}

/** registry.resolve as label/value lines. */
export function renderResolved(r: RegistryEntry, options: RenderOptions): string {
  const { style } = options;
  return fields([["service", r.service], ["endpoint", r.endpoint], ["api", `v${r.api_v}`]], style);
}

/** fs.list as a table: type, size, name (folders end in "/", links in "@"). */
export function renderListing(r: Listing, options: RenderOptions): string {
  const { style } = options;
  if (r.entries.length === 0) return `${r.path}: empty`;
  const rows = r.entries.map((e) => {
    if (e.is_symlink) return ["link", "-", paint("cyan", `${e.name}@`, style)];
    if (e.is_dir) return ["dir", "-", paint("blue", `${e.name}/`, style)];
    return ["file", formatBytes(e.size), e.name];
  });
  const out = table(
    [{ header: "TYPE" }, { header: "SIZE", align: "right" }, { header: "NAME" }],
    rows,
    style,
  );
  return r.truncated
    ? `${out}\nonly the first ${r.entries.length} entries; ask for more with --limit (up to 5000)`
    : out;
}

function rateOf(c: Claims): string {
  const rate = c.constraints.rate_limit;
  if (!rate) return "-";
  const buckets = c.constraints.rate_buckets ?? [];
  return buckets.length > 1 ? `${rate} (counts against ${buckets.length} limits)` : rate;
}

function timeLine(rfc3339: string, now: number): string {
  const ms = Date.parse(rfc3339);
  return `${formatTime(ms)} (${formatRelative(ms, now)})`;
}

/** The claims of a token as label/value lines. */
export function claimLines(c: Claims, now: number): [string, string][] {
  return [
    ["cap_id", c.jti],
    ["subject", c.sub],
    ["service", c.service === "*" ? "* (every service)" : c.service],
    ["rights", list(c.rights)],
    ["prefix", c.constraints.path_prefix ?? "-"],
    ["rate", rateOf(c)],
    ["issued", timeLine(c.iat, now)],
    ["expires", timeLine(c.exp, now)],
    ["parent", c.parent ?? "- (a root token)"],
    ["issuer", c.iss],
  ];
}

/** identity.introspect: valid or why not, then the claims when there are any. */
export function renderIntrospection(r: Introspection, options: RenderOptions): string {
  const { style, now = Date.now(), source } = options;
  const valid = r.valid
    ? paint("green", "yes", style)
    : paint("red", `no (${r.reason ?? "invalid"})`, style);
  const pairs: [string, string][] = [["valid", valid]];
  if (r.claims) pairs.push(...claimLines(r.claims, now));
  if (source) pairs.push(["source", source]);
  return fields(pairs, style);
}

/** A newly issued token: the token itself first (to copy), then what it allows. */
export function renderIssued(
  token: string,
  claims: Claims | undefined,
  options: RenderOptions,
): string {
  const { style, now = Date.now() } = options;
  const pairs: [string, string][] = [["token", token]];
  if (claims) pairs.push(...claimLines(claims, now).filter(([k]) => k !== "issuer"));
  return fields(pairs, style);
}

/** identity.revoke in a sentence. */
export function renderRevoked(r: Revoked, options: RenderOptions): string {
  return r.already
    ? `${r.cap_id} was already revoked`
    : `${paint("bold", "revoked", options.style)} ${r.cap_id}; every service refuses it now`;
}

/** Log lines as journalctl shows them: date and time, service, level when not info, message, fields. */
export function renderLogLines(lines: readonly LogLine[]): string {
  return lines.map((l) => humanLine(l.line, { date: true, programWidth: 8 })).join("\n");
}

/** How `svc status` got on with the log lines: the lines, or why there are none. */
export type LogTail = { lines: LogLine[] } | { error: string };

/**
 * `svc status NAME` like `systemctl status`: the state and since when, pid,
 * restarts by cause, last exit, memory, endpoint, log file, then the last
 * log lines (or why they could not be read).
 */
export function renderSvcDetail(d: SvcDetail, tail: LogTail, options: RenderOptions): string {
  const { style, now = Date.now() } = options;
  const since = Date.parse(d.since);
  const memory = d.memory
    ? `${formatBytes(d.memory.rss)} resident (heap ${formatBytes(d.memory.heap_used)} of ${
      formatBytes(d.memory.heap_total)
    })`
    : "-";
  const head = `${paint("bold", d.name, style)}: ${stateText(d.state, style)} since ${
    formatTime(since)
  } (${formatRelative(since, now)})`;
  const body = fields([
    ["pid", d.pid === null ? "-" : String(d.pid)],
    [
      "restarts",
      `${d.restarts} (${d.restarts_by.crash} after a crash, ${d.restarts_by.operator} by an operator)`,
    ],
    ["last exit", lastExit(d.last_exit)],
    ["memory", memory],
    ["endpoint", d.endpoint],
    ["log", d.log_file ?? "-"],
  ], style);
  const logs = "lines" in tail
    ? (tail.lines.length ? renderLogLines(tail.lines) : "(no log lines yet)")
    : paint("dim", `(no log lines: ${tail.error})`, style);
  return `${head}\n${body}\n\n${logs}`;
}

/**
 * identity.list as a table, newest first: cap_id, subject, service, rights,
 * prefix, expiry, parent, state; then what was left out.
 */
export function renderCapList(r: CapList, options: RenderOptions): string {
  const { style, now = Date.now() } = options;
  if (r.capabilities.length === 0) return "no live capabilities";
  const rows = r.capabilities.map((c) => [
    c.cap_id,
    c.sub,
    c.service,
    // The root capability holds every right, also those added after it was minted.
    c.service === "*" && c.parent === undefined ? "(every right)" : list(c.rights),
    c.path_prefix ?? "-",
    formatRelative(c.exp * 1000, now),
    c.parent ?? "-",
    c.revoked
      ? paint(
        "red",
        c.revoked_via ? `revoked (via ${c.revoked_via.slice(0, 8)})` : "revoked",
        style,
      )
      : paint("green", "live", style),
  ]);
  const out = table(
    [
      { header: "CAP_ID" },
      { header: "SUBJECT" },
      { header: "SERVICE" },
      { header: "RIGHTS" },
      { header: "PREFIX" },
      { header: "EXPIRES" },
      { header: "PARENT" },
      { header: "STATE" },
    ],
    rows,
    style,
  );
  const notes: string[] = [];
  if (r.truncated) {
    notes.push(`only the newest ${r.capabilities.length} of ${r.total}; ask for more with -n`);
  }
  if (r.dropped) notes.push(`${r.dropped} older records were dropped to stay within bounds`);
  return [out, ...notes].join("\n");
}

/** One capability of identity.list as label/value lines, like `token inspect` of its token. */
export function renderCapRecord(c: IssuedCap, options: RenderOptions): string {
  const { style, now = Date.now() } = options;
  const when = (sec: number) => `${formatTime(sec * 1000)} (${formatRelative(sec * 1000, now)})`;
  const valid = c.revoked
    ? paint("red", `no (revoked${c.revoked_via ? ` via ${c.revoked_via}` : ""})`, style)
    : paint("green", "yes", style);
  return fields([
    ["valid", valid],
    ["cap_id", c.cap_id],
    ["subject", c.sub],
    ["service", c.service === "*" ? "* (every service)" : c.service],
    ["rights", list(c.rights)],
    ["prefix", c.path_prefix ?? "-"],
    ["rate", c.rate_limit ?? "-"],
    ["issued", when(c.iat)],
    ["expires", when(c.exp)],
    ["parent", c.parent ?? "- (a root token)"],
    ["source", "identity's record (token list)"],
  ], style);
}
