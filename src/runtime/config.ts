/**
 * Where a Strata node keeps its sockets and state, read from command-line
 * options (which is how the supervisor configures its children and how
 * `deno compile` bakes a layout in). Every path any program uses is derived
 * here, so the permissions module and the programs cannot disagree.
 * @module
 */

import { SUPERVISED, type SupervisedService } from "../api/mod.ts";
import { formatEndpoint, isIpv4Address, parseEndpoint } from "../wire/endpoint.ts";
import { isWithin, posix } from "./paths.ts";

/** The services the supervisor runs, in dependency order. */
export const CHILD_SERVICES: readonly SupervisedService[] = SUPERVISED;

/** A service the supervisor runs. */
export type ChildService = SupervisedService;

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
  /**
   * A tcp:// endpoint (TLS) a service listens on besides its socket, e.g.
   * `{ fs: "tcp://127.0.0.1:7402" }` (`--fs-listen`). Needs `tls.cert` and `tls.key`.
   */
  listen?: Partial<Record<ChildService, string>>;
  /**
   * TLS files (PEM): the certificate and key tcp:// listeners present
   * (`--tls-cert`, `--tls-key`), and the CA clients check tcp:// servers
   * against (`--tls-ca`).
   */
  tls?: TlsFiles;
  /** Cluster mode (see docs/cluster.md); absent: a single node, the default. */
  cluster?: ClusterConfig;
}

/**
 * Cluster mode: the etcd the node shares state through and the trust anchor
 * it judges that state by (`--cluster`, `--etcd-endpoints`, `--cluster-root`,
 * `--cluster-ca`; STRATA_CLUSTER and friends).
 */
export interface ClusterConfig {
  /** The cluster's name: tokens' audience and the etcd prefix `/strata/<name>/`. */
  name: string;
  /** etcd client URLs, `http://host:port` or `https://host:port` (Deno grants them exactly). */
  etcd: string[];
  /** TLS to etcd (`https://` endpoints): the CA etcd's certificate must chain to (`--etcd-ca`). */
  etcdCa?: string;
  /** The client certificate to present when etcd asks for one (`--etcd-cert`; `--client-cert-auth`). */
  etcdCert?: string;
  /** Its private key (`--etcd-key`). */
  etcdKey?: string;
  /**
   * The DNS name in etcd's certificate the client checks (`--etcd-server-name`)
   * instead of the endpoint's host: for endpoints given as IP addresses whose
   * certificate names no IP address.
   */
  etcdServerName?: string;
  /** The cluster's root public key (a k4.public PASERK file): the trust anchor. */
  root: string;
  /**
   * The cluster CA certificate (PEM) for tcp:// between nodes: clients check
   * servers against it, and servers ask clients for a certificate it signed
   * (mutual TLS; required when a service listens on tcp://).
   */
  ca?: string;
  /**
   * How long (ms) a node may be cut off from etcd before it refuses other
   * nodes' tokens (`--partition-bound-ms`; default {@link DEFAULT_PARTITION_BOUND_MS}).
   */
  partitionBoundMs?: number;
  /**
   * The `host:port`s of other nodes' tcp:// endpoints this node's strata-ctl
   * may dial (`--cluster-peers`, STRATA_CLUSTER_PEERS): its exact net grant
   * for `--node NAME`.
   */
  peers?: string[];
}

/** A node cut off from etcd this long refuses other nodes' tokens (docs/cluster.md). */
export const DEFAULT_PARTITION_BOUND_MS = 30_000;

