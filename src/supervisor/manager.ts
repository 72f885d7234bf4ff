/**
 * The supervisor's process manager: starts each service in dependency order,
 * a service's process ahead of its dependencies but held until they are
 * Healthy (its code loads meanwhile; see node/lifecycle.ts' awaitRelease),
 * declares it Healthy only once it answers its health call, restarts it with
 * backoff when it crashes, quarantines it when it crashes too often, stops
 * it with a drain, and keeps the registry told of every Healthy service.
 *
 * Children run in their own session (so a terminal's Ctrl-C reaches only the
 * supervisor, which stops them in order) with a pipe on stdin that ends when
 * the supervisor dies, however it dies.
 * @module
 */

import { callOnce, RemoteError } from "../server/client.ts";
import { notFound } from "../wire/errors.ts";
import { encodeFrame } from "../wire/frame.ts";
import type { Audit } from "../runtime/audit.ts";
import type { ChildService } from "../runtime/config.ts";
import type { ProgramCommand } from "../runtime/command.ts";
import type { Logger } from "../runtime/log.ts";
import { Backoff, type BackoffOptions, CrashWindow, type QuarantineOptions } from "./backoff.ts";
import { type LogBook, pumpLines } from "./logs.ts";
import { assertTransition, type State } from "./states.ts";

/** How to run one service. */
export interface ServiceSpec {
  name: ChildService;
  /** Services that must be Healthy before this one starts. */
  deps: ChildService[];
  command: ProgramCommand;
  /** Where it answers health checks and is announced: its socket, `unix:///…/<name>.sock`. */
  endpoint: string;
}

/** What svc.list reports per service. */
export interface ServiceStatus {
  name: string;
  state: State;
  pid: number | null;
  restarts: number;
  last_exit: { code: number; signal: string | null } | null;
  /** When it entered its state (RFC 3339). */
  since: string;
  /** Services it waits for, while Declared. */
  waiting_for?: string[];
}

/** What svc.status adds for one service: restarts by cause, memory, endpoint, log file. */
export interface ServiceDetail extends ServiceStatus {
  /** Restarts by the supervisor after a crash, and by an operator (restart, or start after a crash). */
  restarts_by: { crash: number; operator: number };
  /** What its health call reported just now (bytes), or null when it did not answer. */
  memory: { rss: number; heap_used: number; heap_total: number; external: number } | null;
  /** Where it listens. */
  endpoint: string;
  /** The file its log lines go to, or null when the supervisor keeps none. */
  log_file: string | null;
}

/** Options for {@link Manager}. */
export interface ManagerOptions {
  specs: ServiceSpec[];
  audit: Audit;
  log: Logger;
  /** Time a child has to answer its first health call. */
  readyTimeoutMs?: number;
  /** Time between liveness checks of a Healthy child. */
  healthIntervalMs?: number;
  backoff?: Partial<BackoffOptions>;
  quarantine?: Partial<QuarantineOptions>;
  /** Where children's stdout and stderr lines go; without it they inherit the supervisor's. */
  logs?: LogBook;
}

/** A spawned child and the writer of its stdin pipe. */
interface Spawned {
  child: Deno.ChildProcess;
  pipe: WritableStreamDefaultWriter<Uint8Array>;
}

/** What releases a held child: one byte on its stdin pipe. */
const RELEASE = new Uint8Array([0x0a]);

interface Unit {
  spec: ServiceSpec;
  /** The requests it had answered at its last refusal for load, while it refuses so. */
  fullAt?: number;
  state: State;
  since: number;
  child?: Deno.ChildProcess;
  pipe?: WritableStreamDefaultWriter<Uint8Array>;
  /** While Declared: its process, started ahead and held (unset when it exits unreleased). */
  held?: Spawned;
  restarts: number;
  /** Of `restarts`, those an operator asked for. */
  operatorRestarts: number;
  lastExit: ServiceStatus["last_exit"];
  backoff: Backoff;
  crashes: CrashWindow;
  /** Bumped at each spawn, so events of an old process are ignored. */
  generation: number;
  stopping: boolean;
  exited?: Promise<void>;
  timers: {
    restart?: ReturnType<typeof setTimeout>;
    stable?: ReturnType<typeof setTimeout>;
    health?: ReturnType<typeof setTimeout>;
  };
  waiters: Array<() => void>;
}

