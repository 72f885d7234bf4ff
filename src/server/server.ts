/**
 * The one server every Strata service runs: a listener and a per-connection
 * loop that takes each request through
 * frame decode → envelope check → the request chain it is given
 * (authenticate, authorize, constraints, audit of refusals) → params check →
 * handler → response frame.
 *
 * A service only declares its methods. The server adds `<service>.health`,
 * enforces the limits (connections, in-flight requests per connection, idle
 * time, time per request, frame size, memory budgets) and drains on stop.
 * It imports nothing of tokens or policy: the program that composes the
 * service hands it the chain.
 * @module
 */

import { type Access, healthSpec } from "../api/method.ts";
import {
  EnvelopeError,
  errorResponse,
  okResponse,
  parseRequest,
  type Request,
} from "../wire/envelope.ts";
import { ByteBudget } from "../wire/budget.ts";
import { type ErrorName, StrataError, toStrataError } from "../wire/errors.ts";
import {
  type ByteSink,
  type ByteSource,
  encodeFrame,
  encodeJsonFrame,
  FramePool,
  FrameReader,
  FrameTooLargeError,
  FrameWriter,
  MAX_FRAME,
  type NextOptions,
} from "../wire/frame.ts";
import { type ParamsSchema, validateParams } from "../wire/schema.ts";
import { type Acceptor, HANDSHAKE_TIMEOUT_MS, listen, type Listening } from "./transport.ts";

/**
 * The request steps the server runs for a protected method, given to it by
 * the program that composes the service.
 */
export interface RequestChain<C = unknown> {
  /**
   * Authenticates the token and authorizes `right` (and the token's
   * constraints): returns the caller's capability, or throws the refusal as
   * a StrataError.
   */
  authorize(token: string | undefined, right: string): C | Promise<C>;
  /** Told of each refusal `authorize` threw (the audit trail). */
  refused?(method: string, err: StrataError): void;
  /**
   * Runs before every request, public ones and the pipe's too (a verifier
   * catches up with the revocations acknowledged so far); a promise delays
   * the request until it settles.
   */
  before?(): void | Promise<void>;
}

/** What a handler learns about the request besides its params. */
export interface MethodContext<C = unknown> {
  /** The caller's verified capability (protected methods only). */
  cap?: C;
  /** The request id. */
  reqId: string;
  /** The connection's number, for handlers that keep per-connection state. */
  connId: number;
}

/** A method a service offers. */
export interface Method<C = unknown> {
  /** Full method name, "service.action". */
  name: string;
  /** The right it needs, or "public". Nothing is public unless it says so. */
  access: Access;
  /** Its params. */
  params: ParamsSchema;
  /**
   * Bytes its response may hold in memory (strings and frame) for these
   * params, reserved from the connection's and the server's response budgets
   * before the handler runs. Methods whose responses can be large need it;
   * every response counts with its real size once it is made.
   */
  // deno-lint-ignore no-explicit-any
  cost?(params: any): number;
  /** Whether the work for these params is long enough to take turns with other heavy work. */
  // deno-lint-ignore no-explicit-any
  heavy?(params: any): boolean;
  /** Does the work; what it returns is the result (or a {@link RawJson}). */
  // deno-lint-ignore no-explicit-any
  handler(params: any, ctx: MethodContext<C>): unknown | Promise<unknown>;
}

/**
 * A result that is already JSON text, whole or in parts: encoded into the
 * response frame as is, so a large payload is serialised once and never
 * joined into one big string.
 */
export class RawJson {
  readonly parts: readonly string[];
  constructor(json: string | readonly string[]) {
    this.parts = typeof json === "string" ? [json] : json;
  }
}

/** Resource limits of one server. */
export interface ServerLimits {
  /** Open connections at most; past it the oldest idle one is closed. */
  maxConnections: number;
  /** Requests one connection may have in flight before reading pauses. */
  maxInFlight: number;
  /** A connection with no complete frame and nothing in flight for this long is closed. */
  idleTimeoutMs: number;
  /** A request not answered within this gets UNAVAILABLE. */
  requestTimeoutMs: number;
  /** A response the peer does not take within this closes the connection. */
  writeTimeoutMs: number;
  /**
   * Response bytes one connection may hold (being made or unsent) before its
   * further requests wait: a peer that does not read stalls only itself.
   */
  maxPendingBytes: number;
  /** Bytes of large request bodies held at once, across all connections (taken as they arrive). */
  requestBudget: number;
  /**
   * Response bytes held at once across all connections. Every response counts;
   * one larger than its connection's share waits for room, and peers that have
   * stopped reading are cut off to make it.
   */
  responseBudget: number;
  /** Largest request body. */
  maxFrame: number;
}

/** The limits used unless a service overrides them. */
export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 256,
  maxInFlight: 32,
  idleTimeoutMs: 60_000,
  requestTimeoutMs: 30_000,
  writeTimeoutMs: 10_000,
  maxPendingBytes: 256 * 1024,
  requestBudget: 8 * MAX_FRAME,
  responseBudget: 8 * MAX_FRAME,
  maxFrame: MAX_FRAME,
};

/**
 * A connection is closed once it has had this many malformed or
 * unauthenticated requests, and more of those than successful ones.
 */
