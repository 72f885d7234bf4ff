/**
 * The transport seam: a server listens on, and a client dials, an endpoint
 * URL. `unix:///path` is a Unix socket (claimed if stale, mode 0600 or 0660);
 * `tcp://host:port` is TCP with TLS (certificate and key from files for a
 * listener, a CA file for a dialer). Both give byte streams, so the server's
 * connection loop and the client's framing never ask which.
 *
 * Mutual TLS (cluster mode, docs/cluster.md): a listener given `clientCaFile`
 * asks every client for a certificate and completes the handshake only with
 * one that chains to that CA; a dialer given `certFile` and `keyFile`
 * presents them.
 *
 * A dialer is node:tls's client too: its `ca` is the only root it trusts,
 * where Deno.connectTls's `caCerts` adds to the roots the process trusts.
 *
 * Every tcp:// listener is node:tls's server (rustls under Deno's node
 * compat; `requestCert` and `rejectUnauthorized` for mutual TLS), with
 * Nagle's algorithm off on each connection. Deno.listenTls (Deno 2.9.6)
 * can neither ask for a client certificate nor turn Nagle off (its
 * connections have no setNoDelay), and a client making one request at a
 * time on it got each answer about 44 ms late on loopback (waiting on the
 * client's delayed ACK); node:tls's answers do not wait so, and with Nagle
 * off, neither do large ones under concurrent load (cross-node reads).
 * @module
 */

import type net from "node:net";
import type { TLSSocket } from "node:tls";
import { type Endpoint, formatEndpoint, isIpv4Address, parseEndpoint } from "../wire/endpoint.ts";
import { StrataError } from "../wire/errors.ts";
import type { ByteSink, ByteSource } from "../wire/frame.ts";

/** TLS files of a tcp:// listener. */
export interface ListenOptions {
  /** unix: let the process's group connect (0660 instead of 0600). */
  groupAccess?: boolean;
  /** tcp: the server's certificate chain (PEM file). */
  certFile?: string;
  /** tcp: the server's private key (PEM file). */
  keyFile?: string;
  /**
   * tcp: mutual TLS: the CA (PEM file) every client's certificate must chain
   * to; a client without one, or with another CA's, fails the handshake.
   */
  clientCaFile?: string;
  /**
   * tcp: how long a client may take over the handshake, in ms
   * ({@link HANDSHAKE_TIMEOUT_MS} unless given).
   */
  handshakeTimeoutMs?: number;
}

/** Options for {@link dial}. */
export interface DialOptions {
  /** tcp: the CA certificate (PEM file) the server's certificate must chain to. */
  caFile?: string;
  /** tcp: the client certificate (PEM file) to present to a server that asks (mutual TLS). */
  certFile?: string;
  /** tcp: its private key (PEM file). */
  keyFile?: string;
  /** How long the connection (and TLS handshake) may take, in ms (2 s unless given). */
  timeoutMs?: number;
}

/** An accepted connection: bytes both ways, and close. */
export interface Stream extends ByteSource, ByteSink {
  close(): void;
}

/** What a server accepts connections from; accept throws Deno.errors.BadResource once closed. */
export interface Acceptor {
  accept(): Promise<Stream>;
  close(): void;
}

/** A bound endpoint. */
export interface Listening {
  /** The endpoint URL, e.g. "unix:///run/strata/fs.sock" or "tcp://127.0.0.1:7402". */
  readonly endpoint: string;
  /** The listener whose connections the server accepts (Deno's for a socket, node:tls's for tcp://). */
  readonly listener: Acceptor;
  /** Stops listening and, for a Unix socket, removes its file. */
  close(): void;
}

/** Removes a stale socket file, refusing if another process still answers on it. */
async function claimSocketPath(path: string): Promise<void> {
  try {
    const probe = await Deno.connect({ transport: "unix", path });
    probe.close();
    throw new StrataError("CONFLICT", `another process is already serving ${path}`);
  } catch (err) {
    if (err instanceof StrataError) throw err;
    if (!(err instanceof Deno.errors.NotFound || err instanceof Deno.errors.ConnectionRefused)) {
      throw err;
    }
  }
  try {
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** A socket path (what callers gave before endpoints) or an endpoint URL, parsed. */
function endpointOf(target: string): Endpoint {
  return target.includes("://") ? parseEndpoint(target) : { kind: "unix", path: target };
}

/** Reads a PEM file named by an option, or says which option to fix. */
function readPem(path: string | undefined, option: string, endpoint: string): string {
  if (!path) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `${option}: ${endpoint} needs a PEM file (${option})`,
    );
  }
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `${option}: cannot read ${path} (${err instanceof Error ? err.message : err}); ` +
        "give a readable PEM file",
    );
  }
}