/** Orders specs so each comes after its dependencies; throws on a cycle. */
export function dependencyOrder(specs: readonly ServiceSpec[]): ChildService[] {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const order: ChildService[] = [];
  const mark = new Map<string, "visiting" | "done">();
  const visit = (name: ChildService, path: string[]) => {
    const m = mark.get(name);
    if (m === "done") return;
    if (m === "visiting") {
      throw new Error(`dependency cycle: ${[...path, name].join(" → ")}`);
    }
    const spec = byName.get(name);
    if (!spec) throw new Error(`${path.at(-1)} depends on ${name}, which is not declared`);
    mark.set(name, "visiting");
    for (const d of spec.deps) visit(d, [...path, name]);
    mark.set(name, "done");
    order.push(name);
  };
  for (const s of specs) visit(s.name, []);
  return order;
}

const SETTLED: readonly State[] = ["Healthy", "Crashed", "Restarting", "Quarantined", "Stopped"];

/** Starts, watches and stops the supervised services. */
export class Manager {
  #units = new Map<string, Unit>();
  #order: ChildService[];
  #o: Required<Pick<ManagerOptions, "readyTimeoutMs" | "healthIntervalMs">> & ManagerOptions;
  #shuttingDown = false;
  #seq = 0;
  #onAnyChange: Array<() => void> = [];

