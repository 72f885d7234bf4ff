/**
 * identity: the process entry. Loads (or creates) the key ring and the
 * revocation log, publishes the key set and revocation list, makes sure the
 * operator token exists, then serves identity.sock.
 * @module
 */

import { Audit } from "../runtime/audit.ts";
import { parseLayoutArgs, stateFiles } from "../runtime/config.ts";
import { ensureDir } from "../runtime/files.ts";
import { logger } from "../runtime/log.ts";
import { runMain, runService } from "../node/service.ts";
import { Trust } from "../sources/trust.ts";
import { KeyRing } from "./keyring.ts";
import { RevocationLog } from "./revocations.ts";
import { IdentityService } from "./service.ts";

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
  const trust = new Trust(layout, { keys: ring, revoked: revocations.set });
  const identity = new IdentityService({ layout, ring, revocations, trust, audit, log });
  identity.publishKeys();
  await identity.publishRevocations();
  await identity.ensureOperatorToken();
  await runService({
    service: "identity",
    layout,
    supervised: options.supervised === true,
    audit,
    trust,
    methods: () => identity.methods(),
    onStop: async () => {
      await identity.close();
      revocations.close();
    },
  });
});
