/**
 * The one place that says yes or no to a request.
 *
 * Every protected method of every service goes through {@link authorize}:
 * token present, signature valid, issuer and audience right, not before nbf,
 * not expired, not revoked (itself or any ancestor), issued for this service,
 * right held, rate limit met. Path constraints are checked where the path is
 * resolved, by policy/paths and fs/confined. Anything not explicitly public needs a right.
 * @module
 */

import type { Access } from "../api/method.ts";
import { StrataError } from "../wire/errors.ts";
import { type Capability, ClaimsError } from "../token/claims.ts";
import { TokenError } from "../token/paseto.ts";
import type { RevocationSet } from "../token/revocation_set.ts";
import type { TokenVerifier } from "../token/verifier.ts";
import { parseRate, type RateLimiter } from "./rate_limit.ts";
import { rateBuckets } from "./constraints.ts";
import { ANY_SERVICE, isRoot } from "./rights.ts";

/** What authorize needs to know besides the token. */
export interface AuthorizeContext {
  /** The service answering, e.g. "fs". */
  service: string;
  verifier: TokenVerifier;
  revoked: RevocationSet;
  limiter: RateLimiter;
  /** The time to judge expiry by (epoch ms); defaults to now. */
  now?: number;
  /**
   * Cluster mode: why this node cannot vouch for tokens of `issuer` now (cut
   * off from etcd past the partition bound), or undefined when it can.
   */
  cannotVouch?: (issuer: string) => string | undefined;
}

/** Builds a refusal whose details carry the reason for the audit log. */
function deny(
  name: "UNAUTHENTICATED" | "PERMISSION_DENIED" | "RESOURCE_EXHAUSTED" | "UNAVAILABLE",
  reason: string,
  message: string,
  extra: Record<string, unknown> = {},
): StrataError {
  return new StrataError(name, message, { reason, ...extra });
}

/**
 * Checks a capability that has already been verified against the time, the
 * revocation list, the service and the right. Throws the refusal.
 */
export function checkCapability(
  cap: Capability,
  right: string | undefined,
  ctx: Omit<AuthorizeContext, "verifier" | "limiter">,
): void {
  const now = ctx.now ?? Date.now();
  if (now < cap.nbfMs) {
    throw deny(
      "UNAUTHENTICATED",
      "not_yet_valid",
      `token: not valid before ${cap.claims.nbf}`,
      { cap_id: cap.capId },
    );
  }
  if (now >= cap.expMs) {
    throw deny(
      "UNAUTHENTICATED",
      "expired",
      `token: expired at ${cap.claims.exp}; ask identity.issue for a new one`,
      { cap_id: cap.capId },
    );
  }
  const cutOff = ctx.cannotVouch?.(cap.claims.iss);
  if (cutOff !== undefined) {
    throw deny("UNAVAILABLE", "partitioned", `token: issued by ${cap.claims.iss}; ${cutOff}`, {
      cap_id: cap.capId,
    });
  }
  const revoked = ctx.revoked.revokedIn(cap.lineage);
  if (revoked !== undefined) {
    throw deny(
      "UNAUTHENTICATED",
      "revoked",
      revoked === cap.capId
        ? `token: capability ${revoked} has been revoked`
        : `token: capability ${cap.capId} was delegated from ${revoked}, which has been revoked`,
      { cap_id: cap.capId },
    );
  }
  if (right === undefined) return;
  if (cap.claims.service !== ANY_SERVICE && cap.claims.service !== ctx.service) {
    throw deny(
      "PERMISSION_DENIED",
      "wrong_service",
      `token: issued for service ${cap.claims.service}, not ${ctx.service}`,
      { cap_id: cap.capId },
    );
  }
  // The root capability holds every right, present and future.
  if (!isRoot(cap) && !cap.claims.rights.includes(right)) {
    throw deny(
      "PERMISSION_DENIED",
      "missing_right",
      `token: lacks the right ${right} (it has ${cap.claims.rights.join(", ") || "none"})`,
      { cap_id: cap.capId, right },
    );
  }
}

/**
 * Authorizes one request. Returns the caller's capability for protected
 * methods (undefined for public ones) or throws the refusal.
 */
export async function authorize(
  token: string | undefined,
  access: Access,
  ctx: AuthorizeContext,
): Promise<Capability | undefined> {
  return await authorizeNow(token, access, ctx);
}

/**
 * {@link authorize} without a promise when the token's verification needs
 * none (a cached token, or its key at hand): a server then answers the
 * request within the turn it arrived in. Throws the refusal.
 */
export function authorizeNow(
  token: string | undefined,
  access: Access,
  ctx: AuthorizeContext,
): Capability | undefined | Promise<Capability | undefined> {
  if (access === "public") return undefined;
  if (token === undefined || token === "") {
    throw deny(
      "UNAUTHENTICATED",
      "no_token",
      `auth.token: ${access.right} needs a capability token; pass one with -token or STRATA_TOKEN`,
    );
  }
  let verified: Capability | Promise<Capability>;
  try {
    verified = ctx.verifier.verify(token);
  } catch (err) {
    throw refusalOf(err);
  }
  const right = access.right;
  if (verified instanceof Promise) {
    return verified.then((cap) => admit(cap, right, ctx), (err) => {
      throw refusalOf(err);
    });
  }
  return admit(verified, right, ctx);
}

/** A token the verifier refused, as the request's refusal. */
function refusalOf(err: unknown): unknown {
  if (err instanceof TokenError || err instanceof ClaimsError) {
    return deny("UNAUTHENTICATED", err.reason, err.message);
  }
  return err;
}

/** Checks a verified capability's validity, right and rate limits; returns it. */
function admit(cap: Capability, right: string, ctx: AuthorizeContext): Capability {
  checkCapability(cap, right, ctx);
  const buckets = rateBuckets(cap).flatMap((b) => {
    const rate = parseRate(b.rate_limit);
    return rate ? [{ key: b.cap_id, rate, text: b.rate_limit }] : [];
  });
  if (buckets.length > 0) {
    const { wait, blocked } = ctx.limiter.takeAll(buckets);
    if (wait > 0) {
      const b = buckets[blocked!];
      throw deny(
        "RESOURCE_EXHAUSTED",
        "rate_limited",
        `rate limit ${b.text} of capability ${b.key} exceeded; retry in ${wait} ms`,
        { cap_id: cap.capId, retry_after_ms: wait },
      );
    }
  }
  return cap;
}
