/**
 * Protocol error codes and the error value every Strata service returns.
 *
 * Errors are values: a numeric code, its stable name and a message that names
 * the field at fault and the fix. See api/protocol.md, "Errors".
 * @module
 */

/** Numeric protocol error codes (api/protocol.md is the source of truth). */
export const ErrorCode = {
  INVALID_ARGUMENT: 1,
  UNAUTHENTICATED: 2,
  PERMISSION_DENIED: 3,
  NOT_FOUND: 4,
  INTERNAL: 5,
  UNAVAILABLE: 6,
  RESOURCE_EXHAUSTED: 7,
  CONFLICT: 8,
} as const;

/** The name of a protocol error code, e.g. "PERMISSION_DENIED". */
export type ErrorName = keyof typeof ErrorCode;

/** The error object carried in a response envelope. */
export interface ErrorBody {
  /** The numeric protocol code, e.g. 3. */
  code: number;
  /** The code's name, e.g. "PERMISSION_DENIED". */
  name: ErrorName;
  /** What went wrong and how to fix it, for people. */
  message: string;
  /** Machine-readable facts, e.g. `{reason: "missing_right"}`. */
  details?: Record<string, unknown>;
}

const NAMES = new Map<number, ErrorName>(
  Object.entries(ErrorCode).map(([name, code]) => [code, name as ErrorName]),
);

/** Returns the name for a numeric code, or undefined for an unknown code. */
export function errorName(code: number): ErrorName | undefined {
  return NAMES.get(code);
}

/** An error that travels over the wire as `{code, name, message, details}`. */
export class StrataError extends Error {
  /** The protocol name of the error, e.g. "NOT_FOUND". */
  readonly errorName: ErrorName;
  /** Extra machine-readable facts about the failure. */
  readonly details?: Record<string, unknown>;

  /** An error with a protocol name, a message naming the field and fix, and details. */
  constructor(
    name: ErrorName,
    message: string,
    details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "StrataError";
    this.errorName = name;
    this.details = details;
  }

  /** The numeric protocol code. */
  get code(): number {
    return ErrorCode[this.errorName];
  }

  /** The wire form of this error. */
  toBody(): ErrorBody {
    const body: ErrorBody = {
      code: this.code,
      name: this.errorName,
      message: this.message,
    };
    if (this.details) body.details = this.details;
    return body;
  }
}

/** Shorthand for an INVALID_ARGUMENT error that names the field at fault. */
export function invalidArgument(
  message: string,
  details?: Record<string, unknown>,
): StrataError {
  return new StrataError("INVALID_ARGUMENT", message, details);
}

/** Shorthand for a PERMISSION_DENIED error. */
export function permissionDenied(
  message: string,
  details?: Record<string, unknown>,
): StrataError {
  return new StrataError("PERMISSION_DENIED", message, details);
}

/** Shorthand for an UNAUTHENTICATED error. */
export function unauthenticated(
  message: string,
  details?: Record<string, unknown>,
): StrataError {
  return new StrataError("UNAUTHENTICATED", message, details);
}

/** Shorthand for a NOT_FOUND error. */
export function notFound(
  message: string,
  details?: Record<string, unknown>,
): StrataError {
  return new StrataError("NOT_FOUND", message, details);
}

/**
 * Converts anything thrown by a handler into a StrataError.
 *
 * Deno's own refusals (NotCapable, PermissionDenied) become PERMISSION_DENIED
 * and a missing file NOT_FOUND, so a sandbox refusal never surfaces as a crash.
 */
export function toStrataError(err: unknown): StrataError {
  if (err instanceof StrataError) return err;
  if (err instanceof Deno.errors.NotCapable) {
    return permissionDenied(
      "refused by the service's sandbox: the path is outside what this service may access",
    );
  }
  if (err instanceof Deno.errors.PermissionDenied) {
    return permissionDenied("refused by the operating system: permission denied");
  }
  if (err instanceof Deno.errors.NotFound) {
    return notFound("no such file or directory");
  }
  if (err instanceof Deno.errors.IsADirectory) {
    return invalidArgument("path: is a directory; use fs.list for directories");
  }
  if (err instanceof Deno.errors.NotADirectory) {
    return invalidArgument("path: a component of the path is not a directory");
  }
  return new StrataError("INTERNAL", "internal error; see the service's log");
}
