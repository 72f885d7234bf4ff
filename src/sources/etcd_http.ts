/**
 * An etcd v3 client on Deno's fetch, through the JSON gateway every etcd
 * member serves on its client URLs (`/v3/kv/range`, `/v3/watch`, …; etcd
 * 3.4 and later). The services of a cluster node use it instead of the etcd3
 * package: etcd3 brings grpc-js, protobufjs and the parse of etcd's proto
 * files, which held about 19 MB of memory in every process that loaded it
 * (an empty Deno process holds 11), where fetch is part of the runtime
 * (docs/cluster.md, "Memory").
 *
 * Calls go to one member at a time; a member that fails to answer (refused,
 * reset, no answer within the attempt's time, etcd's "unavailable" while it
 * elects a leader) is skipped for a while, 100 ms doubling to 1 s, and the
 * call tries the next; once every member failed it, the call fails if every
 * one refused the connection, else (a member answered it cannot serve the
 * call yet, or kept it past the attempt's time, as while a leader is
 * elected) it tries them all again, until the call's deadline. Watches resume after a broken stream from the revision after
 * the last one they delivered, on whichever member answers.
 * @module
 */

/** One key's value as etcd holds it. */
export interface EtcdKeyValue {
  key: string;
  value: string;
  /** The revision of the key's last change. */
  modRevision: number;
  /** The lease the key is on ("0": none). */
  lease: string;
}

/** A range read: the store's revision when it was read, and the keys. */
export interface EtcdRangeResult {
  revision: number;
  kvs: EtcdKeyValue[];
}

/** TLS to etcd (https:// endpoints). */
export interface EtcdHttpTls {
  /** PEM of the CA etcd's certificate is checked against. */
  ca: string;
  /** PEM of the client certificate and its key, presented when etcd asks for one. */
  cert?: string;
  key?: string;
  /**
   * The DNS name etcd's certificate is checked against, when the endpoints
   * are IP addresses (the connection goes to the endpoint's address).
   */
  serverName?: string;
}

/** Options for {@link EtcdHttp}. */
export interface EtcdHttpOptions {
  /** The members' client URLs, `http://host:port` or `https://host:port`. */
  endpoints: string[];
  tls?: EtcdHttpTls;
  /**
   * The most one member has to answer a call before the next is tried (ms;
   * {@link ATTEMPT_MS} unless given). A member that stopped answering keeps
   * its connections open: only this tells it from a slow one.
   */
  attemptMs?: number;
}

/** Per call's options. */
export interface EtcdCallOptions {
  /** When the call fails if etcd has not answered ({@link CALL_MS} from now unless given). */
  deadline?: Date;
}

/** How long one member has to answer one call before the next is tried (ms). */
export const ATTEMPT_MS = 3000;

/** The deadline of a call given none (ms). */
export const CALL_MS = 10_000;

/** The first time a member that failed is skipped (ms); doubles up to {@link SKIP_MAX_MS}. */
const SKIP_FIRST_MS = 100;
const SKIP_MAX_MS = 1000;

/** The pause before a call tries the members again once each has failed it (ms). */
const RETRY_PAUSE_MS = 100;

/** The longest pause before a broken watch stream is set up again (ms). */
const WATCH_BACKOFF_MAX_MS = 2000;

/** gRPC codes etcd answers that another member (or a later try) may not: the call is tried again. */
const RETRIED_CODES = new Set([4, /* DEADLINE_EXCEEDED */ 14 /* UNAVAILABLE */]);

/** How a call that had no answer by its deadline fails. */
export class EtcdDeadlineError extends Error {
  constructor(ms: number, last?: string) {
    super(`etcd did not answer within the call's deadline (${ms} ms)${last ? `: ${last}` : ""}`);
    this.name = "EtcdDeadlineError";
  }
}

/**
 * What an https:// member's "connection closed" (or "connection error: …")
 * means when it persists: under
 * `--client-cert-auth` etcd's JSON gateway connects to etcd's own gRPC
 * presenting etcd's server certificate, which is refused unless that
 * certificate is also valid for client authentication.
 */