/**
 * Listens on an endpoint. unix: claims the path and sets the socket's mode;
 * tcp: serves TLS only, with the certificate and key read from their files.
 */
export async function listen(endpoint: string, options: ListenOptions = {}): Promise<Listening> {
  const ep = endpointOf(endpoint);
  if (ep.kind === "unix") {
    await claimSocketPath(ep.path);
    const listener = Deno.listen({ transport: "unix", path: ep.path });
    Deno.chmodSync(ep.path, options.groupAccess ? 0o660 : 0o600);
    return {
      endpoint: formatEndpoint(ep),
      listener,
      close() {
        try {
          listener.close();
        } catch { /* already closed */ }
        try {
          Deno.removeSync(ep.path);
        } catch { /* gone already */ }
      },
    };
  }
  const url = formatEndpoint(ep);
  if (!isIpv4Address(ep.host)) {
    // node:tls would look the name up and bind the address it finds, which the
    // service's exact --allow-net grant (host:port) does not cover.
    throw new StrataError(
      "INVALID_ARGUMENT",
      `${url}: a tcp:// listener binds an IPv4 address, not a host name ` +
        `(tcp://127.0.0.1:${ep.port}, or tcp://0.0.0.0:${ep.port} for every interface)`,
    );
  }
  const cert = readPem(options.certFile, "tls-cert", url);
  const key = readPem(options.keyFile, "tls-key", url);
  const ca = options.clientCaFile !== undefined
    ? readPem(options.clientCaFile, "cluster-ca", url)
    : undefined;
  return await listenTls(ep, { cert, key, ca }, options.handshakeTimeoutMs);
}

/**
 * Bytes a node:tls socket's stream holds unread before it stops reading from
 * the peer (as a Deno socket holds what the kernel does).
 */
const UNREAD_HIGH_WATER = 64 * 1024;

/** The TCP handle under a node:tls socket (Deno 2.9.6 as Node: its `_parent`'s `_handle`). */
interface TcpHandle {
  readStop(): unknown;
  readStart(): unknown;
}

/**
 * The TCP handle under `socket`, to stop and start reading from the peer.
 * In Deno 2.9.6 a TLSSocket's own pause() neither stops reading (a peer that
 * sent without end grew the process by its bytes: 1.2 GiB in 5 s) nor keeps an
 * end that arrives while paused; stopping the TCP handle does both. The TLS
 * socket must wrap a net.Socket (a server's do; the dialer passes its own).
 * tests/unit/server_transport_test.ts holds a flood to a bound.
 */
function tcpHandleOf(socket: TLSSocket): TcpHandle | undefined {
  const handle = (socket as unknown as { _parent?: { _handle?: Partial<TcpHandle> } })._parent
    ?._handle;
  return typeof handle?.readStop === "function" && typeof handle.readStart === "function"
    ? handle as TcpHandle
    : undefined;
}

/**
 * A node:tls socket as a {@link Stream}. Its chunks wait in a queue until
 * read, reading from the peer stopped while UNREAD_HIGH_WATER bytes wait,
 * and a read takes as many of them as fit. (Its async iterator joined
 * whatever had arrived into one new buffer for each read: a client reading
 * 720 KiB answers on 4 connections made 583-640 reads a second so, 626-756
 * so, three runs each.)
 */
