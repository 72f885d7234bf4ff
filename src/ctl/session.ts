/**
 * One strata-ctl run's connection to the node: which token it presents, one
 * persistent connection per service it talks to, and every failure turned
 * into a CtlError that says what to try (a refusal exits 1; an unreachable
 * service exits 2 with the advice of connect.ts).
 * @module
 */

import { Client } from "../server/client.ts";
import { StrataError } from "../wire/errors.ts";
import type { Layout } from "../runtime/config.ts";
import {
  type AdviceOptions,
  chooseToken,
  connectTo,
  envToken,
  unreachableAdvice,
} from "./connect.ts";
import { CtlError, EXIT, refusal, usage } from "./errors.ts";

/** Options for a {@link Session}. */
export interface SessionOptions {
  /** The token given with -token, if any. */
  token?: string;
  /** How long to wait for each answer, in ms. */
  timeoutMs: number;
  /** Where the launcher looked for the supervisor, for the advice when it is not running. */
  lookedIn?: readonly string[];
  /** Cluster mode: call the services of this node (`--node NAME`) over tcp://. */
  node?: string;
}

/** Per-call options. */
export interface CallOptions {
  /** Send the session's token (default true; public methods do not need it). */
  auth?: boolean;
  /** Wait this long for this answer instead of the session's timeout. */
  timeoutMs?: number;
}

/** Where the token a session presents comes from. */
export type TokenSource = "-token" | "STRATA_TOKEN" | "operator token" | "none";

/** The node as one strata-ctl run sees it. */
export class Session {
  readonly layout: Layout;
  readonly timeoutMs: number;
  #explicit?: string;
  #lookedIn?: readonly string[];
  /** The node whose services are called (`--node`); this node's when absent. */
  readonly node?: string;
  #clients = new Map<string, Client>();

  constructor(layout: Layout, options: SessionOptions) {
    this.layout = layout;
    this.timeoutMs = options.timeoutMs;
    this.#explicit = options.token;
    this.#lookedIn = options.lookedIn;
    this.node = options.node;
  }

  /** The token requests carry: -token, else STRATA_TOKEN, else the operator token. */
  token(): string | undefined {
    return chooseToken(this.layout, this.#explicit);
  }

  /** Where {@link token} comes from, for `token inspect`. */
  tokenSource(): TokenSource {
    if (this.#explicit !== undefined) return "-token";
    if (envToken() !== undefined) return "STRATA_TOKEN";
    return this.token() !== undefined ? "operator token" : "none";
  }

  /** A persistent connection to `service`, opened on first use. */
  async client(service: string): Promise<Client> {
    const open = this.#clients.get(service);
    if (open && !open.closed) return open;
    if (service === "supervisor" && this.node !== undefined && this.node !== this.layout.nodeId) {
      // It would answer for this node, not the one asked for.
      throw usage(
        `--node ${this.node}: the supervisor's commands (status, svc, logs) answer for this ` +
          "node only (the supervisor has no tcp:// endpoint)",
        "run them on that node, or see every node with `strata-ctl cluster status` and " +
          "`strata-ctl svc list --all-nodes`",
      );
    }
    try {
      // The supervisor is always this node's: --node picks where services run.
      const node = service === "supervisor" || service === "registry" ? undefined : this.node;
      const c = await connectTo(this.layout, service, { timeoutMs: this.timeoutMs, node });
      this.#clients.set(service, c);
      return c;
    } catch (err) {
      throw unreachable(service, err, { lookedIn: this.#lookedIn });
    }
  }

  /** Calls `method` and returns its result; a refusal or failure throws CtlError. */
  async call<T = Record<string, unknown>>(
    method: string,
    params?: Record<string, unknown>,
    options: CallOptions = {},
  ): Promise<T> {
    const service = method.split(".")[0];
    const client = await this.client(service);
    let res;
    try {
      res = await client.request(method, params, {
        token: options.auth === false ? undefined : this.token(),
        timeoutMs: options.timeoutMs ?? this.timeoutMs,
      });
    } catch (err) {
      throw unreachable(service, err, { method, lookedIn: this.#lookedIn });
    }
    if (!res.ok) throw refusal(res.error, method);
    return res.result as T;
  }

  /** Closes every connection. */
  async close(): Promise<void> {
    for (const c of this.#clients.values()) await c.close();
    this.#clients.clear();
  }
}

/** A connection failure as a CtlError (exit 2) with advice; other errors pass through. */
function unreachable(
  service: string,
  err: unknown,
  options: AdviceOptions & { method?: string },
): unknown {
  if (err instanceof StrataError && err.errorName === "UNAVAILABLE") {
    return new CtlError(EXIT.USAGE, {
      code: err.code,
      name: "UNAVAILABLE",
      ...unreachableAdvice(service, err, { lookedIn: options.lookedIn }),
      ...(err.details ? { details: err.details } : {}),
    });
  }
  if (err instanceof StrataError) return refusal(err.toBody(), options.method);
  return err;
}
