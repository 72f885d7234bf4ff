/**
 * Where a Strata node keeps its sockets and state, read from command-line
 * options (which is how the supervisor configures its children and how
 * `deno compile` bakes a layout in). Every path any program uses is derived
 * here, so the permissions module and the programs cannot disagree.
 * @module
 */

import { posix } from "node:path";
import { parseArgs } from "node:util";

/** The services the supervisor runs, in dependency order. */
export const CHILD_SERVICES = ["registry", "identity", "fs"] as const;

/** A service the supervisor runs. */
export type ChildService = typeof CHILD_SERVICES[number];

/** Every service with a socket. */
export type ServiceName = ChildService | "supervisor";

/** The node's layout: directories, node id, export roots. */
export interface Layout {
  /** Sockets, the published key set and the revocation list (0700). */
  runtimeDir: string;
  /** Keys, revocation log, operator token, audit log (0700). */
  stateDir: string;
  /** Names this node in token issuers ("identity@<nodeId>"). */
  nodeId: string;
  /** Directories fs may serve. */
  fsRoots: string[];
  /**
   * Let the service's group use the sockets: sockets 0660 and the runtime dir
   * 0750 instead of 0600 and 0700. (Sockets belong to the group the services
   * run as, e.g. systemd's Group=.)
   */
  groupAccess?: boolean;
}

/** The layout of a system install. */
export const DEFAULT_LAYOUT: Readonly<Layout> = {
  runtimeDir: "/run/strata",
  stateDir: "/var/lib/strata",
  nodeId: "local",
  fsRoots: [],
};

const NODE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** A configuration value that cannot work, with the fix in its message. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function checkDir(value: string, what: string): string {
  if (!posix.isAbsolute(value)) throw new ConfigError(`${what} must be an absolute path: ${value}`);
  // Deno's permission flags are comma-separated lists.
  if (value.includes(",")) throw new ConfigError(`${what} must not contain a comma: ${value}`);
  const n = posix.normalize(value);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

/** Checks and normalises a layout; throws ConfigError naming the bad value. */
export function checkLayout(layout: Layout): Layout {
  if (!NODE_ID_RE.test(layout.nodeId)) {
    throw new ConfigError(
      `node id must be 1-63 letters, digits, ".", "_" or "-": ${layout.nodeId}`,
    );
  }
  return {
    runtimeDir: checkDir(layout.runtimeDir, "runtime dir"),
    stateDir: checkDir(layout.stateDir, "state dir"),
    nodeId: layout.nodeId,
    fsRoots: layout.fsRoots.filter((r) => r !== "").map((r) => {
      // Roots travel colon-separated (--fs-roots, STRATA_FS_ROOTS).
      if (r.includes(":")) throw new ConfigError(`fs root must not contain a colon: ${r}`);
      return checkDir(r, "fs root");
    }),
    ...(layout.groupAccess ? { groupAccess: true } : {}),
  };
}

/** The options that carry a layout on a command line. */
const LAYOUT_OPTIONS = {
  "runtime-dir": { type: "string" },
  "state-dir": { type: "string" },
  "node-id": { type: "string" },
  "fs-roots": { type: "string" },
  "group-access": { type: "boolean" },
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
  const { values } = parseArgs({
    args,
    options: { ...LAYOUT_OPTIONS, ...extra },
    strict: true,
    allowPositionals: false,
  });
  const v = values as Record<string, string | boolean | undefined>;
  const layout = checkLayout({
    runtimeDir: (v["runtime-dir"] as string) ?? DEFAULT_LAYOUT.runtimeDir,
    stateDir: (v["state-dir"] as string) ?? DEFAULT_LAYOUT.stateDir,
    nodeId: (v["node-id"] as string) ?? DEFAULT_LAYOUT.nodeId,
    fsRoots: v["fs-roots"] !== undefined ? (v["fs-roots"] as string).split(":") : [],
    ...(v["group-access"] === true ? { groupAccess: true } : {}),
  });
  return { layout, options: v };
}

/** The command-line form of a layout (the inverse of parseLayoutArgs). */
export function layoutArgs(layout: Layout): string[] {
  const args = [
    `--runtime-dir=${layout.runtimeDir}`,
    `--state-dir=${layout.stateDir}`,
    `--node-id=${layout.nodeId}`,
  ];
  if (layout.fsRoots.length > 0) args.push(`--fs-roots=${layout.fsRoots.join(":")}`);
  if (layout.groupAccess) args.push("--group-access");
  return args;
}

/** The socket a service listens on. */
export function socketPath(layout: Layout, service: ServiceName): string {
  return `${layout.runtimeDir}/${service}.sock`;
}

/** The issuer name tokens of this node carry. */
export function issuerOf(layout: Layout): string {
  return `identity@${layout.nodeId}`;
}

/** Files in the runtime dir (volatile, rebuilt at start). */
export function runtimeFiles(layout: Layout) {
  const d = layout.runtimeDir;
  return {
    /** The published key set (JSON). */
    identityPub: `${d}/identity.pub`,
    identityPubTmp: `${d}/identity.pub.tmp`,
    /** The signed revocation list (a v4.public token). */
    revocations: `${d}/revocations`,
    revocationsTmp: `${d}/revocations.tmp`,
    /** Written by the supervisor once every service is Healthy (systemd's readiness check). */
    ready: `${d}/ready`,
  };
}

/** Files in the state dir (durable). */
export function stateFiles(layout: Layout) {
  const d = layout.stateDir;
  return {
    /** The signing key ring (0600). */
    keys: `${d}/keys.json`,
    keysTmp: `${d}/keys.json.tmp`,
    /** The operator's token (0600). */
    operatorToken: `${d}/operator.token`,
    operatorTokenTmp: `${d}/operator.token.tmp`,
    /** Append-only revocation log (JSON lines, fsynced). */
    revocationLog: `${d}/revocations.log`,
    revocationLogTmp: `${d}/revocations.log.tmp`,
    /** The capabilities identity has issued, for listing (JSON lines, not fsynced; 0600). */
    issuedLog: `${d}/issued.log`,
    issuedLogTmp: `${d}/issued.log.tmp`,
    /** Audit events of every service (JSON lines), and the previous one after rotation. */
    audit: `${d}/audit.log`,
    auditOld: `${d}/audit.log.1`,
    /** The supervised services' log files (`<service>.log`, rotated to `.log.1`; 0600). */
    logs: `${d}/logs`,
  };
}