export const MAX_REFUSALS = 32;

/** While draining, a connection with nothing in flight for this long is closed. */
const DRAIN_QUIET_MS = 50;

/** A connection whose write has been stuck this long may be evicted for a newcomer. */
const STALLED_MS = 1000;

/**
 * While responses wait for the server's budget, a connection that holds some
 * of it, has more requests waiting, and whose write has been stuck this long
 * is closed to make room.
 */
const RELIEF_STALL_MS = 50;

/** How often the server looks for such connections while responses wait. */
const RELIEF_EVERY_MS = 25;

/**
 * While request bodies wait for the server's budget, a connection holding
 * some of it for a body that has been arriving this long is closed.
 */
const BODY_STALL_MS = 250;

/**
 * Room kept beside the server's response budget for small responses (a cost
 * of at most {@link QUICK_MAX}, such as an `fs.list` or a read of up to 24
 * KiB), taken when the budget itself would make them wait: a flood of large
 * reads that holds the budget, and queues for it, does not put another
 * client's listing in line behind it. Each connection holds at most
 * QUICK_MAX of it at once, so no one connection fills it.
 */
const QUICK_RESERVE = 1024 * 1024;

/** The largest cost that may take from {@link QUICK_RESERVE}, and what one connection may hold of it. */
const QUICK_MAX = 64 * 1024;

/** Why a closed connection's requests end: one error for all (a new one is a stack trace, about 3 µs). */
const CLOSED = new StrataError("UNAVAILABLE", "connection closed");

/**
 * Connections accepted in one turn of the event loop before the accept loop
 * lets a macrotask turn pass (newcomers that arrive apart never wait). Accepts that are ready complete without waiting, so
 * a burst of newcomers (a flood opening 250 connections) was accepted, and
 * each one's first request read, parsed and judged, in one chain that held
 * the event loop for 25-60 ms while an open connection's request waited
 * unread. Taking them 8 at a time, with a turn between, the good client's
 * worst fs.list in the 64 KiB unread-reads flood was 7.1-34.4 ms against
 * 36.1-61.6 (tests/security/starvation_test.ts, six alternated runs).
 */
const ACCEPT_BURST = 8;

/** Heavy handlers that start at once in one turn of the event loop. */
const HEAVY_AT_ONCE = 4;

/**
 * Heavy work takes turns when it comes in bursts. Up to
 * {@link HEAVY_AT_ONCE} heavy handlers that arrive in one turn of the event
 * loop start at once; past that (a burst of clients sending large reads at
 * the same moment), the rest wait and are let go one per timer tick, so the
 * loop reads the sockets between them and a small request from another
 * client is answered at once instead of queueing behind the whole burst.
 * Ordinary traffic, a few large reads at a time, never waits. The end of a
 * turn is told by the server's {@link ServerOptions.immediate} (node:timers'
 * setImmediate in fs and identity, run once the loop has dispatched what its
 * poll found: 1.7-2.2 µs a turn here, against 7.8-11.9 for a MessageChannel
 * made, posted to and closed, which had cost fs about 5% of its CPU under
 * 720 KiB reads at 4 connections); the ticks are 0 ms timers (about 2 ms
 * each here).
 */
class Turns {
  #waiting: (() => void)[] = [];
  #immediate: (fn: () => void) => void;
  #arrived = 0;
  #endPending = false;
  #ticking = false;

  constructor(immediate: (fn: () => void) => void) {
    this.#immediate = immediate;
  }