function streamOf(socket: TLSSocket): Stream {
  const queue: Uint8Array[] = [];
  let queued = 0;
  // Ended already, before this stream was made (a connection waiting to be accepted).
  let ended = socket.destroyed || socket.readableEnded;
  let failure: { err: unknown } | undefined;
  let closed = false;
  const tcp = tcpHandleOf(socket);
  let stopped = false;
  const waiting: (() => void)[] = [];
  const rouse = () => {
    for (const w of waiting.splice(0)) w();
  };
  socket.on("data", (chunk: Uint8Array) => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= UNREAD_HIGH_WATER && tcp && !stopped) {
      stopped = true;
      tcp.readStop();
    }
    rouse();
  });
  // Not destroyed when the reads end: a peer that half-closes still gets its answers.
  socket.on("end", () => {
    ended = true;
    rouse();
  });
  socket.on("close", () => {
    ended = true;
    rouse();
  });
  // Surfaced by the next read (once what arrived before it is read) or write.
  socket.on("error", (err: unknown) => {
    failure ??= { err };
    rouse();
  });
  return {
    async read(p: Uint8Array): Promise<number | null> {
      while (queue.length === 0) {
        if (closed) return null;
        if (failure) throw failure.err;
        if (ended) return null;
        await new Promise<void>((r) => waiting.push(r));
      }
      let n = 0;
      while (n < p.length && queue.length > 0) {
        const chunk = queue[0];
        const k = Math.min(p.length - n, chunk.length);
        p.set(k === chunk.length ? chunk : chunk.subarray(0, k), n);
        n += k;
        if (k === chunk.length) queue.shift();
        else queue[0] = chunk.subarray(k);
      }
      queued -= n;
      // (close() and an error destroy the socket.)
      if (stopped && queued < UNREAD_HIGH_WATER && !ended && !socket.destroyed) {
        stopped = false;
        tcp!.readStart();
      }
      return n;
    },
    write(p: Uint8Array): Promise<number> {
      // Settles once node:tls has taken the bytes: the caller may reuse `p` after that.
      return new Promise((resolve, reject) => {
        socket.write(p, (err) => err ? reject(err) : resolve(p.length));
      });
    },
    close(): void {
      closed = true;
      socket.destroy();
      rouse();
    },
  };
}

/**
 * A tcp:// listener (node:tls's server, Nagle off on every connection); given
 * `ca`, it completes the TLS handshake only with clients whose certificate
 * chains to it. Handshakes never reach the server's accept loop, so they are
 * bounded here: each may take HANDSHAKE_TIMEOUT_MS, and beyond
 * MAX_PENDING_HANDSHAKES the oldest is dropped (as the server evicts its
 * longest-idle connection for a newcomer).
 */
async function listenTls(
  ep: Extract<Endpoint, { kind: "tcp" }>,
  pem: { cert: string; key: string; ca?: string },
  handshakeTimeoutMs = HANDSHAKE_TIMEOUT_MS,
): Promise<Listening> {
  const url = formatEndpoint(ep);
  const ready: TLSSocket[] = [];
  let waiter: ((s: TLSSocket | null) => void) | undefined;
  let closed = false;
  // Connections whose handshake has not completed, oldest first.
  const pending = new Set<net.Socket>();
  // Loaded only by a service that listens on TCP: node:tls brings Deno's Node layer.
  const { createServer } = await import("node:tls");
  const server = createServer({
    cert: pem.cert,
    key: pem.key,
    ...(pem.ca !== undefined ? { ca: [pem.ca], requestCert: true, rejectUnauthorized: true } : {}),
    minVersion: "TLSv1.2",
    // A peer that half-closes after its last request still gets the answers.
    allowHalfOpen: true,
    handshakeTimeout: handshakeTimeoutMs,
  }, (socket) => {
    // node:tls's TLSSocket keeps the TCP socket it wraps as _parent (Deno 2.9.6 as Node).
    pending.delete((socket as unknown as { _parent?: net.Socket })._parent!);
    // rejectUnauthorized has refused the rest already; checked again, not assumed.
    if (pem.ca !== undefined && !socket.authorized) {
      socket.destroy();
      return;
    }
    if (waiter) {
      const w = waiter;
      waiter = undefined;
      w(socket);
    } else ready.push(socket);
  });
  // A client refused at the handshake, or too slow: Deno's node:tls reports a
  // handshake timeout but leaves the socket open (seen in 2.9.6): close it.
  server.on("tlsClientError", (_err: Error, socket: TLSSocket) => socket.destroy());
  server.on("connection", (raw: net.Socket) => {
    if (pending.size >= MAX_PENDING_HANDSHAKES) {
      const oldest = pending.values().next().value!;
      pending.delete(oldest);
      oldest.destroy();
    }
    pending.add(raw);
    raw.once("close", () => pending.delete(raw));
    // Each answer goes out whole at once: with Nagle's algorithm, its last
    // short TLS record waited for the client's delayed ACK (about 40 ms).
    raw.setNoDelay(true);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: Error & { code?: string }) => {
      reject(
        err.code === "EADDRINUSE"
          ? new StrataError("CONFLICT", `another process is already serving ${url}`)
          : err,
      );
    });
    server.listen(ep.port, ep.host, () => resolve());
  });
  server.on("error", () => {});
  const listener: Acceptor = {
    async accept(): Promise<Stream> {
      const next = ready.shift() ??
        (closed ? null : await new Promise<TLSSocket | null>((r) => (waiter = r)));
      if (next === null) throw new Deno.errors.BadResource(`${url} is closed`);
      return streamOf(next);
    },
    close() {
      if (closed) return;
      closed = true;
      server.close();
      for (const s of ready.splice(0)) s.destroy();
      waiter?.(null);
      waiter = undefined;
    },
  };
  return {
    endpoint: url,
    listener,
    close() {
      listener.close();
    },
  };
}

