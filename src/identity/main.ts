/**
 * identity: the process entry. Loads (or creates) the key ring and the
 * revocation log, publishes the key set and revocation list, makes sure the
 * operator token exists, then serves identity.sock.
 * @module
 */

import { Audit } from "../runtime/audit.ts";
import { type Layout, parseLayoutArgs, stateFiles } from "../runtime/config.ts";
import type { RevokedEntry } from "../token/revocation_set.ts";
import { ensureDir } from "../runtime/files.ts";
import { logger } from "../runtime/log.ts";
import { defaultTrust, runMain, runService } from "../node/service.ts";
import { Trust } from "../sources/trust.ts";
import { IssuedBook } from "./issued.ts";
import { KeyRing } from "./keyring.ts";
import { RevocationLog } from "./revocations.ts";
import { IdentityService } from "./service.ts";

/** How often identity writes revocations that etcd has not committed yet again (ms). */
const RETRY_PUBLISH_MS = 1000;

/** Cluster mode: writes identity's signed revocation batches to etcd. */
async function etcdPublisher(layout: Layout, keys: KeyRing) {
  // Loaded only in cluster mode: the etcd client (grpc-js) reads variables as it loads.
  const { etcdClient } = await import("../sources/cluster.ts");
  const { publishRevocations, readPublished } = await import("../sources/etcd_revocations.ts");
  const client = etcdClient(layout);
  const where = { cluster: layout.cluster!.name, node: layout.nodeId };
  return {
    publish: (signed: string, entries: RevokedEntry[]) =>
      publishRevocations(client, signed, { ...where, entries }),
    published: () => readPublished(client, { ...where, keys }),
    close: () => client.close(),
  };
}

await runMain("identity", async () => {
  const { layout, options } = parseLayoutArgs(Deno.args, { supervised: { type: "boolean" } });
  const st = stateFiles(layout);
  ensureDir(layout.stateDir, 0o700);
  const log = logger("identity");
  // Under the supervisor the audit trail is audit.log alone: a copy on stderr
  // would pass every request through the supervisor and bury the log lines.
  const audit = new Audit({
    path: st.audit,
    program: "identity",
    stderr: options.supervised !== true,
  });
  const ring = await KeyRing.open(st);
  const revocations = RevocationLog.open(st);
  const issued = IssuedBook.open(st);
  // Cluster mode: identity also judges other nodes' tokens (to revoke or introspect them), by
  // the endorsed keys and the cluster's revocations, as fs does.
  const trust = layout.cluster
    ? await defaultTrust(layout, { ownKeys: ring })
    : new Trust(layout, { keys: ring, revoked: revocations.set });
  const publish = layout.cluster ? await etcdPublisher(layout, ring) : undefined;
  const identity = new IdentityService({
    layout,
    ring,
    revocations,
    issued,
    trust,
    audit,
    log,
    publish: publish?.publish,
    published: publish?.published,
  });
  identity.publishKeys();
  await identity.publishRevocations();
  await identity.ensureOperatorToken();
  // Cluster mode: revocations whose etcd write failed (also before a restart) are
  // written again every second until etcd commits them.
  const retry = publish
    ? setInterval(() => void identity.retryPublish().catch(() => {}), RETRY_PUBLISH_MS)
    : undefined;
  void identity.retryPublish().catch(() => {});
  await runService({
    service: "identity",
    layout,
    supervised: options.supervised === true,
    audit,
    trust,
    methods: () => identity.methods(),
    onStop: async () => {
      clearInterval(retry);
      await identity.close();
      revocations.close();
      issued.close();
      publish?.close();
    },
  });
});
