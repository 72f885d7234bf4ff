/**
 * Start-up and shut-down shared by the token-verifying services (registry,
 * fs, supervisor): audit log, trust (caught up with identity's revocation
 * list before each authorization), the server with the service's methods,
 * periodic refresh, signals and the supervisor pipe.
 * @module
 */

import type { Capability } from "../token/claims.ts";
import { type Method, Server, type ServerLimits } from "../server/server.ts";
import { Trust } from "../sources/trust.ts";
import { KeySetLookup } from "../sources/key_set.ts";
import type { KeyLookup } from "../token/key_set.ts";
import { RevocationSet } from "../token/revocation_set.ts";
import { Audit } from "../runtime/audit.ts";
import {
  endpointsOf,
  issuerOf,
  type Layout,
  type ServiceName,
  stateFiles,
} from "../runtime/config.ts";
import { awaitRelease, onStopSignal, parentPipe, watchParentPipe } from "./lifecycle.ts";
import { logger } from "../runtime/log.ts";
import { VERSION } from "../runtime/version.ts";
import { authorizeNow } from "../policy/authorize.ts";
import { RateLimiter } from "../policy/rate_limit.ts";
import type { RequestChain } from "../server/server.ts";
import { IdleCollector } from "./idle_gc.ts";
import { verifyWithWebCrypto } from "../token/keys.ts";

/** How often the files are looked at again (replaced by hand; a list line's key not known yet). */
const REFRESH_MS = 1000;

/** Longest a SIGTERM drain may take before the service exits anyway. */
export const MAX_DRAIN_MS = 30_000;

/** The options of a supervised service's command line, besides its layout's. */
export const SUPERVISED_OPTIONS = {
  supervised: { type: "boolean" },
  held: { type: "boolean" },
} as const;

/** What a service brings to {@link runService}. */
export interface ServiceSetup {
  service: ServiceName;
  layout: Layout;
  /** Started by the supervisor: watch the stdin pipe. */
  supervised: boolean;
  /**
   * Started ahead of its dependencies (`--held`): wait for the supervisor's
   * release on the pipe before reading any key or revocation or binding the
   * socket (see {@link awaitRelease}).
   */
  held?: boolean;
  /**
   * The service's methods, given its trust and audit, and `released`, to call
   * when the service lets buffers go that only a collection frees (the
   * next quiet tick then collects; see idle_gc.ts).
   */
  methods(trust: Trust, audit: Audit, released: () => void): Method<Capability>[];
  /** A ready-made audit log (identity writes events before it listens). */
  audit?: Audit;
  /** A ready-made trust (identity passes one over its own keys). */
  trust?: Trust;
  /**
   * Read what identity appended to the revocation list file before each
   * authorization (default: every service but identity, which writes it).
   */
  catchesUp?: boolean;
  /**
   * Off the request paths that count (registry, supervisor): verify tokens
   * with WebCrypto and judge a quiet moment by the heap alone, so the
   * process never loads Deno's Node layer (2.5 MB or more of memory) for
   * node:crypto or process.cpuUsage.
   */
  light?: boolean;
  /**
   * Serve requests the supervisor writes on its pipe, as this principal
   * (registry only): they take the socket's request path, with the pipe in
   * place of a token.
   */
  pipePrincipal?: Capability;
  /** Called before the process exits. */
  onStop?: () => void | Promise<void>;
  limits?: Partial<ServerLimits>;
  /**
   * The server's end-of-turn scheduler (see ServerOptions.immediate):
   * node:timers' setImmediate from the services that load the Node layer.
   */
  immediate?: (fn: () => void) => void;
}

/** A running service. */
export interface RunningService {
  server: Server<Capability>;
  trust: Trust;
  audit: Audit;
  /** Drains and exits. */
  stop(drainMs: number): Promise<void>;
}

/**
 * The request chain of a token-verifying service: the token verified
 * locally against the trust's keys and revocations, the right and rate
 * limits checked by policy/authorize, and every refusal written to the
 * audit log (its reason and cap_id, never the token).
 */
export function requestChain(
  service: string,
  parts: { trust: Trust; audit: Audit; catchesUp?: boolean },
): RequestChain<Capability> {
  // The trust's verifier, revocations and vouching never change: one context for every request.
  const ctx = { service, ...parts.trust.authContext, limiter: new RateLimiter() };
  const trust = parts.trust;
  return {
    // Decided without a promise when the token needs no key lookup (see authorizeNow).
    authorize: (token, right) =>
      authorizeNow(token, { right }, ctx) as Capability | Promise<Capability>,
    // Every revocation identity acknowledged before the request arrived is
    // read first: identity answers only after the line is in the list file.
    before: parts.catchesUp ? () => trust.catchUp() : undefined,
    refused: (method, err) =>
      parts.audit.event("auth.denied", {
        method,
        reason: err.details?.reason ?? err.errorName,
        cap_id: err.details?.cap_id,
      }),
  };
}

/**
 * A verifying service's trust: identity.pub alone, or in cluster mode also the endorsements in
 * etcd. Identity passes its key ring as `ownKeys` (looked up before the cluster's keys).
 */
