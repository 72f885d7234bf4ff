/**
 * Endpoint URLs: where a service listens and a client dials.
 * `unix:///absolute/path.sock` is a Unix socket; `tcp://host:port` is TCP
 * with TLS. Parsed here, below everything, so the layout, the permissions,
 * the registry and the transports agree on one reading of them.
 * @module
 */

import { invalidArgument } from "./errors.ts";

/** A parsed endpoint. */
export type Endpoint =
  | { kind: "unix"; path: string }
  | { kind: "tcp"; host: string; port: number };

/** Host names and IPv4 addresses a tcp:// endpoint may name (no IPv6 literals yet). */
const HOST_RE = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

/**
 * Parses an endpoint URL; throws INVALID_ARGUMENT naming `field` and the
 * accepted forms. A bare absolute path is taken as a Unix socket (the form
 * clients were given before endpoints existed).
 */
export function parseEndpoint(endpoint: string, field = "endpoint"): Endpoint {
  if (endpoint.startsWith("/")) endpoint = `unix://${endpoint}`;
  if (endpoint.startsWith("unix://")) {
    const path = endpoint.slice("unix://".length);
    if (
      !path.startsWith("/") || path.includes("\0") || /\/\.\.?(\/|$)/.test(path)
    ) {
      throw invalidArgument(`${field}: must be "unix:///absolute/path.sock"`);
    }
    return { kind: "unix", path };
  }
  if (endpoint.startsWith("tcp://")) {
    const m = /^tcp:\/\/([^/:]+):(\d{1,5})$/.exec(endpoint);
    const port = m ? Number(m[2]) : 0;
    if (!m || !HOST_RE.test(m[1]) || port < 1 || port > 65535) {
      throw invalidArgument(
        `${field}: must be "tcp://host:port" with a host name or IPv4 address and a port 1-65535`,
      );
    }
    return { kind: "tcp", host: m[1], port };
  }
  throw invalidArgument(
    `${field}: must start with unix:// or tcp:// ("unix:///run/strata/fs.sock", "tcp://10.0.0.5:7402")`,
  );
}

/** Whether `host` is an IPv4 address in dotted decimal (what a tcp:// listener may bind). */
export function isIpv4Address(host: string): boolean {
  const parts = host.split(".");
  return parts.length === 4 &&
    parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/** The URL form of a parsed endpoint. */
export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.kind === "unix"
    ? `unix://${endpoint.path}`
    : `tcp://${endpoint.host}:${endpoint.port}`;
}

/** The exact Deno `--allow-net` entry an endpoint needs: `unix:<path>` or `host:port`. */
export function netGrant(endpoint: Endpoint): string {
  return endpoint.kind === "unix" ? `unix:${endpoint.path}` : `${endpoint.host}:${endpoint.port}`;
}