/** The PEM files of the tcp:// transport. */
export interface TlsFiles {
  /**
   * The certificate chain tcp:// listeners present; in cluster mode also the
   * client certificate strata-ctl `--node` presents to other nodes.
   */
  cert?: string;
  /** Its private key (read by a tcp:// listener, and in cluster mode with peers by strata-ctl). */
  key?: string;
  /** The CA clients check tcp:// servers' certificates against. */
  ca?: string;
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

/** Checks the tcp:// listen endpoints and TLS files; they travel as options. */
function checkTransport(layout: Layout): Pick<Layout, "listen" | "tls"> {
  const listen: Partial<Record<ChildService, string>> = {};
  for (const [service, url] of Object.entries(layout.listen ?? {})) {
    if (url === undefined || url === "") continue;
    if (!(CHILD_SERVICES as readonly string[]).includes(service)) {
      throw new ConfigError(
        `${service} cannot listen on tcp://; only ${CHILD_SERVICES.join(", ")}`,
      );
    }
    let ep;
    try {
      ep = parseEndpoint(url, `--${service}-listen`);
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
    if (ep.kind !== "tcp") {
      throw new ConfigError(`--${service}-listen: must be tcp://host:port (its socket is given)`);
    }
    if (!isIpv4Address(ep.host)) {
      throw new ConfigError(
        `--${service}-listen: ${url} names a host; give the IPv4 address to bind ` +
          `(tcp://127.0.0.1:${ep.port}, or tcp://0.0.0.0:${ep.port} for every interface)`,
      );
    }
    listen[service as ChildService] = formatEndpoint(ep);
  }
  const tls: TlsFiles = {};
  for (const k of ["cert", "key", "ca"] as const) {
    const file = layout.tls?.[k];
    if (file) tls[k] = checkDir(file, `--tls-${k}`);
  }
  if (Object.keys(listen).length > 0 && (!tls.cert || !tls.key)) {
    throw new ConfigError(
      "a tcp:// listen endpoint needs --tls-cert=FILE and --tls-key=FILE (PEM): it serves TLS only",
    );
  }
  return {
    ...(Object.keys(listen).length > 0 ? { listen } : {}),
    ...(Object.keys(tls).length > 0 ? { tls } : {}),
  };
}

const ETCD_URL_RE = /^(https?):\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const IP_HOST_RE = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+)$/;
const DNS_NAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Checks TLS to etcd: https:// endpoints need the CA; the files only with https://. */
function checkEtcdTls(cluster: ClusterConfig): Partial<ClusterConfig> {
  const { etcd, etcdCa: ca, etcdCert: cert, etcdKey: key, etcdServerName: name } = cluster;
  const secure = etcd.filter((u) => u.startsWith("https://"));
  if (secure.length === 0) {
    const given = [[ca, "--etcd-ca"], [cert, "--etcd-cert"], [key, "--etcd-key"], [
      name,
      "--etcd-server-name",
    ]].find(([v]) => v);
    if (given) {
      throw new ConfigError(
        `${given[1]}: only for https:// etcd endpoints; --etcd-endpoints are http://`,
      );
    }
    return {};
  }
  if (secure.length !== etcd.length) {
    throw new ConfigError(
      "--etcd-endpoints: give every member as https:// or every one as http://, not both",
    );
  }
  if (!ca) {
    throw new ConfigError(
      "--etcd-ca: https:// etcd endpoints need the CA (PEM file) etcd's certificate chains to",
    );
  }
  if (!cert !== !key) {
    throw new ConfigError(
      "--etcd-cert and --etcd-key: give both (the client certificate etcd asks for) or neither",
    );
  }
  if (name !== undefined && (!DNS_NAME_RE.test(name) || IP_HOST_RE.test(name))) {
    throw new ConfigError(
      `--etcd-server-name: give a DNS name in etcd's certificate (not an IP address): ${name}`,
    );
  }
  return {
    etcdCa: checkDir(ca, "--etcd-ca"),
    ...(cert ? { etcdCert: checkDir(cert, "--etcd-cert") } : {}),
    ...(key ? { etcdKey: checkDir(key, "--etcd-key") } : {}),
    ...(name ? { etcdServerName: name } : {}),
  };
}

/** Checks the cluster section; cluster mode needs a name, etcd endpoints and the root key. */
function checkCluster(cluster: ClusterConfig | undefined): Pick<Layout, "cluster"> {
  if (cluster === undefined) return {};
  const { name, etcd, root, ca, partitionBoundMs: bound, peers } = cluster;
  const tlsGiven = cluster.etcdCa || cluster.etcdCert || cluster.etcdKey || cluster.etcdServerName;
  if (!name && etcd.length === 0 && !root && !ca && !tlsGiven) return {};
  if (bound !== undefined && (!Number.isSafeInteger(bound) || bound < 100)) {
    throw new ConfigError(
      `--partition-bound-ms: give whole milliseconds, at least 100 (default 30000): ${bound}`,
    );
  }
  if (!name) {
    throw new ConfigError(
      "--cluster: cluster settings are given (etcd endpoints, the cluster root or its CA) but " +
        "no cluster name; give the name every node of the cluster shares",
    );
  }
  if (!NODE_ID_RE.test(name)) {
    throw new ConfigError(
      `--cluster: the cluster name must be 1-63 letters, digits, ".", "_" or "-": ${name}`,
    );
  }
  if (etcd.length === 0) {
    throw new ConfigError(
      "--etcd-endpoints: cluster mode needs http://host:port,... (or https://) of etcd",
    );
  }
  for (const url of etcd) {
    const m = ETCD_URL_RE.exec(url);
    if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) {
      throw new ConfigError(
        `--etcd-endpoints: ${url} is not http://host:port or https://host:port`,
      );
    }
  }
  for (const peer of peers ?? []) {
    const m = ETCD_URL_RE.exec(`http://${peer}`);
    if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) {
      throw new ConfigError(`--cluster-peers: ${peer} is not host:port (a peer's tcp:// endpoint)`);
    }
  }
  if (!root) {
    throw new ConfigError(
      "--cluster-root: cluster mode needs the root public key file (strata-ctl cluster init)",
    );
  }
  return {
    cluster: {
      name,
      etcd: [...etcd],
      ...checkEtcdTls(cluster),
      root: checkDir(root, "--cluster-root"),
      ...(ca ? { ca: checkDir(ca, "--cluster-ca") } : {}),
      ...(bound !== undefined ? { partitionBoundMs: bound } : {}),
      ...(peers && peers.length > 0 ? { peers: [...peers] } : {}),
    },
  };
}

