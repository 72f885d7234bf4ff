/**
 * strata-ctl's cluster commands (docs/cluster.md): the operator's root of
 * trust and the endorsement of nodes.
 *
 * `cluster init` makes, in the operator's folder (made 0700 if new; files 0600 but the
 * public ones): the root key (`root.key`, a k4.secret PASERK, like the
 * signing keys in src/token/keys.ts) and its public half (`root.pub`, the
 * trust anchor each node is configured with), and the cluster CA (`ca.key`,
 * `ca.pem`) for TLS between nodes. The CA is made with Debian's openssl at
 * init time: the project has no well-kept npm X.509 library already, and
 * openssl is on every machine that runs etcd.
 *
 * `cluster join NODE` signs the node identity's published keys with the
 * root key, writes the endorsement to etcd, and issues the node a TLS
 * certificate signed by the CA. `cluster endorse NODE` endorses the keys
 * NODE's identity published as pending after a key rotation, checked against
 * its current endorsement. `cluster leave NODE` withdraws it: it signs a
 * withdrawal with a higher seq (src/token/endorsement.ts) rather than delete,
 * so an older endorsement put back in etcd is refused as a replay.
 *
 * The folder keeps, per node, the last seq the root signed and the latest
 * expiry (`seq.json`): every new record gets a higher seq, a withdrawal
 * outlives every endorsement it withdraws, and `cluster endorse` refuses to
 * build on an endorsement in etcd older than the last one signed (a replay
 * that would let a compromised key sign the pending set).
 * @module
 */

import { posix } from "../runtime/paths.ts";
import { pathExists } from "../runtime/files.ts";
import type { EtcdHttp } from "../sources/etcd_http.ts";
import { OPENSSL } from "../runtime/permissions.ts";
import type { KeySetDocument } from "../token/key_set.ts";
import { rfc3339 } from "../token/claims.ts";
import {
  type EndorsedKey,
  type Endorsement,
  EndorsementError,
  signEndorsement,
  verifyEndorsement,
  verifyPendingKeys,
} from "../token/endorsement.ts";
import {
  generateSigningKey,
  importVerifyKey,
  parsePublicPaserk,
  parseSecretPaserk,
  publicPaserk,
  secretPaserk,
  type SigningKey,
} from "../token/keys.ts";
import { endorsementsPrefix, pendingKeysPrefix } from "../sources/etcd_key_set.ts";
import { CtlError, EXIT, usage } from "./errors.ts";

/** The files of the operator's cluster folder. */
export function clusterFiles(dir: string) {
  return {
    rootKey: `${dir}/root.key`,
    rootPub: `${dir}/root.pub`,
    caKey: `${dir}/ca.key`,
    caCert: `${dir}/ca.pem`,
    /** Certificates issued to nodes: `<node>.pem` and `<node>.key`. */
    nodes: `${dir}/nodes`,
    /** Per node, the last seq the root signed and the latest expiry (JSON). */
    seqs: `${dir}/seq.json`,
  };
}

/** How long one etcd read or write of these commands may take before it fails (ms). */
const ETCD_CALL_MS = 5000;

/** The deadline of one etcd call: an etcd that does not answer (stopped, cut off) fails it, not hangs it. */
function etcdCall(): { deadline: Date } {
  return { deadline: new Date(Date.now() + ETCD_CALL_MS) };
}

/** How long an endorsement holds unless `--ttl` says otherwise (30 days). */
export const DEFAULT_ENDORSEMENT_TTL_MS = 30 * 24 * 3600_000;

/** How long the CA and node certificates are valid (days). */
const CA_DAYS = 3650;
const NODE_DAYS = 365;