const GATEWAY_TLS_HINT = "etcd's JSON gateway could not reach etcd itself: " +
  "with --client-cert-auth, etcd's server certificate must also allow client authentication " +
  "(extendedKeyUsage clientAuth), see docs/cluster.md";

/** An error etcd answered (not a member out of reach). */
export class EtcdError extends Error {
  /** The gRPC status code etcd gave. */
  code: number;
  constructor(message: string, code: number) {
    super(message);
    this.name = "EtcdError";
    this.code = code;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function b64(text: string): string {
  return encoder.encode(text).toBase64();
}

function unb64(text: string | undefined): string {
  return text ? decoder.decode(Uint8Array.fromBase64(text)) : "";
}

/** The range end that makes a range of every key starting with `prefix`. */
function prefixEnd(prefix: string): string {
  const bytes = encoder.encode(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] < 0xff) {
      const end = bytes.slice(0, i + 1);
      end[i]++;
      return end.toBase64();
    }
  }
  return b64("\0"); // every key
}

interface WireKeyValue {
  key?: string;
  value?: string;
  mod_revision?: string;
  lease?: string;
}

function keyValue(kv: WireKeyValue): EtcdKeyValue {
  return {
    key: unb64(kv.key),
    value: unb64(kv.value),
    modRevision: Number(kv.mod_revision ?? 0),
    lease: kv.lease ?? "0",
  };
}

/**
 * POSTs over node:https (https:// members). Its `ca` replaces the default
 * roots, so etcd's certificate must chain to --etcd-ca alone (fetch's
 * `caCerts` only adds to Deno's default roots: a certificate a public CA
 * issued for the endpoint would pass). It is checked under the endpoint's
 * host (an address against the certificate's IP names), or under
 * `tls.serverName` when given while the connection goes to the address.
 * node:https's own `signal` does not end a request on a kept-alive
 * connection in Deno 2.9.6: the attempt's signal destroys it here, request
 * and answer alike, with the signal's reason (a TimeoutError, as fetch gives).
 */
function httpsPost(
  url: URL,
  tls: EtcdHttpTls,
): { post: (path: string, body: string, signal: AbortSignal) => Promise<Response>; close(): void } {
  const port = Number(url.port || 443);
  // Connections kept for the next call, ended with the client.
  let agent: import("node:https").Agent | undefined;
  let closed = false;
  const post = async (path: string, body: string, signal: AbortSignal) => {
    const [{ Agent, request }, { Readable }] = await Promise.all([
      import("node:https"),
      import("node:stream"),
    ]);
    signal.throwIfAborted();
    if (closed) throw new Error("etcd: the client is closed");
    agent ??= new Agent({ keepAlive: true });
    return await new Promise<Response>((resolve, reject) => {
      const req = request({
        agent,
        host: url.hostname,
        port,
        path,
        method: "POST",
        ...(tls.serverName ? { servername: tls.serverName } : {}),
        ca: tls.ca,
        ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
      }, (res) => {
        signal.addEventListener("abort", () => res.destroy(signal.reason), { once: true });
        resolve(
          new Response(Readable.toWeb(res) as unknown as ReadableStream<Uint8Array>, {
            status: res.statusCode ?? 502,
          }),
        );
      });
      const abort = () => {
        req.destroy(signal.reason);
        reject(signal.reason);
      };
      signal.addEventListener("abort", abort, { once: true });
      req.on("error", (err) => reject(signal.aborted ? signal.reason : err));
      req.on("response", () => signal.removeEventListener("abort", abort));
      req.end(body);
    });
  };
  return {
    post,
    close: () => {
      closed = true;
      agent?.destroy();
    },
  };
}