  /** Undefined when the caller may go now; else resolves when it is its turn. */
  take(): Promise<void> | undefined {
    this.#arrived++;
    this.#endOfTurn();
    if (this.#arrived <= HEAVY_AT_ONCE && this.#waiting.length === 0) return undefined;
    const turn = new Promise<void>((go) => this.#waiting.push(go));
    this.#tick();
    return turn;
  }

  /** Counts arrivals afresh at the end of this turn. */
  #endOfTurn(): void {
    if (this.#endPending) return;
    this.#endPending = true;
    this.#immediate(this.#turnEnded);
  }

  #turnEnded = () => {
    this.#arrived = 0;
    this.#endPending = false;
  };

  /** Lets one waiter go per tick while any wait. */
  #tick(): void {
    if (this.#ticking) return;
    this.#ticking = true;
    setTimeout(() => {
      this.#ticking = false;
      this.#waiting.shift()?.();
      if (this.#waiting.length > 0) this.#tick();
    }, 0);
  }
}

/** Options for {@link Server.listen}. */
export interface ServerOptions<C = unknown> {
  /** The service name, e.g. "fs". */
  service: string;
  /** Socket path: the same as the endpoint `unix://<path>`. */
  path?: string;
  /**
   * Endpoint URLs to listen on (see server/transport.ts), besides `path`:
   * every connection runs through the same request path and limits.
   */
  endpoints?: string[];
  /**
   * The certificate and key files of tcp:// endpoints, and (mutual TLS,
   * cluster mode) the CA every client's certificate must chain to.
   */
  tls?: { certFile?: string; keyFile?: string; clientCaFile?: string };
  /** The methods offered. */
  methods: Method<C>[];
  /** The request chain; required when any method is protected. */
  chain?: RequestChain<C>;
  limits?: Partial<ServerLimits>;
  /** Let the process's group connect: the socket is 0660 instead of 0600. */
  groupAccess?: boolean;
  /**
   * Runs a function once this turn of the event loop has dispatched what its
   * poll found: node:timers' setImmediate in a program that loads Deno's
   * Node layer anyway (fs, identity). The default, a 0 ms timer, ends a turn
   * a little later and needs no `node:` module: importing one starts the
   * Node layer, which supervisor and registry otherwise never load (it cost
   * each about 21 ms of its 75 ms load and 0.4 MB).
   */
  immediate?: (fn: () => void) => void;
  /**
   * Runs when the pool of large frames' buffers has let them go after a
   * burst (see FramePool): a service asks for a collection then.
   */
  onBuffersReleased?: () => void;
}

/** A 0 ms timer: the default {@link ServerOptions.immediate}. */
function zeroTimer(fn: () => void): void {
  setTimeout(fn, 0);
}

/** A byte stream both ways that can be closed: a socket, or a private pipe pair. */
export interface Duplex extends ByteSource, ByteSink {
  close(): void;
}

/** Options for {@link Server.servePrivate}. */
export interface PrivateConnOptions<C> {
  /** Who the connection's holder is: its protected requests run as this, without a token. */
  principal: C;
}

/** Budget bytes one request holds until its response is written. */
interface Held {
  request: number;
  /** From the server's response budget, or from its reserve when `quick`. */
  response: number;
  /** Whether `response` was taken from the small responses' reserve. */
  quick?: boolean;
  /** From its connection's response budget. */
  conn: number;
}

/** When a pending async handler's time is up, and how it then fails. */
interface Deadline {
  at: number;
  expire(): void;
}

/** A request's response frame, the error name when it is a refusal, and the bytes it holds. */
interface Answer {
  frame: Uint8Array;
  refusal?: ErrorName;
  /** When more than the frame's length (a pooled buffer). */
  holds?: number;
}

interface ConnState<C = unknown> {
  id: number;
  conn: Duplex;
  /**
   * A private connection's principal (see Server.servePrivate): protected
   * requests run as it instead of through the chain, and the connection is
   * never closed as idle, evicted, relieved or cut off for refusals.
   */
  principal?: { as: C };
  writer: FrameWriter;
  inFlight: number;
  /** INVALID_ARGUMENT / UNAUTHENTICATED answers, and successful ones. */
  refusals: number;
  successes: number;
  /** Refused too often (see MAX_REFUSALS): no more of its requests are read or answered. */
  cutOff: boolean;
  lastActive: number;
  closed: boolean;
  /** Aborted on close: withdraws the connection's waiting budget takes. */
  aborted: AbortController;
  /** Response bytes this connection may hold (see ServerLimits.maxPendingBytes). */
  budget: ByteBudget;
  /** Bytes it holds of the server's response budget. */
  serverBytes: number;
  /** Bytes it holds of the small responses' reserve (see QUICK_RESERVE). */
  quickBytes: number;
  /** Request budget held by the large body being read, and since when it arrives. */
  bodyBytes: number;
  bodySince: number;
  wake?: () => void;
}

const MIN_SWEEP_MS = 250;

/** A running server. */
export class Server<C = unknown> {
  readonly service: string;
  /** The Unix socket path ("" when the server has none). */
  readonly path: string;
  /** The endpoint URLs it listens on. */
  readonly endpoints: readonly string[];
  #listening: Listening[];
  #methods = new Map<string, Method<C>>();
  #limits: ServerLimits;
  #chain?: RequestChain<C>;
  #conns = new Map<number, ConnState<C>>();
  #nextId = 1;
  #inFlight = 0;
  /** Requests taken through to their answers since the start. */
  #finished = 0;
  #draining = false;
  #sweep: ReturnType<typeof setTimeout>;
  #started = Date.now();
  #accepting: Promise<void>;
  #pool: FramePool;
  #requestBudget: ByteBudget;
  #responseBudget: ByteBudget;
  #quickBudget = new ByteBudget(QUICK_RESERVE);
  #relief?: ReturnType<typeof setTimeout>;
  #turns: Turns;
  #immediate: (fn: () => void) => void;
  /** Pending async handlers' time limits, oldest first, and the one timer that watches them. */
  #deadlines = new Set<Deadline>();
  #deadlineWatch?: ReturnType<typeof setTimeout>;

  private constructor(options: ServerOptions<C>, listening: Listening[]) {
    this.service = options.service;
    this.endpoints = listening.map((l) => l.endpoint);
    this.path = this.endpoints.find((e) => e.startsWith("unix://"))?.slice("unix://".length) ?? "";
    this.#listening = listening;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#immediate = options.immediate ?? zeroTimer;
    this.#turns = new Turns(this.#immediate);
    this.#pool = new FramePool(undefined, { onRelease: options.onBuffersReleased });
    this.#chain = options.chain;
    this.#requestBudget = new ByteBudget(this.#limits.requestBudget);
    this.#responseBudget = new ByteBudget(this.#limits.responseBudget);
    for (const m of [this.#healthMethod(), ...options.methods]) {
      if (m.access !== "public" && typeof m.access?.right !== "string") {
        throw new Error(`${m.name}: declares no right and is not public (deny by default)`);
      }
      if (m.access !== "public" && !this.#chain) {
        throw new Error(`${m.name}: protected methods need the server's request chain`);
      }
      this.#methods.set(m.name, m);
    }
    const every = Math.max(
      MIN_SWEEP_MS,
      Math.min(1000, this.#limits.idleTimeoutMs / 4, this.#limits.writeTimeoutMs / 4),
    );
    this.#sweep = setInterval(() => this.#sweepConns(), every);
    Deno.unrefTimer(this.#sweep);
    this.#accepting = Promise.all(listening.map((l) => this.#acceptLoop(l.listener))).then(
      () => {},
    );
  }

  /**
   * Listens on every endpoint (a Unix socket path is claimed and given its
   * mode; tcp:// serves TLS) and starts serving; if one cannot be bound (or
   * the methods are refused), the others are closed again.
   */
  static async listen<C>(options: ServerOptions<C>): Promise<Server<C>> {
    const endpoints = [
      ...(options.path !== undefined ? [options.path] : []),
      ...(options.endpoints ?? []),
    ];
    if (endpoints.length === 0) throw new Error(`${options.service}: no endpoint to listen on`);
    const listening: Listening[] = [];
    try {
      // A client still in its TLS handshake is closed as an idle connection would be.
      const idle = options.limits?.idleTimeoutMs ?? DEFAULT_LIMITS.idleTimeoutMs;
      const handshakeTimeoutMs = Math.min(idle, HANDSHAKE_TIMEOUT_MS);
      for (const e of endpoints) {
        listening.push(
          await listen(e, { groupAccess: options.groupAccess, handshakeTimeoutMs, ...options.tls }),
        );
      }
      return new Server(options, listening);
    } catch (err) {
      for (const l of listening) l.close();
      throw err;
    }
  }

  /** Open connections. */
  get connections(): number {
    return this.#conns.size;
  }

  /** Requests being worked on. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Whether a drain has begun. */
  get draining(): boolean {
    return this.#draining;
  }

  #healthMethod(): Method<C> {
    return {
      ...healthSpec(this.service),
      handler: () => {
        const m = Deno.memoryUsage();
        return {
          status: this.#draining ? "draining" : "ok",
          service: this.service,
          pid: Deno.pid,
          uptime_ms: Date.now() - this.#started,
          memory: {
            rss: m.rss,
            heap_used: m.heapUsed,
            heap_total: m.heapTotal,
            external: m.external,
          },
        };
      },
    };
  }

  async #acceptLoop(listener: Acceptor): Promise<void> {
    // Accepted in this turn of the event loop (an immediate tells its end).
    let inTurn = 0;
    let ending = false;
    const turnEnded = () => {
      ending = false;
      inTurn = 0;
    };
    while (true) {
      if (inTurn >= ACCEPT_BURST) {
        // A 0 ms timer (1-2 ms a step here): accepts in a burst top out near
        // 3,500 a second, the rest wait in the listening socket's queue.
        await new Promise((r) => setTimeout(r, 0));
        inTurn = 0;
      }
      let conn: Duplex;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (this.#draining || err instanceof Deno.errors.BadResource) return;
        // Out of descriptors or similar: back off briefly rather than spin.
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      inTurn++;
      if (!ending) {
        ending = true;
        this.#immediate(turnEnded);
      }
      if (this.#conns.size >= this.#limits.maxConnections && !this.#evictIdle()) {
        this.#refuse(conn);
        continue;
      }
      this.#handle(conn);
    }
  }

  /**
   * Makes room for a newcomer: closes the longest-idle connection, or else
   * the one whose peer has stopped taking its responses the longest. False
   * when every connection is busy and making progress.
   */
  #evictIdle(): boolean {
    let idle: ConnState<C> | undefined;
    let stalled: ConnState<C> | undefined;
    const now = performance.now();
    for (const s of this.#conns.values()) {
      if (s.principal) continue;
      if (s.inFlight === 0) {
        if (!idle || s.lastActive < idle.lastActive) idle = s;
      } else {
        const since = s.writer.busySince;
        if (
          since > 0 && now - since > STALLED_MS && (!stalled || since < stalled.writer.busySince)
        ) {
          stalled = s;
        }
      }
    }
    const victim = idle ?? stalled;
    if (!victim) return false;
    this.#closeConn(victim);
    return true;
  }

  /** Runs #relieve every RELIEF_EVERY_MS while anything waits for the server's budgets. */
  #startRelief(): void {
    if (this.#relief !== undefined) return;
    const tick = () => {
      this.#relief = undefined;
      const waiting = this.#responseBudget.waiting + this.#requestBudget.waiting;
      if (waiting === 0 || this.#draining) return;
      this.#relieve();
      this.#relief = setTimeout(tick, RELIEF_EVERY_MS);
      Deno.unrefTimer(this.#relief);
    };
    this.#relieve();
    this.#relief = setTimeout(tick, RELIEF_EVERY_MS);
    Deno.unrefTimer(this.#relief);
  }

  /**
   * Makes room in the response budget while responses wait for it: closes
   * the connections that hold some of it, have more requests waiting behind
   * it, and whose peer has taken nothing for RELIEF_STALL_MS: peers that
   * pipeline requests and do not read the answers (what they held is given
   * back as their writes fail). While request bodies wait for theirs, it
   * closes the connections that hold some of it for a body that has been
   * arriving for longer than BODY_STALL_MS: senders too slow to share it.
   */
  #relieve(): void {
    const now = performance.now();
    const responses = this.#responseBudget.waiting > 0;
    const requests = this.#requestBudget.waiting > 0;
    for (const s of [...this.#conns.values()]) {
      if (s.principal) continue;
      const since = s.writer.busySince;
      if (
        responses && s.serverBytes > 0 && s.budget.waiting > 0 && since > 0 &&
        now - since > RELIEF_STALL_MS
      ) {
        this.#closeConn(s);
      } else if (requests && s.bodyBytes > 0 && now - s.bodySince > BODY_STALL_MS) {
        this.#closeConn(s);
      }
    }
  }

  #refuse(conn: Duplex): void {
    // `finished` tells a watcher (the supervisor) that the busy connections are answered.
    const err = new StrataError(
      "RESOURCE_EXHAUSTED",
      `${this.service} has ${this.#conns.size} busy connections, its limit; retry shortly`,
      { reason: "connection_limit", finished: this.#finished },
    );
    conn.write(encodeFrame(errorResponse("", err))).catch(() => {}).finally(() => {
      try {
        conn.close();
      } catch { /* already closed */ }
    });
  }

  #closeConn(s: ConnState<C>): void {
    if (s.closed) return;
    s.closed = true;
    this.#conns.delete(s.id);
    s.aborted.abort(CLOSED);
    try {
      s.conn.close();
    } catch { /* already closed */ }
    // Its queued answers fail now, not as the write in progress settles.
    s.writer.close();
    s.wake?.();
  }

  /**
   * Closes the connections idle for idleTimeoutMs, and those whose write has
   * been stuck for writeTimeoutMs: this one timer watches them all (each
   * connection's writer had a timer of its own for its writes).
   */
  #sweepConns(): void {
    const limit = Date.now() - this.#limits.idleTimeoutMs;
    const stuck = performance.now() - this.#limits.writeTimeoutMs;
    for (const s of this.#conns.values()) {
      const since = s.writer.busySince;
      if (since > 0 && since < stuck) this.#closeConn(s);
      else if (s.inFlight === 0 && s.lastActive < limit && !s.principal) this.#closeConn(s);
    }
  }

  /**
   * Serves a private connection, one only a trusted party holds (the
   * supervisor's pipe to the registry), through the same request path as the
   * socket's (frame, envelope, method table, params schema, handler, limits),
   * except that its protected requests run as `principal` instead of through
   * the chain: holding the connection is the credential. Resolves when it
   * ends.
   */
  servePrivate(conn: Duplex, options: PrivateConnOptions<C>): Promise<void> {
    return this.#handle(conn, { as: options.principal });
  }

  async #handle(conn: Duplex, principal?: { as: C }): Promise<void> {
    // Its write timeout is watched by #sweepConns.
    const writer = new FrameWriter(conn);
    const s: ConnState<C> = {
      id: this.#nextId++,
      conn,
      principal,
      writer,
      inFlight: 0,
      refusals: 0,
      successes: 0,
      cutOff: false,
      lastActive: Date.now(),
      closed: false,
      aborted: new AbortController(),
      budget: new ByteBudget(this.#limits.maxPendingBytes),
      serverBytes: 0,
      quickBytes: 0,
      bodyBytes: 0,
      bodySince: 0,
    };
    this.#conns.set(s.id, s);
    const reader = new FrameReader(conn, { maxFrame: this.#limits.maxFrame });
    // The budget a large body takes as it arrives is held by the request being read.
    let held: Held = { request: 0, response: 0, conn: 0 };
    const reading: NextOptions = {
      reserve: async (n) => {
        if (s.bodyBytes === 0) s.bodySince = performance.now();
        let taken = this.#requestBudget.take(n, s.aborted.signal);
        if (typeof taken !== "number") {
          this.#startRelief();
          taken = await taken;
        }
        held.request += taken;
        s.bodyBytes += taken;
      },
    };
    try {
      while (!s.closed && !s.cutOff) {
        // Backpressure: stop reading while too much is in flight or unsent, or
        // while a request already waits for room for its response (a peer that
        // does not read gets no more of its requests parsed and checked).
        while (
          !s.closed &&
          (s.inFlight >= this.#limits.maxInFlight ||
            writer.pendingBytes > this.#limits.maxPendingBytes ||
            s.budget.waiting > 0)
        ) {
          await new Promise<void>((r) => (s.wake = r));
        }
        let body: Uint8Array | null;
        held = { request: 0, response: 0, conn: 0 };
        try {
          body = await reader.next(reading);
          s.bodyBytes = 0;
        } catch (err) {
          s.bodyBytes = 0;
          this.#requestBudget.give(held.request);
          if (err instanceof FrameTooLargeError) {
            // Refuse without reading the body, then hang up: the stream is
            // no longer in step.
            const e = new StrataError(
              "INVALID_ARGUMENT",
              `frame: announced ${err.size} bytes; the limit is ${this.#limits.maxFrame}`,
            );
            await writer.write(encodeFrame(errorResponse("", e))).catch(() => {});
          }
          break;
        }
        if (body === null || s.cutOff) break;
        s.lastActive = Date.now();
        this.#dispatch(body, s, writer, held);
      }
      // The peer may half-close after its last request: answer what is in
      // flight (each request's end wakes this loop).
      while (s.inFlight > 0) await new Promise<void>((r) => (s.wake = r));
    } finally {
      this.#closeConn(s);
    }
  }

  /**
   * Takes one request through to its answer. When every step is synchronous
   * (the token's check, the handler) the answer is made and handed to the
   * writer within this call, so it goes out before the next request of the
   * same turn is worked on.
   */
  #dispatch(body: Uint8Array, s: ConnState<C>, writer: FrameWriter, held: Held): void {
    s.inFlight++;
    this.#inFlight++;
    let req: Request | undefined;
    let parseError: StrataError | undefined;
    try {
      // Parse now: `body` is only valid until the reader's next call.
      req = parseRequest(body);
    } catch (err) {
      parseError = toStrataError(err);
    }
    // Room for the response in its connection first, before any work is done
    // on the request: while the peer is not reading, its requests wait here
    // (and the read loop pauses), so it stalls only itself.
    const costed = req ? this.#costOf(req) : undefined;
    const room = s.budget.take(costed?.cost ?? 0, s.aborted.signal);
    const finish = () => {
      this.#finished++;
      this.#requestBudget.give(held.request);
      this.#countResponse(s, held, -held.response);
      s.budget.give(held.conn);
      s.inFlight--;
      this.#inFlight--;
      s.lastActive = Date.now();
      const wake = s.wake;
      s.wake = undefined;
      wake?.();
    };
    const failed = () => {
      this.#closeConn(s);
      finish();
    };
    let sent: Promise<void>;
    if (typeof room === "number") {
      held.conn = room;
      const answer = this.#answer(req, parseError, s, held, costed?.params);
      if (answer instanceof Promise) sent = answer.then((a) => this.#send(a, s, writer, held));
      else {
        try {
          sent = this.#send(answer, s, writer, held);
        } catch (err) {
          sent = Promise.reject(err);
        }
      }
    } else {
      sent = room.then((n) => {
        held.conn = n;
        if (s.closed) throw CLOSED;
        return this.#answer(req, parseError, s, held, costed?.params);
      }).then((a) => this.#send(a, s, writer, held));
    }
    sent.then(finish, failed);
  }

  /** Counts an answer in the budgets and the refusal tally, and queues its frame. */
  #send(answer: Answer, s: ConnState<C>, writer: FrameWriter, held: Held): Promise<void> {
    const { frame, refusal, holds = frame.length } = answer;
    // Cut off: the requests it had in flight get no answer (as the connection closes).
    if (s.cutOff) return Promise.resolve();
    // The response counts with the memory it holds until it is written.
    s.budget.charge(holds - held.conn);
    held.conn = holds;
    const growth = holds - held.response;
    if (
      held.quick &&
      (s.quickBytes + growth > QUICK_MAX || this.#quickBudget.free < growth)
    ) {
      // Larger than its cost said (a long listing): it counts in the budget
      // itself, so the reserve stays within its 1 MiB and 64 KiB a connection.
      this.#countResponse(s, held, -held.response);
      held.quick = false;
      held.response = 0;
    }
    this.#countResponse(s, held, holds - held.response);
    held.response = holds;
    // A client that mostly sends garbage or bad credentials is cut off
    // instead of being answered for ever.
    if (refusal === "INVALID_ARGUMENT" || refusal === "UNAUTHENTICATED") s.refusals++;
    else if (refusal === undefined) s.successes++;
    // Only a frame that holds more than its length is in a pooled buffer.
    const written = holds > frame.length
      ? writer.write(frame, () => this.#pool.give(frame))
      : writer.write(frame);
    if (s.refusals >= MAX_REFUSALS && s.refusals > s.successes && !s.principal) {
      s.cutOff = true;
      return written.finally(() => this.#closeConn(s));
    }
    return written;
  }

  /**
   * Counts `n` more response bytes (or `-n` given back) of one request in the
   * pool it took them from (the server's budget, or the small answers'
   * reserve when `held.quick`) and in its connection's tally of that pool.
   */
  #countResponse(s: ConnState<C>, held: Held, n: number): void {
    const pool = held.quick ? this.#quickBudget : this.#responseBudget;
    // Giving back (also nothing) lets those waiting in line go, as ByteBudget.give does.
    if (n <= 0) pool.give(-n);
    else pool.charge(n);
    if (held.quick) s.quickBytes += n;
    else s.serverBytes += n;
  }

  /**
   * What a request's response may cost (undefined when its method or params
   * are unknown or bad), with the params it validated, so #run need not
   * validate them again.
   */
  #costOf(req: Request): { cost: number; params: unknown } | undefined {
    const method = this.#methods.get(req.method);
    if (!method?.cost) return undefined;
    try {
      const params = validateParams(method.params, req.params);
      return { cost: method.cost(params), params };
    } catch {
      return undefined;
    }
  }

  /**
   * The response frame of one request, the error name when it is a refusal,
   * and the bytes it holds (when more than its length): made at once when the
   * request's steps are synchronous, else a promise of it.
   */
  #answer(
    req: Request | undefined,
    parseError: StrataError | undefined,
    s: ConnState<C>,
    held: Held,
    validated?: unknown,
  ): Answer | Promise<Answer> {
    if (!req) {
      const reqId = parseError instanceof EnvelopeError ? parseError.reqId : "";
      return {
        frame: encodeFrame(errorResponse(reqId, parseError!)),
        refusal: parseError!.errorName,
      };
    }
    let result: unknown;
    try {
      result = this.#run(req, s, held, validated);
    } catch (err) {
      return this.#failure(req, err);
    }
    if (result instanceof Promise) {
      return result.then((r) => this.#success(req, r), (err) => this.#failure(req, err));
    }
    return this.#success(req, result);
  }

  /** The answer of a request whose handler returned `result`. */
  #success(req: Request, result: unknown): Answer {
    try {
      if (result instanceof RawJson) {
        const frame = encodeJsonFrame(
          [
            `{"v":1,"req_id":${JSON.stringify(req.req_id)},"ok":true,"result":`,
            ...result.parts,
            "}",
          ],
          { pool: this.#pool },
        );
        // The pooled buffer is 1 MiB whatever the frame's size, and a frame
        // that waits for a slow peer holds all of it. A frame of at least half
        // of it is written from it as it is, and counted at the buffer's size;
        // a smaller one is copied out, so it holds (and counts) only its own bytes.
        const holds = frame.buffer.byteLength;
        if (frame.length * 2 >= holds) return { frame, holds };
        const exact = frame.slice();
        this.#pool.give(frame);
        return { frame: exact };
      }
      return { frame: encodeFrame(okResponse(req.req_id, result ?? {})) };
    } catch (err) {
      return this.#failure(req, err);
    }
  }

  /** The answer of a request that failed with `err`. */
  #failure(req: Request, err: unknown): Answer {
    let e = toStrataError(err);
    if (err instanceof FrameTooLargeError) {
      e = new StrataError(
        "RESOURCE_EXHAUSTED",
        "result: larger than a 1 MiB frame; ask for less",
      );
    } else if (e.errorName === "INTERNAL") {
      console.error(`${this.service}: ${req.method} failed:`, err);
    }
    return { frame: encodeFrame(errorResponse(req.req_id, e)), refusal: e.errorName };
  }

  /**
   * Authorizes, validates (unless `validated` holds the params already) and
   * runs the handler: synchronously as far as the chain and the handler are.
   */
  #run(req: Request, s: ConnState<C>, held: Held, validated?: unknown): unknown {
    const ready = this.#chain?.before?.();
    if (ready instanceof Promise) return ready.then(() => this.#runReady(req, s, held, validated));
    return this.#runReady(req, s, held, validated);
  }

  #runReady(req: Request, s: ConnState<C>, held: Held, validated?: unknown): unknown {
    const method = this.#methods.get(req.method);
    if (!method) {
      const [svc] = req.method.split(".");
      throw new StrataError(
        "INVALID_ARGUMENT",
        svc === this.service
          ? `method: unknown method ${req.method}; ${this.service} offers ${
            [...this.#methods.keys()].join(", ")
          }`
          : `method: ${req.method} is not served here (this is ${this.service}.sock)`,
      );
    }
    if (method.access === "public") return this.#runAs(method, undefined, req, s, held, validated);
    if (s.principal) return this.#runAs(method, s.principal.as, req, s, held, validated);
    let cap: C | Promise<C>;
    try {
      cap = this.#chain!.authorize(req.auth?.token, method.access.right);
    } catch (err) {
      if (err instanceof StrataError) this.#chain!.refused?.(req.method, err);
      throw err;
    }
    if (!(cap instanceof Promise)) return this.#runAs(method, cap, req, s, held, validated);
    return cap.then(
      (c) => this.#runAs(method, c, req, s, held, validated),
      (err) => {
        if (err instanceof StrataError) this.#chain!.refused?.(req.method, err);
        throw err;
      },
    );
  }

  /** Validates the params and runs the handler as `cap`. */
  #runAs(
    method: Method<C>,
    cap: C | undefined,
    req: Request,
    s: ConnState<C>,
    held: Held,
    validated?: unknown,
  ): unknown {
    const params = validated ?? validateParams(method.params, req.params);
    if (method.heavy || method.cost) return this.#runMetered(method, cap, params, req, s, held);
    return this.#call(method, cap, params, req, s);
  }

  /**
   * Runs a handler whose work takes turns or whose response is reserved
   * before it runs: heavy work first waits for its turn, holding none of the
   * server's budget meanwhile; then room for the response is taken from the
   * server's budget (its connection's was taken in #dispatch; both are given
   * back once it is written). Heavy work that waited in that budget's line
   * takes a turn again, holding its bytes. A method without a cost makes
   * only small answers: they count once made.
   */
  async #runMetered(
    method: Method<C>,
    cap: C | undefined,
    params: unknown,
    req: Request,
    s: ConnState<C>,
    held: Held,
  ): Promise<unknown> {
    let waited = false;
    const heavy = method.heavy?.(params) ?? false;
    if (heavy) {
      const turn = this.#turns.take();
      if (turn) {
        await turn;
        waited = true;
        if (s.closed) throw CLOSED;
      }
    }
    const cost = method.cost?.(params) ?? 0;
    if (cost > 0) {
      let taken = this.#responseBudget.tryTake(cost);
      if (taken === undefined && cost <= QUICK_MAX && s.quickBytes + cost <= QUICK_MAX) {
        // The budget would make it wait: a small response takes from the reserve instead.
        taken = this.#quickBudget.tryTake(cost);
        if (taken !== undefined) {
          held.quick = true;
          held.response = taken;
          s.quickBytes += taken;
        }
      }
      if (!held.quick) {
        const inLine = taken === undefined;
        if (taken === undefined) {
          this.#startRelief();
          taken = await this.#responseBudget.take(cost, s.aborted.signal);
          waited = true;
        }
        held.response = taken;
        s.serverBytes += taken;
        // Bytes given back let many waiters go at once (a relief that closed
        // stalled peers frees what each held): heavy ones take turns again.
        if (inLine && heavy) await this.#turns.take();
      }
      if (s.closed) throw CLOSED;
    }
    // What was decided before the wait may not hold after it (a revocation
    // answered meanwhile): the chain runs again.
    if (waited) cap = await this.#judgeAgain(method, req, s, cap);
    return await this.#call(method, cap, params, req, s);
  }

  /** Runs the chain's `before` and authorizes again, for a request that waited its turn. */
  async #judgeAgain(method: Method<C>, req: Request, s: ConnState<C>, cap: C | undefined) {
    await this.#chain?.before?.();
    if (method.access === "public" || s.principal || !this.#chain) return cap;
    try {
      return await this.#chain.authorize(req.auth?.token, method.access.right);
    } catch (err) {
      if (err instanceof StrataError) this.#chain.refused?.(req.method, err);
      throw err;
    }
  }

  /**
   * Calls the handler. One that returns a promise is given the request's
   * time limit (watched by one timer for all of them, see #watchDeadlines);
   * one that answers at once needs none.
   */
  #call(method: Method<C>, cap: C | undefined, params: unknown, req: Request, s: ConnState<C>) {
    const out = method.handler(params, { cap, reqId: req.req_id, connId: s.id });
    if (!(out instanceof Promise)) return out;
    return new Promise<unknown>((resolve, reject) => {
      const deadline: Deadline = {
        at: performance.now() + this.#limits.requestTimeoutMs,
        expire: () =>
          reject(
            new StrataError(
              "UNAVAILABLE",
              `${req.method} took longer than ${this.#limits.requestTimeoutMs} ms`,
            ),
          ),
      };
      this.#deadlines.add(deadline);
      this.#watchDeadlines();
      out.then((v) => {
        this.#deadlines.delete(deadline);
        resolve(v);
      }, (err) => {
        this.#deadlines.delete(deadline);
        reject(err);
      });
    });
  }

  /**
   * Fails the handlers past their time limit. One timer for all of them,
   * armed for the oldest (every request has the same limit, so the set is in
   * deadline order), instead of a timer and a race per request.
   */
  #watchDeadlines(): void {
    if (this.#deadlineWatch !== undefined) return;
    const first = this.#deadlines.values().next().value;
    if (first === undefined) return;
    this.#deadlineWatch = setTimeout(() => {
      this.#deadlineWatch = undefined;
      const now = performance.now();
      for (const d of this.#deadlines) {
        if (d.at > now) break;
        this.#deadlines.delete(d);
        d.expire();
      }
      this.#watchDeadlines();
    }, Math.max(0, first.at - performance.now()));
    // The pending handlers' own work, and the listener, keep the process alive.
    Deno.unrefTimer(this.#deadlineWatch);
  }

