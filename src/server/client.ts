/**
 * A client for one Strata endpoint (a Unix socket, or tcp:// with TLS; see
 * server/transport.ts): one persistent connection carrying any number of
 * requests at once (matched to responses by req_id), each with a timeout.
 * @module
 */

import { parseResponse, type Response } from "../wire/envelope.ts";
import { type ErrorName, errorName, StrataError } from "../wire/errors.ts";
import { encodeFrame, FrameReader, FrameWriter } from "../wire/frame.ts";
import { dial, type Stream, unreachable, unreachableDetails } from "./transport.ts";

/** Per-call options. */
export interface CallOptions {
  /** Capability token sent in `auth`. */
  token?: string;
  /** How long to wait for the response; defaults to the client's timeout. */
  timeoutMs?: number;
}

/** Options for {@link Client.connect}. */
export interface ClientOptions {
  /** Default time to wait for a response, in ms (10 s unless given). */
  timeoutMs?: number;
  /** How long to wait for the connection itself, in ms (2 s unless given). */
  connectTimeoutMs?: number;
  /** tcp:// only: the CA certificate (PEM file) the server's certificate must chain to. */
  caFile?: string;
  /**
   * tcp:// only, mutual TLS (cluster mode): the certificate (PEM file) this
   * client presents, signed by the cluster CA.
   */
  certFile?: string;
  /** tcp:// only: the private key (PEM file) of `certFile`. */
  keyFile?: string;
}

interface Pending {
  resolve(r: Response): void;
  reject(e: unknown): void;
  /** When it times out (performance.now()), and what it then says. */
  deadline: number;
  method: string;
  timeoutMs: number;
}

const utf8 = new TextDecoder();

/** How long a failed write waits for the read loop to say why (see Client.request). */
const WRITE_FAILURE_GRACE_MS = 100;

/** An error response from a service, as a throwable value. */
export class RemoteError extends StrataError {
  /** Rebuilds the error from a response's `error` object (an unknown code becomes INTERNAL). */
  constructor(body: { code: number; name?: string; message: string; details?: unknown }) {
    const name = (errorName(body.code) ?? "INTERNAL") as ErrorName;
    super(name, body.message, body.details as Record<string, unknown> | undefined);
    this.name = "RemoteError";
  }
}

/** A persistent connection to one service endpoint. */
export class Client {
  /** The socket path or endpoint URL it was given. */
  readonly path: string;
  #conn: Stream;
  #writer: FrameWriter;
  #pending = new Map<string, Pending>();
  #prefix = crypto.randomUUID().slice(0, 8);
  #seq = 0;
  #timeoutMs: number;
  #closed = false;
  #reading: Promise<void>;
  /**
   * One timer per client watches every pending request's deadline (armed
   * for the soonest while any is pending), not a timer per request: a
   * timer for each of thousands of requests a second was most of the
   * client's garbage.
   */
  #watch?: ReturnType<typeof setTimeout>;
  /** When #watch fires (performance.now()). */
  #watchAt = Infinity;

  private constructor(path: string, conn: Stream, options: ClientOptions) {
    this.path = path;
    this.#conn = conn;
    this.#writer = new FrameWriter(conn);
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#reading = this.#readLoop();
  }

  /**
   * Connects to a socket path or an endpoint URL (unix:// or tcp:// with
   * TLS); throws UNAVAILABLE when nothing answers there or TLS fails.
   */
  static async connect(path: string, options: ClientOptions = {}): Promise<Client> {
    const conn = await dial(path, {
      caFile: options.caFile,
      certFile: options.certFile,
      keyFile: options.keyFile,
      timeoutMs: options.connectTimeoutMs,
    });
    return new Client(path, conn, options);
  }

