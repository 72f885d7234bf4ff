/**
 * Constraints (path_prefix, rate_limit) and delegation by attenuation: a
 * child capability is never broader than the one that minted it.
 * @module
 */

import { isWithin, posix } from "../runtime/paths.ts";
import { invalidArgument, permissionDenied } from "../wire/errors.ts";
import type { Capability, Constraints, RateBucket } from "../token/claims.ts";
import { rfc3339 } from "../token/claims.ts";
import { parseRate } from "./rate_limit.ts";
import { ANY_SERVICE, isRoot } from "./rights.ts";
import { MAX_TTL_SECONDS } from "../api/identity.ts";

/** The longest token lifetime identity grants: one year (declared with identity.issue). */
export { MAX_TTL_SECONDS };

/**
 * Normalises an absolute path (collapses "." and "..", drops a trailing
 * slash). Throws INVALID_ARGUMENT for relative paths and NUL bytes.
 */
export function normalizeAbsolute(path: string, field: string): string {
  if (path.includes("\0")) throw invalidArgument(`${field}: contains a NUL byte`);
  if (!posix.isAbsolute(path)) {
    throw invalidArgument(`${field}: must be an absolute path such as /srv/data`);
  }
  // Most paths are already normal: no empty, "." or ".." name, no trailing slash.
  if (!NOT_NORMAL_RE.test(path)) return path;
  const n = posix.normalize(path);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

/** An empty, "." or ".." name, or a trailing slash: what normalizing changes. */
const NOT_NORMAL_RE = /\/\/|\/\.\.?(?:\/|$)|.\/$/;

/** What an issue request asks for, after its rights were resolved. */
export interface GrantRequest {
  /** The cap_id the new token will have. */
  cap_id: string;
  service: string;
  rights: string[];
  path_prefix?: string;
  rate_limit?: string;
  /** Requested lifetime; undefined means "the default, capped by the parent". */
  ttl_seconds?: number;
}

/** The grant a parent may make: what the child token will carry. */
export interface Grant {
  service: string;
  rights: string[];
  constraints: Constraints;
  expMs: number;
}

/** The buckets a capability draws from (its own rate_limit alone for a root token). */
export function rateBuckets(cap: Capability): RateBucket[] {
  const c = cap.claims.constraints;
  if (c.rate_buckets) return c.rate_buckets;
  return c.rate_limit !== undefined ? [{ cap_id: cap.capId, rate_limit: c.rate_limit }] : [];
}

/** The default token lifetime. */
export const DEFAULT_TTL_SECONDS = 3600;

/**
 * Checks that `req` is no broader than `parent` and returns the child grant:
 * rights a subset of the parent's, path_prefix inside the parent's, expiry no
 * later than the parent's, rate limit no looser. Omitted constraints inherit
 * the parent's. Throws PERMISSION_DENIED naming the field that is too broad.
 */
export function attenuate(parent: Capability, req: GrantRequest, nowMs: number): Grant {
  const p = parent.claims;
  if (p.service !== ANY_SERVICE && req.service !== p.service) {
    throw permissionDenied(
      `params.service: your capability is for ${p.service}; it cannot mint tokens for ${req.service}`,
      { reason: "broader_than_parent", field: "service" },
    );
  }
  // The root capability holds every right, present and future: it delegates any.
  const extra = isRoot(parent) ? [] : req.rights.filter((r) => !p.rights.includes(r));
  if (extra.length > 0) {
    throw permissionDenied(
      `params.rights: ${extra.join(", ")} not held by your capability, so it cannot delegate them`,
      { reason: "broader_than_parent", field: "rights" },
    );
  }
  const constraints: Constraints = {};
  const parentPrefix = p.constraints.path_prefix;
  if (req.path_prefix !== undefined) {
    const prefix = normalizeAbsolute(req.path_prefix, "params.path_prefix");
    if (parentPrefix !== undefined && !isWithin(prefix, parentPrefix)) {
      throw permissionDenied(
        `params.path_prefix: ${prefix} is outside your capability's path_prefix ${parentPrefix}`,
        { reason: "broader_than_parent", field: "path_prefix" },
      );
    }
    constraints.path_prefix = prefix;
  } else if (parentPrefix !== undefined) {
    constraints.path_prefix = parentPrefix;
  }
  const parentRate = p.constraints.rate_limit ? parseRate(p.constraints.rate_limit) : undefined;
  if (req.rate_limit !== undefined) {
    const rate = parseRate(req.rate_limit);
    if (!rate) {
      throw invalidArgument('params.rate_limit: must look like "50rps" (requests per second)');
    }
    if (parentRate && rate.perSecond > parentRate.perSecond) {
      throw permissionDenied(
        `params.rate_limit: ${req.rate_limit} is looser than your capability's ${p.constraints.rate_limit}`,
        { reason: "broader_than_parent", field: "rate_limit" },
      );
    }
    constraints.rate_limit = req.rate_limit;
    constraints.rate_buckets = [...rateBuckets(parent), {
      cap_id: req.cap_id,
      rate_limit: req.rate_limit,
    }];
  } else if (p.constraints.rate_limit !== undefined) {
    // Inherited: the child counts in its ancestors' buckets.
    constraints.rate_limit = p.constraints.rate_limit;
    constraints.rate_buckets = rateBuckets(parent);
  }
  let expMs: number;
  if (req.ttl_seconds !== undefined) {
    expMs = nowMs + req.ttl_seconds * 1000;
    if (expMs > parent.expMs) {
      const left = Math.max(0, Math.floor((parent.expMs - nowMs) / 1000));
      throw permissionDenied(
        `params.ttl_seconds: would outlive your capability, which expires at ${
          rfc3339(parent.expMs)
        }; ask for at most ${left}`,
        { reason: "broader_than_parent", field: "ttl_seconds" },
      );
    }
  } else {
    expMs = Math.min(nowMs + DEFAULT_TTL_SECONDS * 1000, parent.expMs);
  }
  return { service: req.service, rights: req.rights, constraints, expMs };
}
