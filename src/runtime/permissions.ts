/**
 * The single source of truth for each program's Deno permissions.
 *
 * For a program and a layout this states exactly which endpoints it may
 * listen on or dial, `--allow-net` derived from them (`unix:<path>`, plus
 * read and write on that path, which Deno also requires for a Unix socket;
 * `host:port` for tcp://, plus read on the TLS files it needs), which files and folders it may read and
 * write, which environment variables it may read and, for the supervisor
 * alone, which programs it may run. The supervisor's spawn, the deno tasks
 * and `deno task compile` all take their flags from here. Nothing gets -A,
 * a bare --allow-read/--allow-write/--allow-net, --allow-sys or --allow-ffi.
 * @module
 */

import { isWithin } from "./paths.ts";
import { netGrant, parseEndpoint } from "../wire/endpoint.ts";
import {
  CHILD_SERVICES,
  endpointsOf,
  type Layout,
  runtimeFiles,
  type ServiceName,
  socketPath,
  stateFiles,
} from "./config.ts";

/** A Strata program. */
export type Program = ServiceName | "ctl";

/** Every program, in the order the supervisor starts the services. */
export const PROGRAMS: readonly Program[] = ["supervisor", ...CHILD_SERVICES, "ctl"];

/** A program's grants, as lists (empty means "none"). */
export interface PermissionSet {
  /** Endpoint URLs it listens on or dials: its `--allow-net` is derived from these. */
  endpoints: string[];
  /** Other `--allow-net` grants, host:port (etcd in cluster mode). */
  net: string[];
  /** The Unix socket paths among them (each also needs read and write on the path). */
  sockets: string[];
  read: string[];
  /** Refused reads, even below a granted folder (a more specific read grant still wins). */
  denyRead: string[];
  write: string[];
  env: string[];
  run: string[];
}

/** What the program needs besides the layout. */
export interface PermissionOptions {
  /** supervisor only: the exact commands it may start (its children). */
  run?: string[];
  /** ctl only: folders `fs get` may write downloads into (read and write, nothing else). */
  downloads?: string[];
  /**
   * ctl only, for `strata-ctl cluster`: the operator's cluster folder (root
   * key, CA), read and written, and openssl, run.
   */
  clusterDir?: string;
}

/** The variable that overrides the binary of a supervised service. */
export function binOverrideVar(service: string): string {
  return `STRATA_${service.toUpperCase()}_BIN`;
}

/** Environment variables strata-ctl reads. */
export const CTL_ENV = ["STRATA_TOKEN", "NO_COLOR"];

/** Debian's openssl: strata-ctl's cluster commands make the cluster CA and node certificates with it. */
export const OPENSSL = "/usr/bin/openssl";

/**
 * The programs that talk to etcd in cluster mode: every one (the verifying
 * services, identity, which writes its revocations there, and strata-ctl's
 * `cluster join`).
 */
const ETCD_CLIENTS: readonly Program[] = PROGRAMS;

function uniq(list: string[]): string[] {
  return [...new Set(list)];
}

