/**
 * identity: the process entry. Loads (or creates) the key ring and the
 * revocation log, publishes the key set and revocation list, makes sure the
 * operator token exists, then serves identity.sock.
 * @module
 */

// node:crypto with the program, not at its first key (token/keys.ts loads it then).
import "node:crypto";
import { setImmediate } from "node:timers";
import { Audit } from "../runtime/audit.ts";
import { stateFiles } from "../runtime/config.ts";
import { parseLayoutArgs } from "../runtime/layout_args.ts";
import { ensureDir, holdLock, makePrivate } from "../runtime/files.ts";
import { logger } from "../runtime/log.ts";
import { defaultTrust, runMain, runService, SUPERVISED_OPTIONS } from "../node/service.ts";
import { awaitRelease } from "../node/lifecycle.ts";
import { Trust } from "../sources/trust.ts";
import { IssuedBook } from "./issued.ts";
import { KeyRing } from "./keyring.ts";
import { RevocationLog } from "./revocations.ts";
import { IdentityService } from "./service.ts";

/** How often identity checks that the path still names its revocation list file (ms). */
const LIST_CHECK_MS = 1000;

/**
 * How soon identity writes again what etcd has not committed yet (revocations,
 * its pending key set): first after RETRY_FIRST_MS, the pause doubling while
 * etcd keeps failing, up to RETRY_MAX_MS (each write itself tries for up to 4 s).
 */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 1000;

/** How long identity waits for another identity on its state dir to let go (see holdLock). */
const IDENTITY_LOCK_WAIT_MS = 3000;

await runMain("identity", async () => {
  const { layout, options } = parseLayoutArgs(Deno.args, SUPERVISED_OPTIONS);
  // Started ahead of a dependency (none today): its keys and lists wait for the release too.
  if (options.held === true) await awaitRelease();
  const st = stateFiles(layout);
  ensureDir(layout.stateDir, 0o700);
  // One identity per state dir, claimed before its keys, logs and records are read or written.
  // It waits out an identity that is still stopping: one whose supervisor was killed
  // drains for up to a second before it exits, and a new supervisor may start meanwhile.
  await holdLock(
    st.identityLock,
    `another identity is running with the state dir ${layout.stateDir} (it holds ` +
      `${st.identityLock}); stop that node first, or give this one a state dir of its own`,
    IDENTITY_LOCK_WAIT_MS,
  );
  const log = logger("identity");
  // The state dir's files are the owner's alone (0600), whatever a restore from backup left.
  for (const path of [st.keys, st.operatorToken, st.revocationLog]) {
    let was: number | undefined;
    try {
      was = makePrivate(path);
    } catch (err) {
      throw new Error(
        `${path} may be read by others and cannot be made private (${err}); ` +
          "chown it to the user identity runs as",
      );
    }
    if (was !== undefined) {
      log.warn("a state file was readable or writable by others; now the owner's alone", {
        path,
        was: `0${was.toString(8)}`,
      });
    }
  }
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
    : new Trust(layout, { keys: ring, revoked: revocations.set }, {
      revocationSource: revocations.trustSource(),
    });
  // Loaded only in cluster mode, as the etcd client is.
  const publish = layout.cluster
    ? (await import("../sources/etcd_identity.ts")).identityEtcd(layout, ring)
    : undefined;
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
    offerKeys: publish?.offerKeys,
    endorsedKids: publish?.endorsedKids,
  });
  identity.publishKeys();
  await identity.publishRevocations();
  await identity.ensureOperatorToken();
  // Cluster mode: revocations whose etcd write failed (also before a restart), and the key
  // set after a rotation, are written again until etcd commits them, backing off while it fails.
  let retry: ReturnType<typeof setTimeout> | undefined;
  let pause = RETRY_FIRST_MS;
  let stopped = false;
  const catchUp = async () => {
    await identity.retryPublish().catch(() => {});
    await identity.offerKeys();
    const behind = identity.unpublished > 0 || !identity.keysOffered;
    pause = behind ? Math.min(pause * 2, RETRY_MAX_MS) : RETRY_FIRST_MS;
    if (!stopped) retry = setTimeout(() => void catchUp(), pause);
  };
  if (publish) void catchUp();
  // A list file removed or replaced by hand is written whole again within a second.
  const listCheck = setInterval(() => identity.keepListFile(), LIST_CHECK_MS);
  Deno.unrefTimer(listCheck);
  await runService({
    service: "identity",
    layout,
    // The Node layer is loaded here anyway (node:crypto): the server ends its turns with
    // node:timers' setImmediate (see ServerOptions.immediate).
    immediate: setImmediate,
    supervised: options.supervised === true,
    audit,
    trust,
    methods: () => identity.methods(),
    onStop: async () => {
      stopped = true;
      clearTimeout(retry);
      clearInterval(listCheck);
      await identity.close();
      revocations.close();
      issued.close();
      publish?.close();
    },
  });
});
