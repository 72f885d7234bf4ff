/**
 * Cluster mode: what identity writes to and reads from etcd (docs/cluster.md):
 * its signed revocation batches, its own entries there (to write again what
 * etcd lacks), and its key set offered for endorsement after a rotation.
 * Loaded by identity only in cluster mode.
 * @module
 */

import type { Layout } from "../runtime/config.ts";
import { claimedKeyIds } from "../token/endorsement.ts";
import type { KeyLookup } from "../token/key_set.ts";
import type { RevokedEntry } from "../token/revocation_set.ts";
import { etcdHttp } from "./cluster.ts";
import { endorsementsPrefix, pendingKeysPrefix } from "./etcd_key_set.ts";
import { publishRevocations, readPublished } from "./etcd_revocations.ts";

/**
 * How long one read or write of identity's key set in etcd may take (ms): a
 * rotation reads the node's endorsement, then writes the pending key set.
 */
export const KEYS_DEADLINE_MS = 1500;

/** Identity's calls to etcd, on one client of the layout's etcd. */
export interface IdentityEtcd {
  /** Writes a signed revocation batch; resolves once etcd committed it (PUBLISH_BUDGET_MS at most). */
  publish(signed: string, entries: RevokedEntry[]): Promise<unknown>;
  /** The cap_ids of this node's revocations in etcd, signed by `keys`. */
  published(): Promise<Set<string>>;
  /** Writes the pending key set (KEYS_DEADLINE_MS at most). */
  offerKeys(signed: string): Promise<unknown>;
  /** The key ids the node's endorsement names (KEYS_DEADLINE_MS at most). */
  endorsedKids(): Promise<string[]>;
  close(): void;
}

/** Identity's etcd calls for `layout`'s node; `keys` judge its own entries in etcd. */
export function identityEtcd(layout: Layout, keys: KeyLookup): IdentityEtcd {
  const client = etcdHttp(layout);
  const where = { cluster: layout.cluster!.name, node: layout.nodeId };
  const deadline = () => new Date(Date.now() + KEYS_DEADLINE_MS);
  return {
    publish: (signed, entries) => publishRevocations(client, signed, { ...where, entries }),
    published: () => readPublished(client, { ...where, keys }),
    offerKeys: (signed) =>
      client.put(`${pendingKeysPrefix(where.cluster)}${where.node}`, signed, {
        deadline: deadline(),
      }),
    endorsedKids: async () =>
      claimedKeyIds(
        await client.get(`${endorsementsPrefix(where.cluster)}${where.node}`, {
          deadline: deadline(),
        }) ?? "",
      ),
    close: () => client.close(),
  };
}
