/**
 * The request and response envelopes of protocol v1, and their validation.
 * @module
 */

import { type ErrorBody, invalidArgument, StrataError } from "./errors.ts";

/** The protocol version this build speaks. */
export const PROTOCOL_VERSION = 1;

/** The longest accepted req_id. */
export const MAX_REQ_ID = 128;

/** The longest accepted token string. */
export const MAX_TOKEN = 8 * 1024;

const METHOD_RE = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,3}$/;

/** A request envelope: `{v, req_id, method, auth?, params?}`. */
export interface Request {
  /** The protocol version; always 1. */
  v: 1;
  /** The caller's id for this request, echoed in the response. */
  req_id: string;
  /** `service.action`, e.g. "fs.read". */
  method: string;
  /** The capability token the request presents. */
  auth?: { token: string };
  /** The method's parameters. */
  params?: Record<string, unknown>;
}

/** A successful response envelope. */
export interface OkResponse<T = unknown> {
  /** The protocol version; always 1. */
  v: 1;
  /** The req_id of the request this answers. */
  req_id: string;
  /** Always true here: the method succeeded. */
  ok: true;
  /** The method's result. */
  result: T;
}

/** A failed response envelope. */
export interface ErrorResponse {
  /** The protocol version; always 1. */
  v: 1;
  /** The req_id of the request this answers ("" when it could not be read). */
  req_id: string;
  /** Always false here: the request was refused. */
  ok: false;
  /** Why it was refused. */
  error: ErrorBody;
}

/** Any response envelope. */
export type Response<T = unknown> = OkResponse<T> | ErrorResponse;

/** A request that failed validation, with whatever req_id could be salvaged. */
export class EnvelopeError extends StrataError {
  /** The req_id to echo in the error response ("" when none was readable). */
  readonly reqId: string;
  constructor(reqId: string, message: string) {
    super("INVALID_ARGUMENT", message);
    this.reqId = reqId;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Lenient = new TextDecoder("utf-8");

/**
 * A frame body's text, refusing invalid UTF-8. Deno decodes without `fatal`
 * on a fast path (0.11 µs for a 950-byte request here, against 0.52 µs
 * through the strict decoder), which turns each invalid sequence into
 * U+FFFD: only a text that holds U+FFFD (invalid bytes, or that character
 * sent as such) is decoded again strictly, which throws for invalid bytes.
 */
function decodeUtf8(body: Uint8Array): string {
  const text = utf8Lenient.decode(body);
  return text.includes("\uFFFD") ? utf8.decode(body) : text;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/**
 * Decodes and validates one request frame body.
 * Throws EnvelopeError naming the field at fault.
 */
export function parseRequest(body: Uint8Array): Request {
  let text: string;
  try {
    text = decodeUtf8(body);
  } catch {
    throw new EnvelopeError("", "frame: body is not valid UTF-8");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new EnvelopeError("", "frame: body is not valid JSON");
  }
  if (!isPlainObject(raw)) {
    throw new EnvelopeError("", "request: must be a JSON object {v, req_id, method, params?}");
  }
  const reqId = typeof raw.req_id === "string" && raw.req_id.length <= MAX_REQ_ID ? raw.req_id : "";
  if (raw.v !== PROTOCOL_VERSION) {
    throw new EnvelopeError(
      reqId,
      `v: protocol version must be 1 (got ${JSON.stringify(raw.v) ?? "nothing"})`,
    );
  }
  if (typeof raw.req_id !== "string" || raw.req_id.length === 0) {
    throw new EnvelopeError(reqId, "req_id: must be a non-empty string");
  }
  if (raw.req_id.length > MAX_REQ_ID) {
    throw new EnvelopeError("", `req_id: must be at most ${MAX_REQ_ID} characters`);
  }
  if (typeof raw.method !== "string" || !METHOD_RE.test(raw.method)) {
    throw new EnvelopeError(
      reqId,
      'method: must be a string of the form "service.action", e.g. "fs.list"',
    );
  }
  const req: Request = { v: 1, req_id: raw.req_id, method: raw.method };
  if (raw.auth !== undefined && raw.auth !== null) {
    if (!isPlainObject(raw.auth) || typeof raw.auth.token !== "string") {
      throw new EnvelopeError(reqId, "auth: must be an object {token: string}");
    }
    if (raw.auth.token.length > MAX_TOKEN) {
      throw new EnvelopeError(reqId, `auth.token: longer than ${MAX_TOKEN} characters`);
    }
    req.auth = { token: raw.auth.token };
  }
  if (raw.params !== undefined && raw.params !== null) {
    if (!isPlainObject(raw.params)) {
      throw new EnvelopeError(reqId, "params: must be a JSON object");
    }
    req.params = raw.params;
  }
  return req;
}

/** Builds a success response. */
export function okResponse<T>(reqId: string, result: T): OkResponse<T> {
  return { v: 1, req_id: reqId, ok: true, result };
}

/** Builds an error response. */
export function errorResponse(reqId: string, err: StrataError): ErrorResponse {
  return { v: 1, req_id: reqId, ok: false, error: err.toBody() };
}

/** Validates a decoded response envelope (used by clients). */
export function parseResponse(raw: unknown): Response {
  if (!isPlainObject(raw) || raw.v !== PROTOCOL_VERSION || typeof raw.req_id !== "string") {
    throw invalidArgument("response: not a protocol v1 envelope");
  }
  if (raw.ok === true) return raw as unknown as OkResponse;
  if (raw.ok === false && isPlainObject(raw.error)) return raw as unknown as ErrorResponse;
  throw invalidArgument("response: missing ok/result/error");
}
