/**
 * The transport seam: a server listens on, and a client dials, an endpoint
 * URL. `unix:///path` is a Unix socket (claimed if stale, mode 0600 or 0660);
 * `tcp://host:port` is TCP with TLS (certificate and key from files for a
 * listener, a CA file for a dialer). Both give plain Deno.Conn streams, so
 * the server's connection loop and the client's framing never ask which.
 * @module
 */

import { type Endpoint, formatEndpoint, parseEndpoint } from "../wire/endpoint.ts";
import { StrataError } from "../wire/errors.ts";

/** TLS files of a tcp:// listener. */
export interface ListenOptions {
  /** unix: let the process's group connect (0660 instead of 0600). */
  groupAccess?: boolean;
  /** tcp: the server's certificate chain (PEM file). */
  certFile?: string;
  /** tcp: the server's private key (PEM file). */
  keyFile?: string;
}

/** Options for {@link dial}. */
export interface DialOptions {
  /** tcp: the CA certificate (PEM file) the server's certificate must chain to. */
  caFile?: string;
  /** How long the connection (and TLS handshake) may take, in ms (2 s unless given). */
  timeoutMs?: number;
}

/** A bound endpoint. */
export interface Listening {
  /** The endpoint URL, e.g. "unix:///run/strata/fs.sock" or "tcp://127.0.0.1:7402". */
  readonly endpoint: string;
  /** The listener whose connections the server accepts (a Deno.TlsListener for tcp://). */
  readonly listener: Deno.Listener;
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
  const cert = readPem(options.certFile, "tls-cert", url);
  const key = readPem(options.keyFile, "tls-key", url);
  let listener: Deno.TlsListener;
  try {
    listener = Deno.listenTls({ hostname: ep.host, port: ep.port, cert, key });
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      throw new StrataError("CONFLICT", `another process is already serving ${url}`);
    }
    throw err;
  }
  return {
    endpoint: url,
    listener,
    close() {
      try {
        listener.close();
      } catch { /* already closed */ }
    },
  };
}

/** Why a dial failed, in words an operator can act on. */
function unreachable(ep: Endpoint, err: unknown): StrataError {
  const unix = ep.kind === "unix";
  const label = unix ? ep.path : formatEndpoint(ep);
  const why = err instanceof Deno.errors.NotFound
    ? "no socket there"
    : err instanceof Deno.errors.ConnectionRefused
    ? "nothing is listening"
    : err instanceof Deno.errors.NotCapable
    ? `this program is not permitted to use that ${unix ? "socket" : "endpoint"}`
    : err instanceof Error
    ? err.message
    : String(err);
  return new StrataError(
    "UNAVAILABLE",
    `cannot connect to ${label}: ${why}`,
    unix ? { path: label } : { endpoint: label },
  );
}

async function open(ep: Endpoint, options: DialOptions, url: string): Promise<Deno.Conn> {
  if (ep.kind === "unix") return await Deno.connect({ transport: "unix", path: ep.path });
  const ca = readPem(options.caFile, "tls-ca", url);
  const conn = await Deno.connectTls({ hostname: ep.host, port: ep.port, caCerts: [ca] });
  try {
    // Fail here, not on the first request, when the server's certificate is not trusted.
    await conn.handshake();
  } catch (err) {
    conn.close();
    throw new Error(`TLS handshake failed (${err instanceof Error ? err.message : err})`);
  }
  return conn;
}

/**
 * Dials an endpoint (a bare path is a Unix socket); throws
 * UNAVAILABLE naming the endpoint when nothing answers or TLS fails, and
 * INVALID_ARGUMENT when the endpoint or a TLS file is unusable.
 */
export async function dial(endpoint: string, options: DialOptions = {}): Promise<Deno.Conn> {
  const ep = endpointOf(endpoint);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const opening = open(ep, options, formatEndpoint(ep));
  try {
    return await Promise.race([
      opening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("timed out")), options.timeoutMs ?? 2000);
      }),
    ]);
  } catch (err) {
    // A connection that arrives after the timeout is closed, not leaked.
    opening.then((c) => c.close(), () => {});
    if (err instanceof StrataError) throw err;
    throw unreachable(ep, err);
  } finally {
    clearTimeout(timer);
  }
}