  constructor(options: ManagerOptions) {
    this.#order = dependencyOrder(options.specs);
    this.#o = { readyTimeoutMs: 10_000, healthIntervalMs: 5000, ...options };
    for (const spec of options.specs) {
      this.#units.set(spec.name, {
        spec,
        state: "Declared",
        since: Date.now(),
        restarts: 0,
        operatorRestarts: 0,
        lastExit: null,
        backoff: new Backoff(options.backoff),
        crashes: new CrashWindow(options.quarantine),
        generation: 0,
        stopping: false,
        timers: {},
        waiters: [],
      });
    }
  }

  /** Service names in dependency order. */
  get order(): readonly string[] {
    return this.#order;
  }

  #unit(name: string): Unit {
    const u = this.#units.get(name);
    if (!u) {
      throw notFound(`no service ${name}; the supervisor runs ${this.#order.join(", ")}`);
    }
    return u;
  }

  #set(u: Unit, to: State): void {
    assertTransition(u.state, to);
    u.state = to;
    u.since = Date.now();
    if (to === "Quarantined" || to === "Stopped") {
      // A held process behind it will not be released: end it.
      for (const other of this.#units.values()) {
        if (other.held && this.#blocked(other)) this.#dropHeld(other);
      }
    }
    const waiters = [...u.waiters, ...this.#onAnyChange];
    u.waiters = [];
    this.#onAnyChange = [];
    for (const w of waiters) w();
  }

  /** Resolves once the service leaves Starting (or at once if it is not starting). */
  #settled(u: Unit): Promise<State> {
    if (SETTLED.includes(u.state) || u.state === "Declared") return Promise.resolve(u.state);
    return new Promise((resolve) => u.waiters.push(() => resolve(this.#settled(u))));
  }

  /**
   * Starts the services whose dependencies are Healthy (none yet: those with
   * none) and the held processes of the others, without waiting for any;
   * {@link startAll} does the same and then waits.
   */
  begin(): void {
    this.#startWaiting();
  }

  /**
   * Starts the services in dependency order (each once its dependencies are
   * Healthy) and resolves when all are Healthy, when the rest cannot start
   * (a dependency is Quarantined), or after `timeoutMs`.
   */
  async startAll(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.#startWaiting();
    while (!this.#bootSettled() && Date.now() < deadline) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#onAnyChange.push(resolve);
        timer = setTimeout(resolve, deadline - Date.now());
      });
      clearTimeout(timer);
    }
  }

  /** Every service is Healthy, or stuck behind one that will not come back by itself. */
  #bootSettled(): boolean {
    return [...this.#units.values()].every((u) => u.state === "Healthy" || this.#blocked(u));
  }

  /** Stopped or quarantined, or Declared behind a service that is. */
  #blocked(u: Unit): boolean {
    return u.state === "Quarantined" || u.state === "Stopped" ||
      (u.state === "Declared" && u.spec.deps.some((d) => this.#blocked(this.#unit(d))));
  }

  #depsHealthy(u: Unit): boolean {
    return u.spec.deps.every((d) => this.#unit(d).state === "Healthy");
  }

  /**
   * Starts Declared services whose dependencies just became Healthy, and
   * the process of each one still waiting, held (see {@link #startAhead}).
   */
  #startWaiting(): void {
    if (this.#shuttingDown) return;
    for (const name of this.#order) {
      const u = this.#unit(name);
      if (u.state !== "Declared") continue;
      if (this.#depsHealthy(u)) this.#launch(u);
      else if (!u.held && !this.#blocked(u)) this.#startAhead(u);
    }
  }

  /**
   * Starts the process of a service whose dependencies are still starting,
   * with `--held`: it loads its code (most of a Deno program's start-up)
   * beside them, then waits on its pipe, reading no key or revocation and
   * binding no socket, until #launch releases it. fs thus starts while
   * identity does, instead of after.
   */
  #startAhead(u: Unit): void {
    let held: Spawned;
    try {
      held = this.#spawn(u, ["--held"]);
    } catch {
      return; // started afresh at launch, which reports why it cannot
    }
    u.held = held;
    // Gone before its release: launch starts it afresh.
    held.child.status.then(() => {
      if (u.held === held) u.held = undefined;
    });
  }

  /** Ends a held process whose service will not be launched (stopped, or behind one that is). */
  #dropHeld(u: Unit): void {
    const held = u.held;
    if (!held) return;
    u.held = undefined;
    try {
      held.child.kill("SIGKILL");
    } catch { /* already gone */ }
  }

  /** Spawns a service's process (stdin a pipe, in its own session), its output to the logs. */
  #spawn(u: Unit, extra: string[] = []): Spawned {
    const logs = this.#o.logs;
    const output = logs ? "piped" : "inherit";
    const child = new Deno.Command(u.spec.command.cmd, {
      args: [...u.spec.command.args, "--supervised", ...extra],
      env: u.spec.command.env,
      stdin: "piped",
      stdout: output,
      stderr: output,
      detached: true,
    }).spawn();
    if (logs) {
      for (const stream of [child.stdout, child.stderr]) {
        pumpLines(stream, (lines) => logs.addLines(u.spec.name, lines));
      }
    }
    const pipe = child.stdin.getWriter();
    // A pipe that breaks under us (the child died) is handled by the exit path.
    pipe.closed.catch(() => {});
    return { child, pipe };
  }

  #launch(u: Unit): void {
    this.#set(u, "Starting");
    u.fullAt = undefined;
    const gen = ++u.generation;
    u.stopping = false;
    const held = u.held;
    u.held = undefined;
    let child: Deno.ChildProcess;
    if (held) {
      ({ child, pipe: u.pipe } = held);
      u.pipe.write(RELEASE).catch(() => {});
    } else {
      try {
        ({ child, pipe: u.pipe } = this.#spawn(u));
      } catch (err) {
        this.#o.log.error("cannot start", { name: u.spec.name, error: String(err) });
        u.lastExit = { code: -1, signal: null };
        this.#crashed(u);
        return;
      }
    }
    u.child = child;
    this.#o.audit.event("svc.start", { name: u.spec.name, pid: child.pid });
    u.exited = child.status.then((st) => this.#onExit(u, gen, st));
    this.#awaitReady(u, gen);
  }

  async #awaitReady(u: Unit, gen: number): Promise<void> {
    const deadline = Date.now() + this.#o.readyTimeoutMs;
    let delay = 5;
    while (u.generation === gen && u.state === "Starting") {
      if (await this.#healthy(u, 1000)) {
        if (u.generation !== gen || u.state !== "Starting") return;
        this.#becameHealthy(u);
        return;
      }
      if (Date.now() >= deadline) {
        this.#o.log.error("not ready in time; killing it", {
          name: u.spec.name,
          ready_timeout_ms: this.#o.readyTimeoutMs,
        });
        this.#kill(u, "SIGKILL");
        return;
      }
      await new Promise((r) => setTimeout(r, delay));
      // Polled often: a refused connect costs microseconds, a late one costs start-up time.
      delay = Math.min(delay * 2, 10);
    }
  }

  /**
   * Whether the child answers its health call. A refusal for load (every
   * connection it may hold is busy: RESOURCE_EXHAUSTED with
   * `details.finished`, the requests it has answered) counts while that
   * count goes up from one such refusal to the next: the child is alive and
   * answering its clients, and a restart would only cut them. One whose
   * count stands still (its handlers stuck behind full connections) misses.
   * (A connect the socket's full queue refused is tried again by the client
   * until `timeoutMs`.)
   */
  async #healthy(u: Unit, timeoutMs: number): Promise<boolean> {
    try {
      const r = await callOnce<{ status: string }>(u.spec.endpoint, `${u.spec.name}.health`, {}, {
        timeoutMs,
        connectTimeoutMs: timeoutMs,
      });
      u.fullAt = undefined;
      return r.status === "ok";
    } catch (err) {
      const finished = err instanceof RemoteError && err.errorName === "RESOURCE_EXHAUSTED"
        ? err.details?.finished
        : undefined;
      if (typeof finished !== "number") return false;
      const before = u.fullAt;
      u.fullAt = finished;
      if (before === undefined) {
        this.#o.log.warn("at its connection limit; answering its clients", {
          name: u.spec.name,
        });
      }
      return before === undefined || finished > before;
    }
  }

  #becameHealthy(u: Unit): void {
    this.#set(u, "Healthy");
    u.timers.stable = setTimeout(() => u.backoff.reset(), u.backoff.stableMs);
    let misses = 0;
    u.timers.health = setInterval(async () => {
      if (u.state !== "Healthy" || u.stopping) return;
      misses = (await this.#healthy(u, 2000)) ? 0 : misses + 1;
      if (misses >= 3 && u.state === "Healthy" && !u.stopping) {
        this.#o.log.error("failed 3 health checks; killing it", { name: u.spec.name });
        this.#kill(u, "SIGKILL");
      }
    }, this.#o.healthIntervalMs);
    if (u.spec.name === "registry") {
      for (const other of this.#units.values()) {
        if (other.state === "Healthy") this.#announce(other, true);
      }
    } else {
      this.#announce(u, true);
    }
    this.#startWaiting();
  }

  /**
   * Tells the registry that a service came up or went away: a request on its
   * stdin pipe, which the registry serves through its request path (envelope,
   * params schema, handler) as the supervisor; only this process holds it.
   */
  #announce(u: Unit, up: boolean): void {
    const reg = this.#units.get("registry");
    if (!reg?.pipe || reg.state !== "Healthy" || u.spec.name === "registry") return;
    const frame = encodeFrame({
      v: 1,
      req_id: `sup-${++this.#seq}`,
      method: up ? "registry.register" : "registry.deregister",
      params: up
        ? { service: u.spec.name, endpoint: u.spec.endpoint, api_v: 1 }
        : { service: u.spec.name },
    });
    reg.pipe.write(frame).catch(() => {});
  }

  #clearTimers(u: Unit): void {
    clearTimeout(u.timers.restart);
    clearTimeout(u.timers.stable);
    clearInterval(u.timers.health);
    u.timers = {};
  }

  #kill(u: Unit, signal: Deno.Signal): void {
    try {
      u.child?.kill(signal);
    } catch { /* already gone */ }
  }

  #onExit(u: Unit, gen: number, st: Deno.CommandStatus): void {
    if (u.generation !== gen) return;
    const wasHealthy = u.state === "Healthy";
    const healthyForMs = wasHealthy ? Date.now() - u.since : undefined;
    u.lastExit = { code: st.code, signal: st.signal };
    u.child = undefined;
    u.pipe = undefined;
    this.#clearTimers(u);
    if (wasHealthy) this.#announce(u, false);
    if (u.stopping || this.#shuttingDown) {
      this.#set(u, "Stopped");
      this.#o.audit.event("svc.stop", { name: u.spec.name, code: st.code, signal: st.signal });
      return;
    }
    this.#o.audit.event("svc.crash", { name: u.spec.name, code: st.code, signal: st.signal });
    this.#o.log.warn("exited unexpectedly", {
      name: u.spec.name,
      code: st.code,
      signal: st.signal,
    });
    this.#crashed(u, healthyForMs);
  }

  /** A crash: quarantine, or a restart after the backoff's delay (`healthyForMs`: how long it had been Healthy). */
  #crashed(u: Unit, healthyForMs?: number): void {
    this.#set(u, "Crashed");
    if (u.crashes.record()) {
      this.#set(u, "Quarantined");
      this.#o.log.error("crashed too often; quarantined until an operator starts it", {
        name: u.spec.name,
      });
      return;
    }
    const delay = u.backoff.next({ healthyForMs });
    this.#set(u, "Restarting");
    u.timers.restart = setTimeout(() => {
      if (u.state !== "Restarting") return;
      u.restarts++;
      this.#launch(u);
    }, delay);
  }

  /** Starts a service (an operator's start: also lifts a quarantine). */
  async start(name: string): Promise<ServiceStatus> {
    const u = this.#unit(name);
    // A stop in progress finishes first; then the service starts afresh.
    if (u.stopping && u.exited) await u.exited;
    if (u.state === "Healthy" || u.state === "Starting") {
      await this.#settled(u);
      return this.#status(u);
    }
    this.#clearTimers(u);
    if (u.state === "Crashed") this.#set(u, "Stopped");
    if (u.state === "Quarantined" || u.state === "Stopped") {
      u.crashes.clear();
      u.backoff.reset();
    }
    if (u.state === "Restarting") {
      u.restarts++;
      u.operatorRestarts++;
    }
    this.#launch(u);
    await this.#settled(u);
    return this.#status(u);
  }

  /**
   * Stops a service: deregisters it, sends SIGTERM (the service then
   * finishes its in-flight requests and exits), and SIGKILL if it is still
   * running after `drainMs`.
   */
  async stop(name: string, drainMs: number): Promise<ServiceStatus> {
    const u = this.#unit(name);
    this.#clearTimers(u);
    if (u.stopping && u.exited) {
      // Already stopping: wait for that stop; a second SIGTERM would make
      // the service skip its drain and exit at once.
      await u.exited;
    } else if (u.state === "Starting" || u.state === "Healthy") {
      u.stopping = true;
      if (u.state === "Healthy") this.#announce(u, false);
      const exited = u.exited;
      this.#kill(u, "SIGTERM");
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = await Promise.race([
        exited?.then(() => true),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(false), drainMs))),
      ]);
      clearTimeout(timer);
      if (!done) {
        this.#o.log.warn("did not stop within the drain time; killing it", {
          name,
          drain_ms: drainMs,
        });
        this.#kill(u, "SIGKILL");
        await exited;
      }
    } else if (u.state !== "Stopped") {
      this.#set(u, "Stopped");
    }
    this.#dropHeld(u);
    return this.#status(u);
  }

  /** Stops, then starts a service. */
  async restart(name: string, drainMs: number): Promise<ServiceStatus> {
    const u = this.#unit(name);
    await this.stop(name, drainMs);
    u.restarts++;
    u.operatorRestarts++;
    return await this.start(name);
  }

  /** Stops every service, in reverse dependency order. */
  async stopAll(drainMs: number): Promise<void> {
    this.#shuttingDown = true;
    for (const name of [...this.#order].reverse()) await this.stop(name, drainMs);
  }

  #status(u: Unit): ServiceStatus {
    const s: ServiceStatus = {
      name: u.spec.name,
      state: u.state,
      // A Declared service's held process too (started ahead, waiting for its dependencies).
      pid: u.child?.pid ?? u.held?.child.pid ?? null,
      restarts: u.restarts,
      last_exit: u.lastExit,
      since: new Date(u.since).toISOString(),
    };
    if (u.state === "Declared") {
      s.waiting_for = u.spec.deps.filter((d) => this.#unit(d).state !== "Healthy");
    }
    return s;
  }

  /** The status of every service, in dependency order. */
  list(): ServiceStatus[] {
    return this.#order.map((n) => this.#status(this.#unit(n)));
  }

  /** The status of one service. */
  status(name: string): ServiceStatus {
    return this.#status(this.#unit(name));
  }

  /** The status of one service with restarts by cause, its memory (asked now) and endpoint. */
  async detail(name: string): Promise<ServiceDetail> {
    const u = this.#unit(name);
    let memory: ServiceDetail["memory"] = null;
    if (u.state === "Healthy" || u.state === "Starting") {
      try {
        const r = await callOnce<{ memory: NonNullable<ServiceDetail["memory"]> }>(
          u.spec.endpoint,
          `${u.spec.name}.health`,
          {},
          { timeoutMs: 1000, connectTimeoutMs: 1000 },
        );
        memory = r.memory ?? null;
      } catch {
        // Not answering just now: memory unknown.
      }
    }
    return {
      ...this.#status(u),
      restarts_by: { crash: u.restarts - u.operatorRestarts, operator: u.operatorRestarts },
      memory,
      endpoint: u.spec.endpoint,
      log_file: this.#o.logs?.pathOf(u.spec.name) ?? null,
    };
  }
}