/** Checks and normalises a layout; throws ConfigError naming the bad value. */
export function checkLayout(layout: Layout): Layout {
  if (!NODE_ID_RE.test(layout.nodeId)) {
    throw new ConfigError(
      `node id must be 1-63 letters, digits, ".", "_" or "-": ${layout.nodeId}`,
    );
  }
  const checked = {
    runtimeDir: checkDir(layout.runtimeDir, "runtime dir"),
    stateDir: checkDir(layout.stateDir, "state dir"),
    nodeId: layout.nodeId,
    fsRoots: layout.fsRoots.filter((r) => r !== "").map((r) => {
      // Roots travel colon-separated (--fs-roots, STRATA_FS_ROOTS).
      if (r.includes(":")) throw new ConfigError(`fs root must not contain a colon: ${r}`);
      return checkDir(r, "fs root");
    }),
    ...(layout.groupAccess ? { groupAccess: true } : {}),
    ...checkTransport(layout),
    ...checkCluster(layout.cluster),
  };
  if (checked.listen && checked.cluster && !checked.cluster.ca) {
    throw new ConfigError(
      "--cluster-ca: in cluster mode tcp:// endpoints are mutual TLS; give the cluster CA " +
        "(ca.pem of strata-ctl cluster init) that callers' certificates must chain to",
    );
  }
  for (
    const [key, option] of [[checked.tls?.key, "--tls-key"], [
      checked.cluster?.etcdKey,
      "--etcd-key",
    ]]
  ) {
    const root = key && checked.fsRoots.find((r) => isWithin(key, r));
    if (root) {
      throw new ConfigError(
        `${option}: ${key} lies inside the export root ${root}, which fs serves; keep it outside`,
      );
    }
  }
  return checked;
}

/**
 * The transport part of a layout from environment variables (how the
 * launcher, `deno task compile` and `deno task install` take it):
 * STRATA_<SERVICE>_LISTEN=tcp://host:port, STRATA_TLS_CERT, STRATA_TLS_KEY
 * and STRATA_TLS_CA (PEM files). Checked by checkLayout like the options.
 */