/** How long a client may take over the TLS handshake of a tcp:// listener, by default. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Handshakes a tcp:// listener lets be under way at once (the oldest goes first). */
export const MAX_PENDING_HANDSHAKES = 64;

/**
 * Why a connection to an endpoint could not be made, or broke, as
 * `details.reason` of the UNAVAILABLE error a client makes
 * (api/protocol.md, "Errors"): the word a program acts on, where the
 * message is for people.
 */
export type UnreachableReason =
  /** No socket there, or nothing listening: the service is not running (at that address). */
  | "not_running"
  /** The operating system refused: the socket's or its folder's owner and mode. */
  | "permission_denied"
  /** This program's Deno permissions do not grant the endpoint. */
  | "not_permitted"
  /** No connection (and TLS handshake) within the connect timeout. */
  | "timed_out"
  /** The TLS handshake failed, or the server refused this client's certificate. */
  | "tls_failed"
  /** The connection broke, or the server closed it, after it was made. */
  | "connection_lost"
  /** No answer to a request within its timeout (the connection itself was made). */
  | "no_answer"
  /** Anything else the operating system said. */
  | "connect_failed";

/** The connect timeout of {@link dial} passed. */
class DialTimeout extends Error {
  constructor(ms: number, queueFull: boolean) {
    super(
      queueFull
        ? `its listening queue stayed full for ${ms} ms (it does not accept connections as ` +
          "fast as they arrive: flooded, overloaded or stuck)"
        : "timed out",
    );
  }
}

/** The TLS handshake of {@link dial} failed. */
class TlsHandshakeError extends Error {}

/** A TLS server closed the connection right after the handshake, without a TLS alert. */
class ClosedUnanswered extends Error {
  constructor() {
    super("the server closed the connection right after the TLS handshake, before any answer");
  }
}

/**
 * The UNAVAILABLE error for `target` (a socket path or an endpoint URL)
 * that could not be reached, or whose connection broke (`connected`): a
 * message an operator can act on, `details.reason` ({@link UnreachableReason})
 * for programs, and `details.path` (a socket) or `details.endpoint` (tcp://).
 * The dialer and the client both report through it.
 */
export function unreachable(
  target: string,
  err: unknown,
  options: { connected?: boolean } = {},
): StrataError {
  const { unix, label } = whereOf(target);
  const text = err instanceof Error ? err.message : String(err);
  // Under TLS 1.3 a server that refuses the client's certificate says so
  // after the client's side of the handshake: on the first read.
  const alert = !unix && (err instanceof ClosedUnanswered || /alert|close_notify/i.test(text));
  const [why, reason]: [string, UnreachableReason] = err instanceof Deno.errors.NotFound
    ? ["no socket there", "not_running"]
    : err instanceof Deno.errors.ConnectionRefused
    ? ["nothing is listening", "not_running"]
    : err instanceof Deno.errors.NotCapable
    ? [`this program is not permitted to use that ${unix ? "socket" : "endpoint"}`, "not_permitted"]
    // A socket's owner and mode; over TCP the same error class is a firewall's EPERM.
    : err instanceof Deno.errors.PermissionDenied && unix
    ? [text, "permission_denied"]
    : err instanceof DialTimeout
    ? [text, "timed_out"]
    : err instanceof TlsHandshakeError || alert
    ? [text, "tls_failed"]
    : [text, options.connected ? "connection_lost" : "connect_failed"];
  const refused = alert
    ? "; the server may have refused this client's certificate (cluster mode: present " +
      "one the cluster CA signed, --tls-cert and --tls-key)"
    : "";
  return new StrataError(
    "UNAVAILABLE",
    `cannot connect to ${label}: ${why}${refused}`,
    unreachableDetails(target, reason),
  );
}

