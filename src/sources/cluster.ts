/**
 * The sources of a cluster node (docs/cluster.md): the etcd client made from
 * the layout's cluster section, and the key set that trusts this node's own
 * identity and every identity the cluster root endorses.
 * @module
 */

import {
  circuitBreaker,
  ConsecutiveBreaker,
  ExponentialBackoff,
  handleWhen,
  type IBackoff,
} from "cockatiel";
import { Buffer } from "node:buffer";
import { Etcd3, isRecoverableError } from "etcd3";
import {
  type ClusterConfig,
  DEFAULT_PARTITION_BOUND_MS,
  issuerOf,
  type Layout,
  runtimeFiles,
} from "../runtime/config.ts";
import type { Clock } from "../runtime/clock.ts";
import { parsePublicPaserk, type VerifyKey } from "../token/keys.ts";
import { EtcdKeySetSource } from "./etcd_key_set.ts";
import { FileKeySetSource, KeySetLookup } from "./key_set.ts";
import { EtcdRevocationSource } from "./etcd_revocations.ts";
import { FileRevocationSource } from "./revocations.ts";

/**
 * The longest a member the client saw fail stays closed before it is tried
 * again (ms). etcd3's default circuit breaker keeps it closed 5 s, so after
 * etcd came back a node took up to 5 s to reconnect; here the pause starts at
 * {@link REOPEN_FIRST_MS} and doubles up to this while the member stays down.
 */
export const REOPEN_MAX_MS = 1000;

/** The first pause before a failed member is tried again (ms). */
export const REOPEN_FIRST_MS = 100;

/** The longest pause before a broken watch stream is set up again (ms; etcd3's default 30 s). */
const WATCH_BACKOFF_MAX_MS = 2000;

/** A client of the layout's etcd (cluster mode only). */
export function etcdClient(layout: Layout): Etcd3 {
  const cluster = layout.cluster;
  if (!cluster) throw new Error("etcd: this node is not in cluster mode (--cluster)");
  return new Etcd3({
    hosts: cluster.etcd,
    dialTimeout: 3000,
    faultHandling: {
      // As etcd3's own (three failures in a row close a member), but reopened sooner.
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), {
          halfOpenAfter: new ExponentialBackoff({
            initialDelay: REOPEN_FIRST_MS,
            maxDelay: REOPEN_MAX_MS,
          }),
          breaker: new ConsecutiveBreaker(3),
        }),
      // etcd3 calls next() on it as on its own default (a factory), though it types it IBackoff.
      watchBackoff: new ExponentialBackoff({
        initialDelay: 100,
        maxDelay: WATCH_BACKOFF_MAX_MS,
      }) as unknown as IBackoff<unknown>,
    },
    ...(cluster.etcdCa ? { credentials: etcdCredentials(cluster) } : {}),
    ...(cluster.etcdServerName
      ? { grpcOptions: { "grpc.ssl_target_name_override": cluster.etcdServerName } }
      : {}),
  });
}

/**
 * TLS to etcd (https://): etcd's certificate is checked against --etcd-ca
 * (under the name --etcd-server-name gives, when the endpoints are IP
 * addresses), and the client certificate is presented when etcd asks for one.
 */
function etcdCredentials(cluster: ClusterConfig) {
  const read = (file: string, option: string) => {
    try {
      return Buffer.from(Deno.readFileSync(file));
    } catch (err) {
      throw new Error(`${option}: cannot read ${file} (${(err as Error).message})`);
    }
  };
  return {
    rootCertificate: read(cluster.etcdCa!, "--etcd-ca"),
    ...(cluster.etcdCert && cluster.etcdKey
      ? {
        certChain: read(cluster.etcdCert, "--etcd-cert"),
        privateKey: read(cluster.etcdKey, "--etcd-key"),
      }
      : {}),
  };
}

/** Reads the cluster root's public key (a k4.public PASERK file). */
export async function readRootKey(path: string): Promise<VerifyKey> {
  const text = (await Deno.readTextFile(path)).trim();
  try {
    return await parsePublicPaserk(text);
  } catch (err) {
    throw new Error(`--cluster-root: ${path} is not a k4.public key: ${(err as Error).message}`);
  }
}

/**
 * The started key set of a cluster node: identity.pub for its own keys, and
 * the endorsements in etcd judged against the root key.
 */
export async function clusterKeySource(
  layout: Layout,
  options: { clock?: Clock } = {},
): Promise<EtcdKeySetSource> {
  const cluster = layout.cluster;
  if (!cluster) throw new Error("cluster key set: this node is not in cluster mode (--cluster)");
  const root = await readRootKey(cluster.root);
  const source = new EtcdKeySetSource({
    cluster: cluster.name,
    client: etcdClient(layout),
    root,
    local: new FileKeySetSource(runtimeFiles(layout).identityPub),
    clock: options.clock,
  });
  await source.start();
  return source;
}

/**
 * The revocation source of a cluster node: this node's list file,
 * and every node's signed revocations in etcd, judged by `keys`' endorsements
 * (read on the first poll, then watched).
 */
export function clusterRevocationSource(
  layout: Layout,
  keys: EtcdKeySetSource,
): EtcdRevocationSource {
  const cluster = layout.cluster;
  if (!cluster) {
    throw new Error("cluster revocations: this node is not in cluster mode (--cluster)");
  }
  const lookup = new KeySetLookup(keys);
  const issuer = issuerOf(layout);
  // A node's revocations after a key rotation are signed by its new key before the operator
  // endorses it: lists signed by a key its endorsed key vouches for as pending count too.
  const listKeys = {
    get: async (kid: string) => {
      try {
        return keys.pendingKey(kid) ?? await lookup.get(kid);
      } catch (err) {
        const pending = keys.pendingKey(kid);
        if (pending) return pending;
        throw err;
      }
    },
  };
  return new EtcdRevocationSource({
    cluster: cluster.name,
    client: keys.client,
    keys: listKeys,
    localIssuer: issuer,
    partitionBoundMs: cluster.partitionBoundMs ?? DEFAULT_PARTITION_BOUND_MS,
    local: new FileRevocationSource(runtimeFiles(layout).revocations, { keys: lookup, issuer }),
  });
}