  /**
   * Stops accepting connections and lets the open ones finish: requests
   * already sent (in flight, or pipelined behind them) are answered, and each
   * connection is closed once it has been quiet for a moment. Resolves when
   * every connection is closed, or closes the rest after `timeoutMs`.
   */
  async drain(timeoutMs: number): Promise<void> {
    if (!this.#draining) {
      this.#draining = true;
      for (const l of this.#listening) {
        try {
          l.listener.close();
        } catch { /* already closed */ }
      }
    }
    const deadline = Date.now() + timeoutMs;
    while (this.#conns.size > 0 && Date.now() < deadline) {
      const quietSince = Date.now() - DRAIN_QUIET_MS;
      for (const c of [...this.#conns.values()]) {
        if (c.inFlight === 0 && c.writer.pendingBytes === 0 && c.lastActive <= quietSince) {
          this.#closeConn(c);
        }
      }
      if (this.#conns.size > 0) await new Promise((r) => setTimeout(r, DRAIN_QUIET_MS / 2));
    }
    this.close();
    await this.#accepting;
  }

  /** Closes the listeners and every connection at once, and removes the socket. */
  close(): void {
    this.#draining = true;
    clearInterval(this.#sweep);
    clearTimeout(this.#relief);
    clearTimeout(this.#deadlineWatch);
    this.#deadlineWatch = undefined;
    for (const l of this.#listening) l.close();
    for (const s of [...this.#conns.values()]) this.#closeConn(s);
  }
}