export function transportFromEnv(
  get: (name: string) => string | undefined,
): Pick<Layout, "listen" | "tls"> {
  const listen = Object.fromEntries(
    CHILD_SERVICES.map((s) => [s, get(`STRATA_${s.toUpperCase()}_LISTEN`)]).filter(([, v]) => v),
  );
  const tls = {
    cert: get("STRATA_TLS_CERT"),
    key: get("STRATA_TLS_KEY"),
    ca: get("STRATA_TLS_CA"),
  };
  return { listen, tls };
}

/** Where each cluster setting comes from: its option and its environment variable. */
const CLUSTER_SETTINGS = {
  name: ["cluster", "STRATA_CLUSTER"],
  etcd: ["etcd-endpoints", "STRATA_ETCD_ENDPOINTS"],
  root: ["cluster-root", "STRATA_CLUSTER_ROOT"],
  ca: ["cluster-ca", "STRATA_CLUSTER_CA"],
  bound: ["partition-bound-ms", "STRATA_PARTITION_BOUND_MS"],
  peers: ["cluster-peers", "STRATA_CLUSTER_PEERS"],
  etcdCa: ["etcd-ca", "STRATA_ETCD_CA"],
  etcdCert: ["etcd-cert", "STRATA_ETCD_CERT"],
  etcdKey: ["etcd-key", "STRATA_ETCD_KEY"],
  etcdServerName: ["etcd-server-name", "STRATA_ETCD_SERVER_NAME"],
} as const;

/** The cluster section from options or variables; undefined when none is set. */
export function clusterSection(
  get: (name: string) => string | undefined,
  from: "option" | "env",
): ClusterConfig | undefined {
  const at = from === "option" ? 0 : 1;
  const [name, etcd, root, ca] = (["name", "etcd", "root", "ca"] as const).map(
    (k) => get(CLUSTER_SETTINGS[k][at]) || undefined,
  );
  const etcdTls = Object.fromEntries(
    (["etcdCa", "etcdCert", "etcdKey", "etcdServerName"] as const)
      .map((k) => [k, get(CLUSTER_SETTINGS[k][at]) || undefined])
      .filter(([, v]) => v !== undefined),
  );
  if (!name && !etcd && !root && !ca && Object.keys(etcdTls).length === 0) {
    return undefined;
  }
  const bound = get(CLUSTER_SETTINGS.bound[at]);
  const peers = (get(CLUSTER_SETTINGS.peers[at]) ?? "").split(",").filter((p) => p !== "");
  return {
    name: name ?? "",
    etcd: (etcd ?? "").split(",").filter((e) => e !== ""),
    ...etcdTls,
    root: root ?? "",
    ...(ca ? { ca } : {}),
    ...(bound ? { partitionBoundMs: Number(bound) } : {}),
    ...(peers.length > 0 ? { peers } : {}),
  };
}

/**
 * The cluster part of a layout from environment variables (the launcher's
 * way, like {@link transportFromEnv}): STRATA_CLUSTER, STRATA_ETCD_ENDPOINTS
 * (comma-separated http://host:port or https://), STRATA_CLUSTER_ROOT,
 * STRATA_CLUSTER_CA, and for https:// STRATA_ETCD_CA,
 * STRATA_ETCD_CERT, STRATA_ETCD_KEY and STRATA_ETCD_SERVER_NAME. Checked by checkLayout.
 */
export function clusterFromEnv(
  get: (name: string) => string | undefined,
): Pick<Layout, "cluster"> {
  const cluster = clusterSection(get, "env");
  return cluster ? { cluster } : {};
}

/**
 * The transport and cluster options `deno task install` and `deno task
 * compile` take (`--fs-listen`, `--tls-cert`, `--cluster`, `--etcd-endpoints`,
 * ...), each named after its variable (`--etcd-endpoints` is
 * STRATA_ETCD_ENDPOINTS).
 */
export const NODE_SETTING_OPTIONS: readonly string[] = [
  ...CHILD_SERVICES.map((s) => `${s}-listen`),
  ...["tls-cert", "tls-key", "tls-ca"],
  ...Object.values(CLUSTER_SETTINGS).map(([option]) => option),
];