function failed(message: string, hint?: string): CtlError {
  return new CtlError(EXIT.REFUSED, { name: "FAILED", message, ...(hint ? { hint } : {}) });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  let out;
  try {
    out = await new Deno.Command(OPENSSL, { args, cwd, stdout: "null", stderr: "piped" }).output();
  } catch (err) {
    throw failed(
      `cannot run ${OPENSSL}: ${(err as Error).message}`,
      "install it (apt-get install openssl)",
    );
  }
  if (!out.success) {
    throw failed(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** What `cluster init` made. */
export interface InitResult {
  dir: string;
  root_kid: string;
  root_pub: string;
  ca: string;
}

/**
 * Creates the cluster's root of trust in `dir`. Refuses to overwrite one:
 * a new root key would orphan every endorsement signed with the old.
 */
export async function initCluster(dir: string, options: { name: string }): Promise<InitResult> {
  const f = clusterFiles(dir);
  for (const file of [f.rootKey, f.caKey]) {
    if (pathExists(file)) {
      throw usage(
        `${file} exists: this folder already holds a cluster's root of trust`,
        "use another --dir, or keep this one (a new root orphans every endorsement)",
      );
    }
  }
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const root = await generateSigningKey();
  await Deno.writeTextFile(f.rootKey, secretPaserk(root) + "\n", { mode: 0o600, createNew: true });
  await Deno.writeTextFile(f.rootPub, publicPaserk(root.publicKey) + "\n", { mode: 0o644 });
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    f.caKey,
    "-out",
    f.caCert,
    "-days",
    String(CA_DAYS),
    "-subj",
    `/CN=strata cluster ${options.name} CA`,
    "-addext",
    "basicConstraints=critical,CA:TRUE,pathlen:0",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  await Deno.chmod(f.caKey, 0o600);
  return { dir, root_kid: root.kid, root_pub: f.rootPub, ca: f.caCert };
}

/** What `cluster join` did. */
export interface JoinResult {
  node: string;
  issuer: string;
  kids: string[];
  expires: string;
  /** The endorsement's seq (src/token/endorsement.ts). */
  seq: number;
  etcd_key: string;
  cert?: string;
  key?: string;
}

/** Options for {@link joinNode}. */
export interface JoinOptions {
  /** The operator's cluster folder (root.key, ca.key, ca.pem). */
  dir: string;
  /**
   * The root public key file the node trusts (its --cluster-root): the
   * folder's root key must be the same key, or nothing is written.
   */
  anchor?: string;
  /** The cluster's name. */
  cluster: string;
  /** The node identity's published key set (identity.keys or its identity.pub). */
  keys: KeySetDocument;
  /** How long the endorsement holds, ms. */
  ttlMs: number;
  /** Where the endorsement is written. */
  etcd: EtcdHttp;
  /** IPs or DNS names the node's tcp:// endpoints listen on (the certificate's names). */
  hosts: string[];
  now?: number;
}

const HOST_RE = /^[A-Za-z0-9.:-]{1,253}$/;

/**
 * Endorses `node`: signs its identity's keys with the root key, writes the
 * endorsement to etcd, and issues a certificate for `hosts` signed by the CA.
 */
export async function joinNode(node: string, options: JoinOptions): Promise<JoinResult> {
  const root = await readRootSecret(options.dir, options.anchor);
  const issuer = `identity@${node}`;
  if (options.keys?.issuer !== issuer || !Array.isArray(options.keys.keys)) {
    throw usage(
      `the key set is ${JSON.stringify(options.keys?.issuer)}'s, not ${issuer}'s`,
      `run join on node ${node}, or give --keys its identity.pub`,
    );
  }
  const now = options.now ?? Date.now();
  const keys = [];
  for (const k of options.keys.keys) {
    if (k.not_after !== undefined && Date.parse(k.not_after) < now) continue;
    const parsed = await parsePublicPaserk(k.public).catch(() => undefined);
    if (!parsed || parsed.kid !== k.kid) throw usage(`the key set's key ${k.kid} is malformed`);
    keys.push({ kid: k.kid, public: k.public });
  }
  if (keys.length === 0) throw usage(`${issuer} publishes no current key`);
  // Join endorses the keys the node's identity publishes, not what etcd holds: it only
  // takes a verified record's seq, to sign a higher one.
  const current = await readCurrent(root, node, { ...options, now });
  const { etcdKey, expMs, seq } = await writeEndorsement(root, node, keys, {
    ...options,
    now,
    currentSeq: current.endorsement?.seq,
  });
  const result: JoinResult = {
    node,
    issuer,
    kids: keys.map((k) => k.kid),
    expires: rfc3339(expMs),
    seq,
    etcd_key: etcdKey,
  };
  if (options.hosts.length > 0) Object.assign(result, await issueCert(node, options));
  return result;
}

/** What the folder records of the records the root signed for one node. */
interface SeqRecord {
  /** The last seq signed. */
  seq: number;
  /** The latest expiry of any record signed (epoch ms). */
  expMs: number;
}

async function readSeqs(dir: string): Promise<Record<string, SeqRecord>> {
  const file = clusterFiles(dir).seqs;
  let text;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    throw usage(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as Record<string, SeqRecord>;
  } catch {
    throw usage(
      `${file} is not JSON`,
      "restore it from a backup (it records the last endorsement signed per node)",
    );
  }
}

async function recordSeq(dir: string, node: string, record: SeqRecord): Promise<void> {
  const file = clusterFiles(dir).seqs;
  const all = await readSeqs(dir);
  const had = all[node];
  all[node] = {
    seq: Math.max(record.seq, had?.seq ?? 0),
    expMs: Math.max(record.expMs, had?.expMs ?? 0),
  };
  const tmp = `${file}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(all, null, 2) + "\n", { mode: 0o600 });
  await Deno.rename(tmp, file);
}

/** `node`'s record in etcd: the raw value, and what verified of it (if it does). */
async function readCurrent(
  root: SigningKey,
  node: string,
  options: { cluster: string; etcd: EtcdHttp; now: number },
): Promise<{ signed: string | null; endorsement?: Endorsement; error?: EndorsementError }> {
  let signed: string | null;
  try {
    signed = await options.etcd.get(`${endorsementsPrefix(options.cluster)}${node}`, etcdCall());
  } catch (err) {
    throw failed(
      `cannot read ${node}'s endorsement from etcd: ${(err as Error).message}`,
      "check --etcd-endpoints and that etcd is up",
    );
  }
  if (signed === null) return { signed };
  try {
    const rootPub = await importVerifyKey(root.publicKey);
    const expect = { cluster: options.cluster, node, now: options.now };
    return { signed, endorsement: await verifyEndorsement(signed, rootPub, expect) };
  } catch (err) {
    if (!(err instanceof EndorsementError)) throw err;
    return { signed, error: err };
  }
}

/**
 * Signs `node`'s endorsement of `keys` (or, with `withdrawn`, its withdrawal)
 * with the root key, with a seq above the folder's record and the one in
 * etcd, records it in the folder and writes it to etcd.
 */
async function writeEndorsement(
  root: SigningKey,
  node: string,
  keys: EndorsedKey[],
  options: {
    dir: string;
    cluster: string;
    etcd: EtcdHttp;
    ttlMs: number;
    now: number;
    /** The seq of the verified record in etcd, if any. */
    currentSeq?: number;
    withdrawn?: boolean;
  },
): Promise<{ etcdKey: string; expMs: number; seq: number }> {
  const had = (await readSeqs(options.dir))[node];
  const seq = Math.max(options.now, (had?.seq ?? -1) + 1, (options.currentSeq ?? -1) + 1);
  // A withdrawal outlives every endorsement it withdraws, so none can be put back before it expires.
  const expMs = options.withdrawn
    ? Math.max(options.now + options.ttlMs, had?.expMs ?? 0)
    : options.now + options.ttlMs;
  const signed = signEndorsement(root, {
    cluster: options.cluster,
    node,
    keys,
    expMs,
    seq,
    withdrawn: options.withdrawn,
  });
  // Recorded before the write: once signed it may be in etcd, whatever the write answers.
  await recordSeq(options.dir, node, { seq, expMs });
  const etcdKey = `${endorsementsPrefix(options.cluster)}${node}`;
  try {
    await options.etcd.put(etcdKey, signed, etcdCall());
  } catch (err) {
    throw failed(
      `cannot write the endorsement to etcd: ${(err as Error).message}`,
      "check --etcd-endpoints and that etcd is up",
    );
  }
  return { etcdKey, expMs, seq };
}

/** Reads the root key from the operator's folder. */
/**
 * The folder's root key; with `anchor` (the root public key file the node
 * trusts), refused unless it is that key: an endorsement signed by another
 * root would replace the node's good one and be refused by every node.
 */
async function readRootSecret(dir: string, anchor?: string) {
  const f = clusterFiles(dir);
  let root;
  try {
    root = await parseSecretPaserk((await Deno.readTextFile(f.rootKey)).trim());
  } catch (err) {
    throw usage(
      `cannot read the root key ${f.rootKey}: ${(err as Error).message}`,
      "run strata-ctl cluster init first, or give --dir where it keeps its files",
    );
  }
  if (anchor !== undefined) {
    let trusted: string;
    try {
      trusted = (await Deno.readTextFile(anchor)).trim();
    } catch (err) {
      throw usage(
        `cannot read the cluster root ${anchor}: ${(err as Error).message}`,
        "point --cluster-root (STRATA_CLUSTER_ROOT) at the root.pub this cluster trusts",
      );
    }
    if (trusted !== publicPaserk(root.publicKey)) {
      throw usage(
        `the root key in ${dir} is not the cluster root this node trusts (${anchor}); nothing was written`,
        `give --dir the folder whose root.pub is ${anchor}'s key`,
      );
    }
  }
  return root;
}

/** What `cluster endorse` did. */
export interface EndorseResult extends Omit<JoinResult, "cert" | "key"> {
  /** The keys endorsed now that the previous endorsement did not name. */
  added: string[];
  /** The previous endorsement's keys the node no longer publishes (no longer endorsed). */
  dropped: string[];
}

/**
 * Endorses the keys `node`'s identity published as pending (after
 * identity.rotate_key), from anywhere: the pending set counts only when it is
 * signed by a key of the node's current endorsement, which must verify
 * against the root. The new endorsement names exactly the pending keys (the
 * new key, and old ones while tokens they signed can still be valid).
 */
export async function endorseNode(
  node: string,
  options: Omit<JoinOptions, "keys" | "hosts">,
): Promise<EndorseResult> {
  const root = await readRootSecret(options.dir, options.anchor);
  const now = options.now ?? Date.now();
  const etcdKey = `${endorsementsPrefix(options.cluster)}${node}`;
  const current = await readCurrent(root, node, { ...options, now });
  let pending: string | null;
  try {
    pending = await options.etcd.get(`${pendingKeysPrefix(options.cluster)}${node}`, etcdCall());
  } catch (err) {
    throw failed(
      `cannot read ${node}'s pending keys from etcd: ${(err as Error).message}`,
      "check --etcd-endpoints and that etcd is up",
    );
  }
  const rejoin = `strata-ctl cluster join ${node} endorses the keys its identity publishes ` +
    `(run on ${node})`;
  if (current.signed === null || current.endorsement?.withdrawn) {
    throw usage(
      `${node} has no endorsement in etcd${
        current.endorsement?.withdrawn ? " (it was withdrawn)" : ""
      }, so nothing vouches for its pending keys`,
      `endorse it with strata-ctl cluster join ${node} (on ${node}, or with --keys)`,
    );
  }
  if (pending === null) {
    throw usage(
      `${node} has published no pending keys (identity.rotate_key publishes them)`,
      `strata-ctl cluster join ${node} endorses the keys its identity publishes now`,
    );
  }
  if (!current.endorsement) throw usage(`${current.error!.message}; not endorsing it`, rejoin);
  const endorsed = current.endorsement;
  const last = (await readSeqs(options.dir))[node]?.seq;
  if (last !== undefined && endorsed.seq < last) {
    throw usage(
      `${node}'s endorsement in etcd has seq ${endorsed.seq}, older than seq ${last} this ` +
        `folder last signed for it: a replayed endorsement; not endorsing the pending keys it vouches for`,
      rejoin,
    );
  }
  let offered;
  try {
    offered = await verifyPendingKeys(pending, endorsed, { cluster: options.cluster, node });
  } catch (err) {
    if (!(err instanceof EndorsementError)) throw err;
    throw usage(`${err.message}; not endorsing it`, rejoin);
  }
  if (offered.keys.length === 0) throw usage(`${node}'s pending key set is empty`);
  const { expMs, seq } = await writeEndorsement(root, node, offered.keys, {
    ...options,
    now,
    currentSeq: endorsed.seq,
  });
  const before = new Set(endorsed.keys.map((k) => k.kid));
  const after = new Set(offered.keys.map((k) => k.kid));
  return {
    node,
    issuer: endorsed.issuer,
    kids: [...after],
    added: [...after].filter((k) => !before.has(k)),
    dropped: [...before].filter((k) => !after.has(k)),
    expires: rfc3339(expMs),
    seq,
    etcd_key: etcdKey,
  };
}

/** Issues `node` a TLS certificate for its hosts (server and client use), signed by the CA. */
async function issueCert(
  node: string,
  options: JoinOptions,
): Promise<{ cert: string; key: string }> {
  const f = clusterFiles(options.dir);
  for (const h of options.hosts) {
    if (!HOST_RE.test(h)) throw usage(`--host: ${h} is not an IP address or DNS name`);
  }
  const isIp = (h: string) => /^[0-9.]+$/.test(h) || h.includes(":");
  const san = options.hosts.map((h) => isIp(h) ? `IP:${h}` : `DNS:${h}`).join(",");
  await Deno.mkdir(f.nodes, { recursive: true, mode: 0o700 });
  const key = posix.join(f.nodes, `${node}.key`);
  const cert = posix.join(f.nodes, `${node}.pem`);
  const csr = posix.join(f.nodes, `${node}.csr`);
  const ext = posix.join(f.nodes, `${node}.ext`);
  await openssl([
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    csr,
    "-subj",
    `/CN=${node}`,
  ], options.dir);
  await Deno.chmod(key, 0o600);
  await Deno.writeTextFile(
    ext,
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
      `extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${san}\n`,
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    f.caCert,
    "-CAkey",
    f.caKey,
    "-CAcreateserial",
    "-out",
    cert,
    "-days",
    String(NODE_DAYS),
    "-extfile",
    ext,
  ], options.dir);
  await Deno.remove(csr).catch(() => {});
  await Deno.remove(ext).catch(() => {});
  return { cert, key };
}

