/**
 * The methods strata-ctl knows, with a one-line summary and an example each,
 * for `--help`, suggestions and shell completion.
 * @module
 */

/** One method as the CLI presents it. */
export interface MethodInfo {
  method: string;
  summary: string;
  /** Example params, or undefined when it takes none. */
  example?: Record<string, unknown>;
  /** Whether it needs a token. */
  protected: boolean;
}

/** Every method of every service. */
export const METHODS: readonly MethodInfo[] = [
  { method: "supervisor.status", summary: "node id, uptime and version", protected: false },
  {
    method: "supervisor.svc.list",
    summary: "state, pid and restarts of each service",
    protected: false,
  },
  {
    method: "supervisor.svc.status",
    summary: "one service in detail: restarts by cause, memory, endpoint",
    example: { name: "fs" },
    protected: false,
  },
  {
    method: "supervisor.logs",
    summary: "the services' last log lines (operator)",
    example: { service: "fs", lines: 100 },
    protected: true,
  },
  {
    method: "supervisor.audit",
    summary: "the audit trail, filtered; a cursor to follow it (operator)",
    example: { event: "auth.denied", lines: 50 },
    protected: true,
  },
  {
    method: "supervisor.svc.start",
    summary: "start a service (lifts a quarantine)",
    example: { name: "fs" },
    protected: true,
  },
  {
    method: "supervisor.svc.stop",
    summary: "drain and stop a service",
    example: { name: "fs", drain_ms: 5000 },
    protected: true,
  },
  {
    method: "supervisor.svc.restart",
    summary: "stop, then start a service",
    example: { name: "fs" },
    protected: true,
  },
  {
    method: "identity.issue",
    summary: "mint a capability token (no broader than yours)",
    example: { service: "fs", actions: ["open", "read", "list"], path_prefix: "/tmp" },
    protected: true,
  },
  {
    method: "identity.revoke",
    summary: "revoke a capability and everything delegated from it",
    example: { cap_id: "<cap_id>" },
    protected: true,
  },
  {
    method: "identity.list",
    summary: "the live capabilities issued (operator: all; else your tree)",
    example: { service: "fs", limit: 100 },
    protected: true,
  },
  {
    method: "identity.introspect",
    summary: "is this token valid, and what does it say",
    example: { token: "<token>" },
    protected: false,
  },
  {
    method: "identity.rotate_key",
    summary: "sign with a new key from now on (operator only)",
    protected: true,
  },
  { method: "identity.keys", summary: "the published public key set", protected: false },
  { method: "fs.list", summary: "list a directory", example: { path: "/tmp" }, protected: true },
  {
    method: "fs.open",
    summary: "open a file for reading; returns a handle",
    example: { path: "/tmp/test.txt" },
    protected: true,
  },
  {
    method: "fs.read",
    summary: "read from a handle",
    example: { handle: "h1", offset: 0, size: 4096 },
    protected: true,
  },
  { method: "fs.close", summary: "close a handle", example: { handle: "h1" }, protected: true },
  { method: "fs.roots", summary: "the export roots fs serves", protected: false },
  { method: "registry.list", summary: "every registered service", protected: false },
  {
    method: "registry.resolve",
    summary: "the endpoint of a service",
    example: { service: "fs" },
    protected: false,
  },
  {
    method: "registry.register",
    summary: "register a service of your own",
    example: { service: "my-svc", endpoint: "unix:///run/strata/my-svc.sock", api_v: 1 },
    protected: true,
  },
  {
    method: "registry.deregister",
    summary: "remove your registration",
    example: { service: "my-svc" },
    protected: true,
  },
];

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** The closest candidate to `word`, if it is close enough to be a typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}
