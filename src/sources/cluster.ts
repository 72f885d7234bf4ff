/**
 * The sources of a cluster node (docs/cluster.md): the etcd client made from
 * the layout's cluster section, and the key set that trusts this node's own
 * identity and every identity the cluster root endorses.
 * @module
 */

import {
  type ClusterConfig,
  DEFAULT_PARTITION_BOUND_MS,
  issuerOf,
  type Layout,
  runtimeFiles,
} from "../runtime/config.ts";
import type { Clock } from "../runtime/clock.ts";
import { parsePublicPaserk, type VerifyKey } from "../token/keys.ts";
import { EtcdHttp } from "./etcd_http.ts";
import { EtcdKeySetSource } from "./etcd_key_set.ts";
import { FileKeySetSource, KeySetLookup } from "./key_set.ts";
import { EtcdRevocationSource } from "./etcd_revocations.ts";
import { FileRevocationSource } from "./revocations.ts";

/**
 * A client of the layout's etcd on fetch (cluster mode only): the services'
 * client. TLS (https://) checks etcd's certificate against --etcd-ca, under
 * the name --etcd-server-name gives when the endpoints are IP addresses, and
 * presents the client certificate when one is given.
 */
export function etcdHttp(layout: Layout): EtcdHttp {
  const cluster = layout.cluster;
  if (!cluster) throw new Error("etcd: this node is not in cluster mode (--cluster)");
  return new EtcdHttp({
    endpoints: cluster.etcd,
    ...(cluster.etcdCa ? { tls: etcdTls(cluster) } : {}),
  });
}

function etcdTls(cluster: ClusterConfig) {
  const read = (file: string, option: string) => {
    try {
      return Deno.readTextFileSync(file);
    } catch (err) {
      throw new Error(`${option}: cannot read ${file} (${(err as Error).message})`);
    }
  };
  return {
    ca: read(cluster.etcdCa!, "--etcd-ca"),
    ...(cluster.etcdCert && cluster.etcdKey
      ? { cert: read(cluster.etcdCert, "--etcd-cert"), key: read(cluster.etcdKey, "--etcd-key") }
      : {}),
    ...(cluster.etcdServerName ? { serverName: cluster.etcdServerName } : {}),
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
    client: etcdHttp(layout),
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