/** The grants of `program` under `layout`. */
export function permissionSet(
  program: Program,
  layout: Layout,
  options: PermissionOptions = {},
): PermissionSet {
  const rt = runtimeFiles(layout);
  const st = stateFiles(layout);
  const verifierReads = [rt.identityPub, rt.revocations];
  // Rotating the audit log renames it, which needs read and write on both names.
  const audit = [st.audit, st.auditOld];
  const set: PermissionSet = {
    endpoints: [],
    net: [],
    sockets: [],
    read: [],
    denyRead: [],
    write: [],
    env: [],
    run: [],
  };
  const unix = (s: ServiceName) => `unix://${socketPath(layout, s)}`;
  const inRoot = (dir: string) => layout.fsRoots.some((root) => isWithin(dir, root));
  switch (program) {
    case "registry":
      set.endpoints = endpointsOf(layout, "registry");
      set.read = [...verifierReads, ...audit];
      set.write = audit;
      break;
    case "identity":
      // No other service's socket: the services read the revocation list file.
      set.endpoints = endpointsOf(layout, "identity");
      // A rename needs read and write on both names.
      set.read = [
        layout.stateDir,
        rt.identityPub,
        rt.identityPubTmp,
        rt.revocations,
        rt.revocationsTmp,
      ];
      set.write = [...set.read];
      break;
    case "fs":
      set.endpoints = endpointsOf(layout, "fs");
      set.read = [...verifierReads, ...audit, ...layout.fsRoots];
      // An export root may contain Strata's state dir (/tmp, or a root
      // around /var): fs reads there only what it is granted. Each entry it
      // is not granted is denied by name, not the folder: Deno 2.9.6 keeps
      // allows and denies in one list, each put in place by a binary search
      // whose order is not transitive (an allow outside a deny counts as
      // after it, one inside as before it), and the first entry that matches
      // a path decides. A folder's deny then landed before the grants inside
      // it, or after, by how many other grants sorted first: with the
      // production layout and roots around both folders, fs was refused its
      // own audit log; with the runtime dir sorting before the state dir
      // inside /tmp, one more grant in the runtime dir did the same
      // (tests/security/sandbox_test.ts tries such layouts). A deny with no
      // grant inside it sorts before every grant and is always right. The
      // runtime dir holds nothing secret (sockets fs may not connect to, the
      // public key set and revocation list, an empty lock): it gets no
      // denies, each of which costs every check (seven of them, 5% of a
      // listing's lstats). Listing either folder is refused by fs itself
      // (fs/service.ts).
      set.denyRead = (inRoot(layout.stateDir) ? Object.values(st) : [])
        .filter((p) => !set.read.includes(p));
      set.write = audit;
      break;
    case "supervisor":
      // Its health checks use the children's sockets.
      set.endpoints = [unix("supervisor"), ...CHILD_SERVICES.map(unix)];
      // It creates the runtime dir and clears stale sockets from it, and
      // keeps each child's log lines in the logs folder (rotating them is a
      // rename, which needs read and write there too).
      set.read = [layout.runtimeDir, ...audit, st.logs];
      set.write = [layout.runtimeDir, ...audit, st.logs];
      set.env = CHILD_SERVICES.map(binOverrideVar);
      set.run = options.run ?? [];
      break;
    case "ctl":
      // Every endpoint of the node: the registry may resolve a service to its tcp:// one.
      set.endpoints = [
        unix("supervisor"),
        ...CHILD_SERVICES.flatMap((s) => endpointsOf(layout, s)),
      ];
      // `fs get` writes a temporary file in a download folder and renames it
      // into place; Deno needs read as well as write on both names for a
      // rename (and to see whether DEST exists), so the folder is in both.
      set.read = [st.operatorToken, ...(options.downloads ?? [])];
      set.write = [...options.downloads ?? []];
      set.env = [...CTL_ENV]; // a copy: cluster mode appends to it
      if (options.clusterDir) {
        set.read.push(options.clusterDir);
        set.write.push(options.clusterDir);
        set.run = [OPENSSL];
      }
      break;
  }
  // Cluster mode: etcd's client URLs (exact host:port), the root public key to
  // judge by, and (https://) etcd's TLS files.
  const cluster = layout.cluster;
  let etcdNet: string[] = [];
  if (cluster && ETCD_CLIENTS.includes(program)) {
    etcdNet = cluster.etcd.map((url) => new URL(url).host);
    set.read.push(cluster.root);
    // TLS to etcd: its CA, and the client certificate and key etcd may ask for.
    for (const file of [cluster.etcdCa, cluster.etcdCert, cluster.etcdKey]) {
      if (file) set.read.push(file);
    }
  }
  const parsed = set.endpoints.map((e) => parseEndpoint(e));
  set.sockets = parsed.flatMap((e) => e.kind === "unix" ? [e.path] : []);
  // TLS files: a tcp:// listener reads its certificate and key, a dialer the CA.
  const tls = layout.tls ?? {};
  const listensTcp = program !== "ctl" &&
    parsed.some((e) => e.kind === "tcp");
  if (listensTcp && tls.cert && tls.key) set.read.push(tls.cert, tls.key);
  // Cluster mode: a tcp:// listener asks callers for a certificate of the cluster CA.
  if (listensTcp && cluster?.ca) set.read.push(cluster.ca);
  if (program === "ctl" && tls.ca) set.read.push(tls.ca);
  // strata-ctl --node NAME dials other nodes' tcp:// endpoints: exactly the
  // configured peers, checked against the cluster CA, presenting the node's
  // certificate and key (mutual TLS): the operators who may run strata-ctl
  // --node are those who can read the key file (docs/cluster.md: 0640).
  const presents = program === "ctl" && cluster !== undefined &&
    (cluster.peers ?? []).length > 0 && tls.cert !== undefined && tls.key !== undefined;
  if (program === "ctl" && cluster) {
    etcdNet.push(...cluster.peers ?? []);
    if (cluster.ca) set.read.push(cluster.ca);
    if (presents) set.read.push(tls.cert!, tls.key!);
  }
  // Only identity reads the signing key, whatever folder another grant covers
  // (a runtime dir around the state dir, a download folder that is the state dir).
  // Deno 2.9.6 matches a deny by the path as written (a symlink to the state dir
  // is not caught by it; fs's path check refuses those), so it is named only
  // where a grant covers it by path: each deny costs every check, and fs makes
  // one per entry of a listing (strata-ctl's download folder may be ".": always).
  const keysCovered = program === "ctl" ||
    set.read.some((g) => isWithin(st.keys, g) || isWithin(st.keysTmp, g));
  if (program !== "identity" && keysCovered) set.denyRead.push(st.keys, st.keysTmp);
  // And only a tcp:// listener (or strata-ctl presenting it) reads the TLS key, whatever folder another grant covers
  // (strata-ctl's download folder may be ".", resolved where it runs: always refused there).
  const key = tls.key;
  const covered = key && (program === "ctl" || set.read.some((g) => isWithin(key, g)));
  if (!listensTcp && !presents && key && covered) set.denyRead.push(key);
  set.net = etcdNet;
  if (program !== "supervisor" && program !== "ctl" && set.run.length > 0) {
    throw new Error("only the supervisor may run programs");
  }
  return set;
}

/** The Deno command-line flags for `program` under `layout`. */
export function permissionFlags(
  program: Program,
  layout: Layout,
  options: PermissionOptions = {},
): string[] {
  const set = permissionSet(program, layout, options);
  const flags: string[] = [];
  const net = uniq([...set.endpoints.map((e) => netGrant(parseEndpoint(e))), ...set.net]);
  const read = uniq([...set.sockets, ...set.read]);
  const write = uniq([...set.sockets, ...set.write]);
  const denyRead = uniq(set.denyRead);
  for (const p of [...net, ...read, ...denyRead, ...write, ...set.run]) {
    if (p.includes(",")) throw new Error(`a path in a permission flag has a comma: ${p}`);
  }
  if (net.length > 0) flags.push(`--allow-net=${net.join(",")}`);
  if (read.length > 0) flags.push(`--allow-read=${read.join(",")}`);
  if (denyRead.length > 0) flags.push(`--deny-read=${denyRead.join(",")}`);
  if (write.length > 0) flags.push(`--allow-write=${write.join(",")}`);
  if (set.env.length > 0) flags.push(`--allow-env=${set.env.join(",")}`);
  if (set.run.length > 0) flags.push(`--allow-run=${uniq(set.run).join(",")}`);
  return flags;
}
