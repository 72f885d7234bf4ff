/**
 * Shared pieces of the security tests: error assertions, token surgery
 * (split, re-join, re-sign), signing as the node's own identity (a test may
 * act as the operator with file access to the state dir), raw requests and
 * supervisor look-ups.
 * @module
 */

import assert from "node:assert/strict";
import type { ErrorBody } from "../../src/wire/errors.ts";
import type { Response } from "../../src/wire/envelope.ts";
import { issuerOf, type ServiceName, socketPath, stateFiles } from "../../src/runtime/config.ts";
import { Client } from "../../src/server/client.ts";
import { rfc3339 } from "../../src/token/claims.ts";
import { b64url, fromB64url, parseSecretPaserk, type SigningKey } from "../../src/token/keys.ts";
import { programCommand } from "../../src/runtime/command.ts";
import { decodeFrames, type Node, rawExchange, rawFrame, REPO_ROOT, waitFor } from "../helpers.ts";

/** A response that must be an error: checks name, message and (optionally) reason. */
export function expectError(
  res: Response,
  name: ErrorBody["name"],
  message?: RegExp,
  reason?: string,
): ErrorBody {
  assert.equal(res.ok, false, `expected ${name}, got success: ${JSON.stringify(res)}`);
  if (res.ok) throw new Error("unreachable");
  assert.equal(res.error.name, name, JSON.stringify(res.error));
  if (message) assert.match(res.error.message, message, JSON.stringify(res.error));
  if (reason !== undefined) {
    assert.equal(res.error.details?.reason, reason, JSON.stringify(res.error));
  }
  return res.error;
}

/** A response that must succeed; returns its result. */
export function expectOk<T = Record<string, unknown>>(res: Response): T {
  assert.equal(res.ok, true, `expected success, got ${JSON.stringify(res)}`);
  if (!res.ok) throw new Error("unreachable");
  return res.result as T;
}

/** The parts of a v4.public token. */
export interface TokenParts {
  message: Uint8Array;
  signature: Uint8Array;
  /** The footer, still base64url. */
  footer: string;
}

/** Splits a v4.public token into payload bytes, signature and footer. */
export function splitToken(token: string): TokenParts {
  const parts = token.split(".");
  assert.equal(parts.length, 4, `not a v4.public token with footer: ${token.slice(0, 20)}`);
  const body = fromB64url(parts[2]);
  assert(body && body.length > 64, "token body is not base64url");
  return {
    message: body.slice(0, body.length - 64),
    signature: body.slice(body.length - 64),
    footer: parts[3],
  };
}

/** Joins payload bytes, signature and footer back into a v4.public token. */
export function joinToken(p: TokenParts): string {
  const body = new Uint8Array(p.message.length + p.signature.length);
  body.set(p.message, 0);
  body.set(p.signature, p.message.length);
  return `v4.public.${b64url(body)}.${p.footer}`;
}

/** The claims a token carries (read without verifying). */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(new TextDecoder().decode(splitToken(token).message));
}

/** The key id in a token's footer. */
export function footerKid(token: string): string {
  const f = fromB64url(splitToken(token).footer);
  assert(f, "footer is not base64url");
  return JSON.parse(new TextDecoder().decode(f)).kid;
}

/** The node's active signing key, read from keys.json as an operator with file access could. */
export async function nodeSigningKey(node: Node): Promise<SigningKey> {
  const ring = JSON.parse(await Deno.readTextFile(stateFiles(node.layout).keys)) as {
    active: string;
    keys: { kid: string; secret: string }[];
  };
  const entry = ring.keys.find((k) => k.kid === ring.active);
  assert(entry, "keys.json has no active key");
  const key = await parseSecretPaserk(entry.secret);
  assert.equal(key.kid, entry.kid);
  return key;
}

/** A fresh random cap_id. */
export function randomCapId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** Claims that look exactly like identity's for an fs.list token (override any field). */
export function fsClaims(
  node: Node,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const now = Date.now();
  return {
    jti: randomCapId(),
    iss: issuerOf(node.layout),
    aud: "strata",
    iat: rfc3339(now),
    nbf: rfc3339(now),
    exp: rfc3339(now + 600_000),
    sub: "mallory",
    service: "fs",
    actions: ["list"],
    rights: ["fs.list"],
    constraints: { path_prefix: node.exportRoot },
    ...overrides,
  };
}

/** Sends one request frame of raw JSON text to a service socket; returns the frames and whether it closed. */
export async function rawRequest(
  node: Node,
  service: ServiceName,
  json: string,
  quietMs = 250,
): Promise<{ frames: Response[]; closed: boolean }> {
  const r = await rawExchange(socketPath(node.layout, service), rawFrame(json), { quietMs });
  return { frames: decodeFrames(r.data) as Response[], closed: r.closed };
}

/** One supervised service as svc.list reports it. */
export interface SvcStatus {
  name: string;
  state: string;
  pid: number | null;
  restarts: number;
}

/** The supervisor's view of one service. */
export async function svcStatus(node: Node, name: string): Promise<SvcStatus> {
  const r = expectOk<{ services: SvcStatus[] }>(
    await node.request("supervisor", "supervisor.svc.list"),
  );
  const s = r.services.find((x) => x.name === name);
  assert(s, `no service ${name} in svc.list`);
  return s;
}