/** Whether `target` is a socket, and how errors name it (its path, or the endpoint URL). */
function whereOf(target: string): { unix: boolean; label: string } {
  let ep: Endpoint | undefined;
  try {
    ep = endpointOf(target);
  } catch {
    // named as given
  }
  const unix = ep === undefined || ep.kind === "unix";
  return {
    unix,
    label: ep === undefined ? target : ep.kind === "unix" ? ep.path : formatEndpoint(ep),
  };
}

/**
 * The `details` of an UNAVAILABLE error about `target`: `reason`, and
 * `path` (a socket) or `endpoint` (tcp://), as {@link unreachable} gives them.
 */
export function unreachableDetails(
  target: string,
  reason: UnreachableReason,
): Record<string, unknown> {
  const { unix, label } = whereOf(target);
  return unix ? { reason, path: label } : { reason, endpoint: label };
}

/**
 * A dial under way: whether it has given up, whether the socket's queue was
 * full, and how to end a TLS connection still under way.
 */
interface Dialing {
  over: boolean;
  queueFull: boolean;
  cancel?: () => void;
}

/**
 * Connects to a Unix socket. A listening queue that is full (a flood of
 * connections the server has not accepted yet) refuses a connect at once
 * (EAGAIN, Deno's WouldBlock) where a blocking connect would wait for room:
 * it is tried again, 1 ms later and then every 2 ms, until the dial gives
 * up. The flooders take every place that frees up as soon as it does, so
 * the odds are in how often it tries: behind two processes connecting and
 * closing in a loop, a fresh fs.health took at most 1.5 s trying at most
 * every 16 ms, 0.4-0.7 s every 2 ms (tests/security/connection_churn_test.ts
 * and a flooder in C, a failed try costing microseconds).
 */
async function connectUnix(path: string, dialing: Dialing): Promise<Deno.Conn> {
  for (let wait = 1;; wait = 2) {
    try {
      return await Deno.connect({ transport: "unix", path });
    } catch (err) {
      if (!(err instanceof Deno.errors.WouldBlock) || dialing.over) throw err;
      dialing.queueFull = true;
    }
    await new Promise((r) => setTimeout(r, wait));
    // Given up meanwhile (dial has already failed): no connection the server
    // would accept for nothing.
    if (dialing.over) throw new Error("the dial gave up");
  }
}

async function open(
  ep: Endpoint,
  options: DialOptions,
  url: string,
  dialing: Dialing,
): Promise<Stream> {
  if (ep.kind === "unix") return await connectUnix(ep.path, dialing);
  const ca = readPem(options.caFile, "tls-ca", url);
  // Mutual TLS: the client's certificate and key, both or neither.
  const mine = options.certFile !== undefined || options.keyFile !== undefined
    ? {
      cert: readPem(options.certFile, "tls-cert", url),
      key: readPem(options.keyFile, "tls-key", url),
    }
    : {};
  return await connectTls(ep, { ca, ...mine }, dialing);
}

/**
 * Connects with TLS (node:tls), trusting `ca` alone: Deno.connectTls's
 * `caCerts` (Deno 2.9.6) only adds to the roots the process trusts (Mozilla's,
 * DENO_CERT, DENO_TLS_CA_STORE), so a server whose certificate any of those
 * signed for the host got the caller's token. The certificate must name the
 * host (an address as an IP subject alt name). The TLS socket wraps a
 * net.Socket of ours, whose reading {@link streamOf} can stop, with Nagle's
 * algorithm off, as on the listener's side.
 */