  /** Whether the connection has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  async #readLoop(): Promise<void> {
    const reader = new FrameReader(this.#conn);
    let failure: unknown = new StrataError(
      "UNAVAILABLE",
      `${this.path} closed the connection`,
      unreachableDetails(this.path, "connection_lost"),
    );
    try {
      while (true) {
        const body = await reader.next();
        if (body === null) break;
        const res = parseResponse(JSON.parse(utf8.decode(body)));
        const p = this.#pending.get(res.req_id);
        if (p) {
          this.#pending.delete(res.req_id);
          p.resolve(res);
        } else if (res.req_id === "" && !res.ok) {
          // A connection-level refusal (over the limit, oversize frame).
          failure = new RemoteError(res.error);
          break;
        }
      }
    } catch (err) {
      if (!this.#closed) {
        failure = err instanceof StrataError
          ? err
          : unreachable(this.path, err, { connected: true });
      }
    }
    this.#shutdown(failure);
  }

  #shutdown(failure: unknown): void {
    this.#closed = true;
    clearTimeout(this.#watch);
    this.#watch = undefined;
    this.#watchAt = Infinity;
    for (const p of this.#pending.values()) p.reject(failure);
    this.#pending.clear();
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  /** Sends a request and resolves to the response envelope (ok or not). */
  request(
    method: string,
    params?: Record<string, unknown>,
    options: CallOptions = {},
  ): Promise<Response> {
    if (this.#closed) {
      return Promise.reject(
        new StrataError(
          "UNAVAILABLE",
          `${this.path}: connection closed`,
          unreachableDetails(this.path, "connection_lost"),
        ),
      );
    }
    const reqId = `${this.#prefix}-${++this.#seq}`;
    const frame = encodeFrame({
      v: 1,
      req_id: reqId,
      method,
      ...(options.token ? { auth: { token: options.token } } : {}),
      ...(params ? { params } : {}),
    });
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    return new Promise<Response>((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      this.#pending.set(reqId, { resolve, reject, deadline, method, timeoutMs });
      if (deadline < this.#watchAt) this.#arm(deadline);
      this.#writer.write(frame).catch((err) => {
        // A server that refuses a connection (at its connection limit) writes
        // why and closes: the write can fail on the close before the read loop
        // has read the reason, which then fails the request itself. If the
        // reading has not ended soon after, the write's error ends the
        // connection (every later write would fail too).
        const grace = setTimeout(
          () => this.#shutdown(unreachable(this.path, err, { connected: true })),
          WRITE_FAILURE_GRACE_MS,
        );
        Deno.unrefTimer(grace);
        const done = () => clearTimeout(grace);
        this.#reading.then(done, done);
      });
    });
  }

  /** (Re)arms the watch for `at` (performance.now()). */
  #arm(at: number): void {
    clearTimeout(this.#watch);
    this.#watchAt = at;
    this.#watch = setTimeout(() => this.#expire(), Math.max(0, at - performance.now()));
    // A pending request keeps the process alive through its connection's read.
    Deno.unrefTimer(this.#watch);
  }

  /** Fails the requests past their deadline; re-arms for the soonest of the rest. */
  #expire(): void {
    this.#watch = undefined;
    this.#watchAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [reqId, p] of this.#pending) {
      if (p.deadline <= now) {
        this.#pending.delete(reqId);
        p.reject(
          new StrataError(
            "UNAVAILABLE",
            `${p.method}: no answer from ${this.path} in ${p.timeoutMs} ms`,
            unreachableDetails(this.path, "no_answer"),
          ),
        );
      } else if (p.deadline < next) next = p.deadline;
    }
    if (next < Infinity) this.#arm(next);
  }

  /** Sends a request and returns its result; a failed response throws RemoteError. */
  async call<T = Record<string, unknown>>(
    method: string,
    params?: Record<string, unknown>,
    options: CallOptions = {},
  ): Promise<T> {
    const res = await this.request(method, params, options);
    if (!res.ok) throw new RemoteError(res.error);
    return res.result as T;
  }

  /** Closes the connection; pending requests fail with UNAVAILABLE. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch { /* already closed */ }
    }
    await this.#reading;
  }
}

/** Connects, makes one call, and closes. */
export async function callOnce<T = Record<string, unknown>>(
  path: string,
  method: string,
  params?: Record<string, unknown>,
  options: CallOptions & ClientOptions = {},
): Promise<T> {
  const client = await Client.connect(path, options);
  try {
    return await client.call<T>(method, params, options);
  } finally {
    await client.close();
  }
}