export async function defaultTrust(
  layout: Layout,
  options: { ownKeys?: KeyLookup } = {},
): Promise<Trust> {
  if (!layout.cluster) return new Trust(layout);
  // Loaded only in cluster mode, as the etcd client is.
  const { clusterKeySource, clusterRevocationSource } = await import("../sources/cluster.ts");
  const keySource = await clusterKeySource(layout);
  const revocationSource = clusterRevocationSource(layout, keySource);
  const own = issuerOf(layout);
  const ring = options.ownKeys;
  let mine: { keys: KeyLookup; revoked: RevocationSet } | undefined;
  if (ring) {
    // Identity's own keys from its ring (current the moment it rotates), others' from etcd.
    const endorsed = new KeySetLookup(keySource);
    mine = {
      keys: { get: (kid) => ring.get(kid) ?? endorsed.get(kid) },
      revoked: new RevocationSet(),
    };
  }
  return new Trust(layout, mine, {
    keySource,
    revocationSource,
    issuers: keySource.issuers,
    // Its own identity's revocations reach it without etcd; other nodes' need etcd.
    cannotVouch: (issuer) => issuer === own ? undefined : revocationSource.cutOff(),
  });
}

/**
 * Runs a program's main, turning a start-up failure into one log line and
 * exit 1. With `--version` it prints the program's name and version instead,
 * once every module the program imports is loaded: `deno task install` runs
 * each program so, to leave V8's code cache of them in the DENO_DIR.
 */
export async function runMain(program: string, main: () => Promise<unknown>): Promise<void> {
  if (Deno.args.includes("--version")) {
    console.log(`${program} ${VERSION}`);
    return;
  }
  try {
    await main();
  } catch (err) {
    logger(program).error("failed to start", {
      error: err instanceof Error ? err.message : String(err),
    });
    Deno.exit(1);
  }
}

/** Starts a service and keeps it running until a signal or the supervisor's exit. */
export async function runService(setup: ServiceSetup): Promise<RunningService> {
  const log = logger(setup.service);
  const audit = setup.audit ??
    new Audit({
      path: stateFiles(setup.layout).audit,
      program: setup.service,
      // Under the supervisor the audit trail is audit.log alone (see identity/main.ts).
      stderr: !setup.supervised,
    });
  // Started ahead of a dependency: its modules are loaded; nothing is read until the release.
  if (setup.held) await awaitRelease();
  // Before the first key is imported: keys made from now on check with WebCrypto.
  if (setup.light) verifyWithWebCrypto();
  const trust = setup.trust ?? await defaultTrust(setup.layout);
  // Buffers let go are freed by a collection once the service is quiet (made below).
  const gc: { collector?: IdleCollector } = {};
  const released = () => gc.collector?.collectWhenQuiet();
  const methods = setup.methods(trust, audit, released);
  const catchesUp = setup.catchesUp ?? setup.service !== "identity";
  // Filled in as start-up goes on; a stop before then has less to undo.
  const up: { server?: Server; timer?: ReturnType<typeof setInterval>; stopGc?: () => void } = {};
  let stopped: Promise<void> | undefined;
  const stop = (drainMs: number) => {
    stopped ??= (async () => {
      clearInterval(up.timer);
      up.stopGc?.();
      await up.server?.drain(drainMs);
      await setup.onStop?.();
      trust.close();
      audit.close();
      log.info("stopped");
    })();
    return stopped;
  };
  // Signals are handled from before the socket is bound: the supervisor may
  // send SIGTERM as soon as the health call answers, and that must drain,
  // not kill the process by the signal's default action.
  onStopSignal(() => stop(MAX_DRAIN_MS));
  // Read the list and the keys before serving anything.
  await trust.refresh();
  // After a burst, give its buffers and heap pages back (see idle_gc.ts).
  // Once quiet after the start, what start-up left goes too: 8.3-9.1 MB less anonymous memory for
  // the four services of an idle node (three alternated pairs), the first requests after it
  // within their noise.
  const collector = gc.collector = new IdleCollector({
    settle: true,
    ...(setup.light ? { cpuMicros: () => 0 } : {}),
  });
  const server = await Server.listen({
    service: setup.service,
    endpoints: endpointsOf(setup.layout, setup.service),
    tls: {
      certFile: setup.layout.tls?.cert,
      keyFile: setup.layout.tls?.key,
      // Cluster mode: tcp:// is mutual TLS, clients present a certificate of the cluster CA.
      clientCaFile: setup.layout.cluster?.ca,
    },
    methods,
    chain: requestChain(setup.service, { trust, audit, catchesUp }),
    limits: setup.limits,
    groupAccess: setup.layout.groupAccess,
    immediate: setup.immediate,
    onBuffersReleased: released,
  });
  up.server = server;
  up.timer = setInterval(() => trust.refresh().catch(() => {}), REFRESH_MS);
  Deno.unrefTimer(up.timer);
  up.stopGc = collector.start();
  if (setup.supervised) {
    const gone = () => stop(1000).finally(() => Deno.exit(0));
    if (setup.pipePrincipal === undefined) watchParentPipe(gone);
    else {
      const onRefused = (res: Record<string, unknown>) =>
        log.warn("refused a request from the supervisor's pipe", { response: res });
      server.servePrivate(parentPipe(gone, { onRefused }), { principal: setup.pipePrincipal });
    }
  }
  const tcp = server.endpoints.filter((e) => e.startsWith("tcp://"));
  log.info("listening", {
    socket: server.path,
    ...(tcp.length ? { tcp: tcp.join(",") } : {}),
    pid: Deno.pid,
  });
  return { server, trust, audit, stop };
}
