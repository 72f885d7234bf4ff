/**
 * identity's methods, declared once: minting, revoking and introspecting
 * capability tokens, rotating the signing key, the published key set.
 * @module
 */

import { healthSpec, type MethodSpec } from "./method.ts";

/** The longest token lifetime identity grants: one year. */
export const MAX_TTL_SECONDS = 365 * 24 * 3600;

/** Capabilities one identity.list answer returns at most. */
export const LIST_MAX = 2000;

const CAP_ID = {
  type: "string",
  pattern: /^[0-9a-f]{32}$/,
  hint: "must be 32 hex digits",
} as const;

/** Every method identity answers. */
export const IDENTITY_METHODS: readonly MethodSpec[] = [
  healthSpec("identity"),
  {
    name: "identity.issue",
    access: { right: "identity.issue" },
    params: {
      service: { type: "string", minLength: 1, maxLength: 32 },
      actions: { type: "string[]", optional: true, maxItems: 32, maxItemLength: 64 },
      rights: { type: "string[]", optional: true, maxItems: 32, maxItemLength: 64 },
      path_prefix: { type: "string", optional: true, maxLength: 4096 },
      ttl_seconds: { type: "integer", optional: true, min: 1, max: MAX_TTL_SECONDS },
      rate_limit: { type: "string", optional: true, maxLength: 16 },
      sub: { type: "string", optional: true, minLength: 1, maxLength: 128 },
    },
    summary: "mint a capability token (no broader than yours)",
    example: { service: "fs", actions: ["open", "read", "list"], path_prefix: "/tmp" },
  },
  {
    name: "identity.revoke",
    access: { right: "identity.revoke" },
    params: {
      cap_id: { ...CAP_ID, optional: true },
      token: { type: "string", optional: true, minLength: 1, maxLength: 8192 },
      confirm_root: { type: "boolean", optional: true },
    },
    summary: "revoke a capability and everything delegated from it",
    example: { cap_id: "<cap_id>" },
  },
  {
    name: "identity.introspect",
    access: "public",
    params: { token: { type: "string", minLength: 1, maxLength: 8192 } },
    summary: "is this token valid, and what does it say",
    example: { token: "<token>" },
  },
  {
    name: "identity.rotate_key",
    access: { right: "identity.rotate_key" },
    params: {},
    summary: "sign with a new key from now on (operator only)",
  },
  {
    name: "identity.list",
    access: { right: "identity.list" },
    params: {
      service: { type: "string", optional: true, minLength: 1, maxLength: 32 },
      sub: { type: "string", optional: true, minLength: 1, maxLength: 128 },
      revoked: { type: "boolean", optional: true },
      limit: { type: "integer", default: 1000, min: 1, max: LIST_MAX },
    },
    summary: "the live capabilities identity issued (the operator: all; others: their own tree)",
    example: { service: "fs", limit: 100 },
  },
  {
    name: "identity.keys",
    access: "public",
    params: {},
    summary: "the published public key set",
  },
];

/** One live capability, as identity.list returns it. */
export interface ListedCapability {
  /** Its id. */
  cap_id: string;
  /** Who it was issued to. */
  sub: string;
  /** The service it is for ("*": every service). */
  service: string;
  /** Its rights. */
  rights: string[];
  /** The folder it is confined to. */
  path_prefix?: string;
  /** Its own rate limit, e.g. "50rps" (its ancestors' limits count too). */
  rate_limit?: string;
  /** Issued at (unix seconds). */
  iat: number;
  /** Expires at (unix seconds). */
  exp: number;
  /** The capability it was delegated from. */
  parent?: string;
  /** Every ancestor, root first (empty for the operator token). */
  chain: string[];
  /** It, or an ancestor, is revoked. */
  revoked: boolean;
  /** The ancestor whose revocation revoked it. */
  revoked_via?: string;
}