/**
 * SIGKILLs one supervised service and waits until the supervisor reports it
 * Healthy again with a new pid. Returns the new pid.
 */
export async function killAndAwaitRestart(node: Node, name: string): Promise<number> {
  const before = await svcStatus(node, name);
  assert(before.pid !== null && before.state === "Healthy", JSON.stringify(before));
  Deno.kill(before.pid, "SIGKILL");
  let after: SvcStatus | undefined;
  await waitFor(`${name} Healthy again with a new pid`, async () => {
    after = await svcStatus(node, name);
    return after.state === "Healthy" && after.pid !== null && after.pid !== before.pid;
  }, 15_000);
  // Let stop() know about the new pid so it checks it exits too.
  await node.childPids();
  return after!.pid!;
}

/**
 * A request through the node's shared client, retried while the connection
 * is being re-established after the service restarted.
 */
export async function requestRetrying(
  node: Node,
  service: ServiceName,
  method: string,
  params?: Record<string, unknown>,
  token?: string,
): Promise<Response> {
  let last: unknown;
  for (let i = 0; i < 50; i++) {
    try {
      return await node.request(service, method, params, token);
    } catch (err) {
      last = err;
      // Retries until the real service (restarting, or not yet bound) answers.
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw last;
}

/**
 * Like rawExchange, but writes every byte (a single write on a Unix socket
 * may be short for large payloads) while reading the answers concurrently.
 */
export async function rawExchangeAll(
  path: string,
  bytes: Uint8Array,
  quietMs = 500,
): Promise<{ frames: Response[]; closed: boolean }> {
  const conn = await Deno.connect({ transport: "unix", path });
  const parts: Uint8Array[] = [];
  let closed = false;
  let closedByPeer = false;
  let last = Date.now();
  const reading = (async () => {
    const buf = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) {
        closed = true;
        return;
      }
      parts.push(buf.slice(0, n));
      last = Date.now();
    }
  })();
  try {
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    last = Date.now();
    while (!closed && Date.now() - last < quietMs) {
      // Polls whether the real peer closed the connection or went quiet.
      await new Promise((r) => setTimeout(r, 20));
    }
    closedByPeer = closed;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
    await reading;
  }
  const data = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.length;
  }
  return { frames: decodeFrames(data) as Response[], closed: closedByPeer };
}

/**
 * Runs the real strata-ctl for `node` with `args` and only `env` (plus what
 * Deno needs) in its environment; returns its exit code and output.
 */
export async function runCtl(
  node: Node,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = programCommand("ctl", node.layout, {
    kind: "dev",
    deno: Deno.execPath(),
    root: REPO_ROOT,
  }, { extra: args });
  const base: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) base[name] = v;
  }
  const out = await new Deno.Command(cmd.cmd, {
    args: cmd.args,
    clearEnv: true,
    env: { ...base, ...env },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A token identity issued for fs.list under the export root. */
/** An issued token, as identity.issue answered it (`expires` in Unix seconds). */
export type Victim = { token: string; cap_id: string; expires: number };

/**
 * Issues `n` fs tokens and revokes each, from 8 connections at once (each
 * revoke answered ok); `ttl` seconds of life.
 */
export async function revokeMany(node: Node, n: number, ttl = 3600): Promise<Victim[]> {
  const out: Victim[] = [];
  const op = node.operatorToken();
  const clients = await Promise.all(
    Array.from({ length: 8 }, () => Client.connect(socketPath(node.layout, "identity"))),
  );
  try {
    await Promise.all(clients.map(async (c, k) => {
      for (let i = k; i < n; i += clients.length) {
        const v = await c.call<Victim>("identity.issue", {
          service: "fs",
          rights: ["fs.list"],
          path_prefix: node.exportRoot,
          ttl_seconds: ttl,
        }, { token: op });
        out.push(v);
        expectOk(await c.request("identity.revoke", { cap_id: v.cap_id }, { token: op }));
      }
    }));
  } finally {
    for (const c of clients) await c.close();
  }
  return out;
}

/** Kills fs, and asserts that the fs started again refuses every one of `victims` as revoked. */
export async function assertRefusedAfterRestart(node: Node, victims: Victim[]): Promise<void> {
  const root = node.exportRoot;
  await killAndAwaitRestart(node, "fs");
  await requestRetrying(node, "fs", "fs.list", { path: root }, victims[0].token);
  let fs = await Client.connect(socketPath(node.layout, "fs"));
  try {
    for (const [i, v] of victims.entries()) {
      // fs closes a connection after 32 refusals: a new one every 30.
      if (i % 30 === 29) {
        await fs.close();
        fs = await Client.connect(socketPath(node.layout, "fs"));
      }
      expectError(
        await fs.request("fs.list", { path: root }, { token: v.token }),
        "UNAUTHENTICATED",
        new RegExp(`capability ${v.cap_id} has been revoked`),
        "revoked",
      );
    }
  } finally {
    await fs.close();
  }
}