/** What `cluster leave` did. */
export interface LeaveResult {
  node: string;
  etcd_key: string;
  /** Whether etcd held an endorsement of `node` that held (and is withdrawn now). */
  withdrawn: boolean;
  /** The withdrawal's seq: every older record of `node` is refused as a replay. */
  seq: number;
  /** When the withdrawal expires: no earlier than any endorsement the folder signed for `node`. */
  expires: string;
}

/**
 * Withdraws `node`'s endorsement: writes a root-signed withdrawal with a
 * higher seq in its place (not a delete), so every node stops trusting its
 * keys and refuses the older endorsement if a writer to etcd puts it back.
 */
export async function leaveNode(
  node: string,
  options: { dir: string; anchor?: string; cluster: string; etcd: EtcdHttp; now?: number },
): Promise<LeaveResult> {
  const root = await readRootSecret(options.dir, options.anchor);
  const now = options.now ?? Date.now();
  const current = await readCurrent(root, node, { ...options, now });
  const e = current.endorsement;
  const { etcdKey, expMs, seq } = await writeEndorsement(root, node, [], {
    ...options,
    now,
    ttlMs: Math.max(DEFAULT_ENDORSEMENT_TTL_MS, (e?.expMs ?? 0) - now),
    currentSeq: e?.seq,
    withdrawn: true,
  });
  return {
    node,
    etcd_key: etcdKey,
    withdrawn: e !== undefined && !e.withdrawn,
    seq,
    expires: rfc3339(expMs),
  };
}