async function connectTls(
  ep: Extract<Endpoint, { kind: "tcp" }>,
  pem: { ca: string; cert?: string; key?: string },
  dialing: Dialing,
): Promise<Stream> {
  // Loaded only by a client that dials tcp://: node:tls brings Deno's Node layer.
  const [{ connect }, net] = await Promise.all([import("node:tls"), import("node:net")]);
  if (dialing.over) throw new Error("the dial gave up");
  return await new Promise<Stream>((resolve, reject) => {
    const started = performance.now();
    let connected = false;
    const raw = net.connect({ host: ep.host, port: ep.port });
    const socket = connect({
      socket: raw,
      host: ep.host,
      ca: [pem.ca],
      ...(pem.cert !== undefined ? { cert: pem.cert, key: pem.key } : {}),
      minVersion: "TLSv1.2",
    });
    const fail = (err: unknown) => {
      socket.destroy();
      raw.destroy();
      const code = (err as { code?: string }).code;
      reject(
        err instanceof Deno.errors.NotCapable
          ? err
          : code === "ECONNREFUSED"
          ? new Deno.errors.ConnectionRefused((err as Error).message)
          // Connected, then refused at the handshake: the certificate, or the server.
          : connected || /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED)/
              .test(code ?? "")
          ? new TlsHandshakeError(
            `TLS handshake failed (${err instanceof Error ? err.message : err})`,
          )
          : err,
      );
    };
    // The dial's timeout ends a connection still under way.
    dialing.cancel = () => fail(new Error("the dial gave up"));
    raw.once("connect", () => {
      connected = true;
      raw.setNoDelay(true);
    });
    raw.on("error", fail);
    socket.on("error", fail);
    socket.once("secureConnect", () => {
      raw.off("error", fail);
      socket.off("error", fail);
      // From here the TLS socket's reads and writes carry the TCP socket's errors.
      raw.on("error", () => {});
      dialing.cancel = undefined;
      // rejectUnauthorized has refused the rest already; checked again, not assumed.
      if (!socket.authorized) {
        fail(new TlsHandshakeError(`TLS handshake failed (${socket.authorizationError})`));
        return;
      }
      const stream = streamOf(socket);
      // Under TLS 1.3 a server refuses the client's certificate (or its
      // lack of one) after the client's side of the handshake, within a
      // round trip. Deno's node:tls server (2.9.6) closes without an alert
      // when one is presented, and the alert for none presented came as a
      // plain close in 2 of 16 runs of a test. An end so soon, before any
      // answer, says so; a later one is a lost connection.
      const secured = performance.now();
      const soon = Math.max(REFUSAL_WINDOW_MS, 2 * (secured - started));
      let answered = false;
      resolve({
        ...stream,
        async read(p: Uint8Array): Promise<number | null> {
          const n = await stream.read(p);
          if (n === null && !answered && performance.now() - secured <= soon) {
            throw new ClosedUnanswered();
          }
          answered = true;
          return n;
        },
      });
    });
  });
}

/**
 * How soon after a TLS handshake an end before any answer is taken for a
 * refused certificate (ms; or twice the handshake's time, if longer).
 */
const REFUSAL_WINDOW_MS = 50;

/**
 * Dials an endpoint (a bare path is a Unix socket); throws
 * UNAVAILABLE naming the endpoint when nothing answers or TLS fails, and
 * INVALID_ARGUMENT when the endpoint or a TLS file is unusable.
 */
export async function dial(endpoint: string, options: DialOptions = {}): Promise<Stream> {
  const ep = endpointOf(endpoint);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const dialing: Dialing = { over: false, queueFull: false };
  const ms = options.timeoutMs ?? 2000;
  const opening = open(ep, options, formatEndpoint(ep), dialing);
  try {
    return await Promise.race([
      opening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DialTimeout(ms, dialing.queueFull)), ms);
      }),
    ]);
  } catch (err) {
    // A connection that arrives after the timeout is closed, not leaked.
    opening.then((c) => c.close(), () => {});
    if (err instanceof StrataError) throw err;
    throw unreachable(endpoint, err);
  } finally {
    dialing.over = true;
    dialing.cancel?.();
    clearTimeout(timer);
  }
}