/**
 * The transport and cluster part of a layout from {@link NODE_SETTING_OPTIONS}
 * (`options`, as parsed), else their STRATA_ variables (`get`): an option
 * wins.
 */
export function nodeSettings(
  options: Record<string, unknown>,
  get: (name: string) => string | undefined,
): Pick<Layout, "listen" | "tls" | "cluster"> {
  const setting = (variable: string) => {
    const option = variable.slice("STRATA_".length).toLowerCase().replaceAll("_", "-");
    const given = options[option];
    return typeof given === "string" && given !== "" ? given : get(variable) || undefined;
  };
  return { ...transportFromEnv(setting), ...clusterFromEnv(setting) };
}

/** The audience tokens of this node carry: the cluster's name, or "strata" on a single node. */
export function audienceOf(layout: Layout): string {
  return layout.cluster?.name ?? "strata";
}

/** The command-line form of a layout (the inverse of parseLayoutArgs, in layout_args.ts). */
export function layoutArgs(layout: Layout): string[] {
  const args = [
    `--runtime-dir=${layout.runtimeDir}`,
    `--state-dir=${layout.stateDir}`,
    `--node-id=${layout.nodeId}`,
  ];
  if (layout.fsRoots.length > 0) args.push(`--fs-roots=${layout.fsRoots.join(":")}`);
  if (layout.groupAccess) args.push("--group-access");
  for (const [service, url] of Object.entries(layout.listen ?? {})) {
    args.push(`--${service}-listen=${url}`);
  }
  for (const k of ["cert", "key", "ca"] as const) {
    if (layout.tls?.[k]) args.push(`--tls-${k}=${layout.tls[k]}`);
  }
  const c = layout.cluster;
  if (c) {
    args.push(`--cluster=${c.name}`, `--etcd-endpoints=${c.etcd.join(",")}`);
    args.push(`--cluster-root=${c.root}`);
    if (c.ca) args.push(`--cluster-ca=${c.ca}`);
    if (c.partitionBoundMs !== undefined) args.push(`--partition-bound-ms=${c.partitionBoundMs}`);
    if (c.peers) args.push(`--cluster-peers=${c.peers.join(",")}`);
    for (const k of ["etcdCa", "etcdCert", "etcdKey", "etcdServerName"] as const) {
      if (c[k]) args.push(`--${CLUSTER_SETTINGS[k][0]}=${c[k]}`);
    }
  }
  return args;
}

/** The socket a service listens on. */
export function socketPath(layout: Layout, service: ServiceName): string {
  return `${layout.runtimeDir}/${service}.sock`;
}

/**
 * The endpoint URLs a service listens on: its socket (`unix://`), and the
 * tcp:// endpoint the layout gives it, if any.
 */
export function endpointsOf(layout: Layout, service: ServiceName): string[] {
  const tcp = layout.listen?.[service as ChildService];
  return [`unix://${socketPath(layout, service)}`, ...(tcp ? [tcp] : [])];
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
    /** Locked by the running supervisor: one node per runtime dir (0600, empty). */
    supervisorLock: `${d}/supervisor.lock`,
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
    /** The capabilities identity has issued, for listing: segments of JSON lines (0700, 0600). */
    issuedDir: `${d}/issued`,
    /** The same record as one file, as earlier versions kept it: read once and removed. */
    issuedLog: `${d}/issued.log`,
    /** Cluster mode: revocations not yet committed in etcd, retried until they are (0600). */
    etcdPending: `${d}/etcd_pending.json`,
    etcdPendingTmp: `${d}/etcd_pending.json.tmp`,
    /** Audit events of every service (JSON lines), and the previous one after rotation. */
    audit: `${d}/audit.log`,
    auditOld: `${d}/audit.log.1`,
    /** The supervised services' log files (`<service>.log`, rotated to `.log.1`; 0600). */
    logs: `${d}/logs`,
    /** Locked by the running identity: one identity per state dir (0600, empty). */
    identityLock: `${d}/identity.lock`,
  };
}
