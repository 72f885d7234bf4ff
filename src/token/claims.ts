/**
 * The claims a Strata capability token carries, and their strict parsing.
 * @module
 */

/** The audience every Strata token is minted for. */
export const AUDIENCE = "strata";

/** The deepest delegation chain accepted (root counts as depth 0). */
export const MAX_CHAIN = 8;

/** Constraints that narrow what a token's rights reach. */
export interface Constraints {
  /** Absolute, normalised path the token's file access is confined to. */
  path_prefix?: string;
  /** Request rate per capability, e.g. "50rps" (the tightest that applies). */
  rate_limit?: string;
  /**
   * Every rate limit the token draws from: the one set on this token, if any,
   * and those inherited from its ancestors, each keyed by the cap_id that set
   * it, so children share their ancestors' buckets instead of multiplying them.
   */
  rate_buckets?: RateBucket[];
}

/** A rate limit and the capability whose bucket it counts in. */
export interface RateBucket {
  /** The capability that set the limit, whose bucket is shared by its descendants. */
  cap_id: string;
  /** The limit, e.g. "50rps". */
  rate_limit: string;
}

/** The signed payload of a capability token. */
export interface Claims {
  /** The capability id (random hex); the same as cap_id. */
  jti: string;
  /** Who the capability was issued to. */
  sub: string;
  /** "identity@<node_id>". */
  iss: string;
  /** Always "strata". */
  aud: string;
  /** Issued at (RFC 3339). */
  iat: string;
  /** Not valid before (RFC 3339). */
  nbf: string;
  /** Expires at (RFC 3339). */
  exp: string;
  /** The service the token is for ("*" only for the operator token). */
  service: string;
  /** Rights without the service prefix, for callers of the v1 seed API. */
  actions: string[];
  /** Full rights, e.g. "fs.read". */
  rights: string[];
  /** What narrows the rights: the path prefix and the rate limits. */
  constraints: Constraints;
  /** cap_id of the token this one was delegated from. */
  parent?: string;
  /** cap_ids of every ancestor, root first. */
  chain?: string[];
}

/** Claims that passed every structural check, with parsed times. */
export interface Capability {
  claims: Claims;
  capId: string;
  expMs: number;
  nbfMs: number;
  /** The cap_ids whose revocation revokes this token: ancestors, then itself. */
  lineage: string[];
}

/** Claims that are not what a Strata token must carry. */
export class ClaimsError extends Error {
  /** "malformed_claims", "wrong_issuer" or "wrong_audience". */
  readonly reason: "malformed_claims" | "wrong_issuer" | "wrong_audience";
  constructor(reason: ClaimsError["reason"], message: string) {
    super(message);
    this.name = "ClaimsError";
    this.reason = reason;
  }
}

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const CAP_ID_RE = /^[0-9a-f]{32}$/;

/** Formats epoch milliseconds as an RFC 3339 UTC time with whole seconds. */
export function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/** Parses an RFC 3339 time to epoch milliseconds, or NaN. */
export function parseRfc3339(text: unknown): number {
  if (typeof text !== "string" || !RFC3339_RE.test(text)) return NaN;
  return Date.parse(text);
}

/** A fresh random capability id (128 bits, hex). */
export function newCapId(): string {
  return crypto.getRandomValues(new Uint8Array(16)).toHex();
}

function isStringList(x: unknown, max: number): x is string[] {
  return Array.isArray(x) && x.length <= max && x.every((s) => typeof s === "string");
}

function fail(message: string): never {
  throw new ClaimsError("malformed_claims", `token: ${message}`);
}

/** Options for {@link parseClaims}. */
export interface ParseClaimsOptions {
  /** The issuer this node trusts, "identity@<node_id>". */
  issuer: string;
  /** Cluster mode: the other issuers accepted (each endorsed identity of the cluster), live. */
  issuers?: ReadonlySet<string>;
  /** The audience tokens must name: the cluster's name, else {@link AUDIENCE}. */
  audience?: string;
}

/** Checks a verified payload's shape, issuer and audience. */
export function parseClaims(payload: unknown, options: ParseClaimsOptions): Capability {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    fail("payload is not an object");
  }
  const c = payload as Record<string, unknown>;
  if (typeof c.jti !== "string" || !CAP_ID_RE.test(c.jti)) fail("jti is not a capability id");
  if (c.iss !== options.issuer && !(typeof c.iss === "string" && options.issuers?.has(c.iss))) {
    throw new ClaimsError(
      "wrong_issuer",
      options.issuers
        ? `token: issued by ${JSON.stringify(c.iss)}, not by an endorsed identity of this cluster`
        : `token: issued by ${
          JSON.stringify(c.iss)
        }, not by this node's identity (${options.issuer})`,
    );
  }
  const audience = options.audience ?? AUDIENCE;
  if (c.aud !== audience) {
    throw new ClaimsError("wrong_audience", `token: audience is not "${audience}"`);
  }
  const expMs = parseRfc3339(c.exp);
  const nbfMs = parseRfc3339(c.nbf);
  if (Number.isNaN(expMs)) fail("exp is not an RFC 3339 time");
  if (Number.isNaN(nbfMs)) fail("nbf is not an RFC 3339 time");
  if (Number.isNaN(parseRfc3339(c.iat))) fail("iat is not an RFC 3339 time");
  if (typeof c.sub !== "string") fail("sub is not a string");
  if (typeof c.service !== "string") fail("service is not a string");
  if (!isStringList(c.rights, 64)) fail("rights is not a list of strings");
  if (!isStringList(c.actions, 64)) fail("actions is not a list of strings");
  const cons = c.constraints ?? {};
  if (typeof cons !== "object" || cons === null || Array.isArray(cons)) {
    fail("constraints is not an object");
  }
  const { path_prefix, rate_limit, rate_buckets } = cons as Record<string, unknown>;
  if (path_prefix !== undefined && typeof path_prefix !== "string") {
    fail("constraints.path_prefix is not a string");
  }
  if (rate_limit !== undefined && typeof rate_limit !== "string") {
    fail("constraints.rate_limit is not a string");
  }
  if (
    rate_buckets !== undefined &&
    (!Array.isArray(rate_buckets) || rate_buckets.length > MAX_CHAIN + 1 ||
      !rate_buckets.every((b) =>
        typeof b?.cap_id === "string" && CAP_ID_RE.test(b.cap_id) &&
        typeof b.rate_limit === "string"
      ))
  ) {
    fail("constraints.rate_buckets is not a list of {cap_id, rate_limit}");
  }
  const chain = c.chain ?? [];
  if (!isStringList(chain, MAX_CHAIN) || !chain.every((id) => CAP_ID_RE.test(id))) {
    fail("chain is not a list of capability ids");
  }
  if (c.parent !== undefined && c.parent !== chain[chain.length - 1]) {
    fail("parent is not the last entry of chain");
  }
  // A token without constraints has none: normalise to {} for every reader.
  c.constraints = cons;
  return {
    claims: c as unknown as Claims,
    capId: c.jti,
    expMs,
    nbfMs,
    lineage: [...chain, c.jti],
  };
}