/** One member: where it is, how a request reaches it, and when it failed. */
class Member {
  url: string;
  skipUntil = 0;
  #skipMs = 0;
  /** POSTs `body` to `path` on this member: fetch for http://, node:https for https://. */
  post: (path: string, body: string, signal: AbortSignal) => Promise<Response>;
  constructor(endpoint: string, tls?: EtcdHttpTls) {
    const url = new URL(endpoint);
    this.url = `${url.protocol}//${url.host}`;
    if (url.protocol === "https:") {
      const https = httpsPost(url, tls ?? { ca: "" });
      this.post = https.post;
      this.close = https.close;
    } else {
      this.post = (path, body, signal) =>
        fetch(`${this.url}${path}`, { method: "POST", body, signal });
    }
  }
  /** Ends the connections kept for later calls. */
  close(): void {}
  failed(): void {
    this.#skipMs = Math.min(SKIP_MAX_MS, this.#skipMs ? this.#skipMs * 2 : SKIP_FIRST_MS);
    this.skipUntil = performance.now() + this.#skipMs;
  }
  answered(): void {
    this.#skipMs = 0;
    this.skipUntil = 0;
  }
}

/** Handlers of a watch's events. */
export interface EtcdWatchEvents {
  put: (kv: EtcdKeyValue) => void;
  delete: (kv: EtcdKeyValue) => void;
  /** The stream is back after it broke (it resumed where it was). */
  connected: () => void;
  /** The stream broke; it is set up again, from where it was, as soon as a member answers. */
  disconnected: () => void;
  /** etcd cancelled the watch (its revision compacted, say): it is over; set up another. */
  error: (err: Error) => void;
}

/** A watch of a prefix (see {@link EtcdHttp.watch}). */
export class EtcdWatch {
  #handlers: { [E in keyof EtcdWatchEvents]: EtcdWatchEvents[E][] } = {
    put: [],
    delete: [],
    connected: [],
    disconnected: [],
    error: [],
  };
  #abort = new AbortController();
  #closed = false;

  /** @internal */
  constructor(readonly prefix: string) {}

  /** Adds a handler of `event`. */
  on<E extends keyof EtcdWatchEvents>(event: E, fn: EtcdWatchEvents[E]): this {
    this.#handlers[event].push(fn);
    return this;
  }

  /** @internal */
  emit<E extends keyof EtcdWatchEvents>(event: E, ...args: Parameters<EtcdWatchEvents[E]>): void {
    for (const fn of this.#handlers[event]) (fn as (...a: unknown[]) => void)(...args);
  }

  /** @internal */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** @internal */
  get closed(): boolean {
    return this.#closed;
  }

  /** Ends the watch. */
  cancel(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    return Promise.resolve();
  }
}

/** A client of an etcd cluster's JSON gateway (see the module's comment). */
export class EtcdHttp {
  #members: Member[];
  #next = 0;
  #attemptMs: number;
  #watches = new Set<EtcdWatch>();
  #closed = false;

  constructor(options: EtcdHttpOptions) {
    if (options.endpoints.length === 0) throw new Error("etcd: no endpoints");
    this.#members = options.endpoints.map((e) => new Member(e, options.tls));
    this.#attemptMs = options.attemptMs ?? ATTEMPT_MS;
  }

  /** The member to try next: the next in turn that is not being skipped, else the soonest back. */
  #pick(tried: Set<Member>): Member | undefined {
    const now = performance.now();
    let soonest: Member | undefined;
    for (let i = 0; i < this.#members.length; i++) {
      const m = this.#members[(this.#next + i) % this.#members.length];
      if (tried.has(m)) continue;
      if (m.skipUntil <= now) return m;
      if (!soonest || m.skipUntil < soonest.skipUntil) soonest = m;
    }
    return soonest;
  }

  /** One call of the gateway: `path`'s answer, from the first member that gives one. */
  async #call<T>(path: string, body: unknown, options: EtcdCallOptions = {}): Promise<T> {
    if (this.#closed) throw new Error("etcd: the client is closed");
    const deadline = options.deadline?.getTime() ?? Date.now() + CALL_MS;
    const ms = Math.max(0, deadline - Date.now());
    const tried = new Set<Member>();
    const text = JSON.stringify(body);
    let last = "no member was tried";
    /**
     * Whether a member this round may serve the call later: it answered that it cannot yet
     * (a leader being elected), or kept it past the attempt's time (a write waits for the
     * election). Refused connections say no member is there.
     */
    let later = false;
    for (;;) {
      let left = deadline - Date.now();
      if (left <= 0) throw new EtcdDeadlineError(ms, last);
      let member = this.#pick(tried);
      if (!member) {
        // Every member tried. None there (every connection refused): fail now, as a start-up
        // with etcd down must not wait. Else again after a pause, until the deadline.
        if (!later) throw new Error(`etcd: no member answered (${last})`);
        later = false;
        await new Promise((r) => setTimeout(r, Math.min(RETRY_PAUSE_MS, left)));
        tried.clear();
        left = deadline - Date.now();
        if (left <= 0) throw new EtcdDeadlineError(ms, last);
        member = this.#pick(tried)!;
      }
      tried.add(member);
      const attempt = Math.min(left, this.#attemptMs);
      const signal = AbortSignal.timeout(attempt);
      try {
        const res = await member.post(path, text, signal);
        const answer = await res.json();
        if (res.ok && !answer?.error) {
          member.answered();
          this.#next = this.#members.indexOf(member);
          return answer as T;
        }
        // Unary calls answer {code, message}; streaming ones (lease keepalive) {error: {...}}.
        const error = typeof answer?.error === "object" ? answer.error : answer;
        const code = Number(error?.code ?? error?.grpc_code ?? 2);
        const message = String(error?.message ?? error?.error ?? res.statusText);
        if (!RETRIED_CODES.has(code)) throw new EtcdError(`etcd: ${message}`, code);
        later = true;
        // The gateway could not reach etcd's own gRPC: with TLS, its certificate's key usage.
        const gateway = member.url.startsWith("https:") &&
          (message === "connection closed" || message.startsWith("connection error"));
        last = `${member.url}: ${message}${gateway ? `; ${GATEWAY_TLS_HINT}` : ""}`;
      } catch (err) {
        if (err instanceof EtcdError) throw err;
        // By the attempt's signal, whichever error the request or the answer's body gave.
        const timedOut = signal.aborted;
        if (timedOut) later = true;
        last = timedOut
          ? `${member.url} did not answer within ${attempt} ms`
          : `${member.url}: ${(err as Error).message}`;
      }
      this.#failed(member);
    }
  }

  /** `member` failed: skipped for a while, and the next in turn is tried first. */
  #failed(member: Member): void {
    member.failed();
    this.#next = (this.#members.indexOf(member) + 1) % this.#members.length;
  }

  /**
   * Every key under `prefix` (or the one key `prefix` with `exact`), with
   * the store's revision; only keys changed at or after `minModRevision`
   * when given.
   */
  async range(
    prefix: string,
    options: EtcdCallOptions & { minModRevision?: number; exact?: boolean } = {},
  ): Promise<EtcdRangeResult> {
    const res = await this.#call<{ header?: { revision?: string }; kvs?: WireKeyValue[] }>(
      "/v3/kv/range",
      {
        key: b64(prefix),
        ...(options.exact ? {} : { range_end: prefixEnd(prefix) }),
        ...(options.minModRevision ? { min_mod_revision: String(options.minModRevision) } : {}),
      },
      options,
    );
    return { revision: Number(res.header?.revision ?? 0), kvs: (res.kvs ?? []).map(keyValue) };
  }

  /** Every key under `prefix` and its value. */
  async strings(prefix: string, options: EtcdCallOptions = {}): Promise<Map<string, string>> {
    const res = await this.range(prefix, options);
    return new Map(res.kvs.map((kv) => [kv.key, kv.value]));
  }

  /** The value of `key`, or null. */
  async get(key: string, options: EtcdCallOptions = {}): Promise<string | null> {
    const res = await this.range(key, { ...options, exact: true });
    return res.kvs[0]?.value ?? null;
  }

  /** Writes `value` under `key` (on `lease` when given: the key goes when the lease ends). */
  async put(
    key: string,
    value: string,
    options: EtcdCallOptions & { lease?: string } = {},
  ): Promise<void> {
    await this.#call("/v3/kv/put", {
      key: b64(key),
      value: b64(value),
      ...(options.lease ? { lease: options.lease } : {}),
    }, options);
  }

  /** Deletes `key` (with `prefix`, every key under it); how many keys went. */
  async delete(
    key: string,
    options: EtcdCallOptions & { prefix?: boolean } = {},
  ): Promise<number> {
    const res = await this.#call<{ deleted?: string }>("/v3/kv/deleterange", {
      key: b64(key),
      ...(options.prefix ? { range_end: prefixEnd(key) } : {}),
    }, options);
    return Number(res.deleted ?? 0);
  }

  /** A lease of `ttlS` seconds; its id (a decimal int64). */
  async grantLease(ttlS: number, options: EtcdCallOptions = {}): Promise<string> {
    const res = await this.#call<{ ID?: string; error?: string }>(
      "/v3/lease/grant",
      { TTL: String(ttlS) },
      options,
    );
    if (!res.ID || res.error) throw new Error(`etcd: no lease granted (${res.error ?? "no id"})`);
    return res.ID;
  }

  /** Renews lease `id`; its TTL in seconds now, 0 when etcd no longer has it. */
  async keepAlive(id: string, options: EtcdCallOptions = {}): Promise<number> {
    const res = await this.#call<{ result?: { TTL?: string } }>(
      "/v3/lease/keepalive",
      { ID: id },
      options,
    );
    return Number(res.result?.TTL ?? 0);
  }

  /** Ends lease `id` (its keys go at once). */
  async revokeLease(id: string, options: EtcdCallOptions = {}): Promise<void> {
    await this.#call("/v3/lease/revoke", { ID: id }, options);
  }

  /**
   * A lease of `ttlS` seconds kept alive (renewed a third of its TTL apart)
   * until {@link EtcdLease.revoke}; `lost` when etcd drops it or no renewal
   * got through for its TTL.
   */
  lease(ttlS: number): EtcdLease {
    return new EtcdLease(this, ttlS);
  }

  /**
   * Watches every key under `prefix` from now on; resolves once etcd has set
   * the watch up (rejects if no member could). After a broken stream the
   * watch is set up again from the revision after the last it delivered
   * (`disconnected`, then `connected`), until {@link EtcdWatch.cancel} or
   * until etcd cancels it (`error`).
   */
  watch(prefix: string, options: { fromRevision?: number } = {}): Promise<EtcdWatch> {
    const watch = new EtcdWatch(prefix);
    this.#watches.add(watch);
    return new Promise((resolve, reject) => {
      void this.#watchLoop(watch, options.fromRevision ?? 0, resolve, reject)
        .finally(() => this.#watches.delete(watch));
    });
  }

  async #watchLoop(
    watch: EtcdWatch,
    /** The revision the next stream starts from (after the last delivered; 0: from now). */
    from: number,
    created: (w: EtcdWatch) => void,
    failed: (err: Error) => void,
  ): Promise<void> {
    let first = true;
    let up = false;
    let backoff = 100;
    while (!watch.closed && !this.#closed) {
      const member = this.#pick(new Set()) ?? this.#members[0];
      // A member that does not set the watch up within the attempt's time is left for another.
      const attempt = new AbortController();
      const stop = () => attempt.abort();
      watch.signal.addEventListener("abort", stop);
      let timer: ReturnType<typeof setTimeout> | undefined = setTimeout(stop, this.#attemptMs);
      try {
        const res = await member.post(
          "/v3/watch",
          JSON.stringify({
            create_request: {
              key: b64(watch.prefix),
              range_end: prefixEnd(watch.prefix),
              ...(from ? { start_revision: String(from) } : {}),
            },
          }),
          attempt.signal,
        );
        if (!res.ok || !res.body) throw new Error(`${member.url}: watch answered ${res.status}`);
        let buffered = "";
        for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, nl).trim();
            buffered = buffered.slice(nl + 1);
            if (!line) continue;
            const msg = JSON.parse(line);
            if (msg.error) throw new Error(`${member.url}: ${msg.error.message ?? "watch error"}`);
            const r = msg.result ?? {};
            if (r.created) {
              clearTimeout(timer);
              timer = undefined;
              member.answered();
              backoff = 100;
              if (!from) from = Number(r.header?.revision ?? 0) + 1;
              if (first) {
                first = false;
                up = true;
                created(watch);
              } else if (!up) {
                up = true;
                watch.emit("connected");
              }
            }
            if (r.canceled) {
              const reason = r.compact_revision && r.compact_revision !== "0"
                ? `revision ${from} was compacted (etcd keeps from ${r.compact_revision})`
                : r.cancel_reason || "cancelled by etcd";
              void watch.cancel();
              const err = new Error(`etcd: watch of ${watch.prefix}: ${reason}`);
              // After the caller of watch() had its turn to add handlers (it may be cancelled
              // right after it was set up).
              setTimeout(() => watch.emit("error", err), 0);
              return;
            }
            for (const ev of r.events ?? []) {
              const kv = keyValue(ev.kv ?? {});
              from = Math.max(from, kv.modRevision + 1);
              watch.emit(ev.type === "DELETE" ? "delete" : "put", kv);
            }
          }
        }
        throw new Error(`${member.url}: the watch stream ended`);
      } catch (err) {
        if (watch.closed || this.#closed) return;
        this.#failed(member);
        if (first) {
          this.#watches.delete(watch);
          failed(err as Error);
          return;
        }
        if (up) {
          up = false;
          watch.emit("disconnected");
        }
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(WATCH_BACKOFF_MAX_MS, backoff * 2);
      } finally {
        clearTimeout(timer);
        watch.signal.removeEventListener("abort", stop);
      }
    }
  }

  /** Ends every watch and closes the members' connections. */
  close(): void {
    this.#closed = true;
    for (const w of this.#watches) void w.cancel();
    for (const m of this.#members) m.close();
  }
}

/** A lease kept alive (see {@link EtcdHttp.lease}). */
export class EtcdLease {
  #client: EtcdHttp;
  #ttlS: number;
  #id: Promise<string>;
  #lost: ((err: Error) => void)[] = [];
  #timer?: ReturnType<typeof setTimeout>;
  #over = false;
  /** When etcd last confirmed the lease (performance.now). */
  #confirmed = performance.now();

  /** @internal */
  constructor(client: EtcdHttp, ttlS: number) {
    this.#client = client;
    this.#ttlS = ttlS;
    this.#id = client.grantLease(ttlS).then((id) => {
      this.#confirmed = performance.now();
      this.#schedule();
      return id;
    });
    this.#id.catch((err) => this.#lose(err as Error));
  }

  /** Adds a handler called once when the lease is lost. */
  on(_event: "lost", fn: (err: Error) => void): this {
    this.#lost.push(fn);
    return this;
  }

  #lose(err: Error): void {
    if (this.#over) return;
    this.#over = true;
    clearTimeout(this.#timer);
    for (const fn of this.#lost) fn(err);
  }

  #schedule(): void {
    if (this.#over) return;
    this.#timer = setTimeout(() => void this.#renew(), (this.#ttlS * 1000) / 3);
  }

  async #renew(): Promise<void> {
    const id = await this.#id;
    try {
      const ttl = await this.#client.keepAlive(id, {
        deadline: new Date(Date.now() + (this.#ttlS * 1000) / 3),
      });
      if (ttl <= 0) return this.#lose(new Error(`etcd: lease ${id} is gone`));
      this.#confirmed = performance.now();
    } catch (err) {
      if (performance.now() - this.#confirmed > this.#ttlS * 1000) {
        return this.#lose(new Error(`etcd: lease ${id} not renewed: ${(err as Error).message}`));
      }
    }
    this.#schedule();
  }

  /** Writes `value` under `key` on this lease (once it is granted). */
  async put(key: string, value: string): Promise<void> {
    await this.#client.put(key, value, { lease: await this.#id });
  }

  /** Ends the lease: its keys go at once. */
  async revoke(): Promise<void> {
    const wasOver = this.#over;
    this.#over = true;
    clearTimeout(this.#timer);
    if (!wasOver) await this.#client.revokeLease(await this.#id);
  }
}
