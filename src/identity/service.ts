/**
 * The identity service: mints capability tokens (only for callers whose own
 * capability allows it, never broader than theirs), revokes them durably and
 * tells every service at once, rotates the signing key, and publishes the
 * key set and the signed revocation list in the runtime dir.
 * @module
 */

import { callOnce } from "../ipc/client.ts";
import { invalidArgument, permissionDenied, StrataError } from "../ipc/errors.ts";
import type { Method } from "../ipc/server.ts";
import { checkCapability } from "../policy/authorize.ts";
import { attenuate, MAX_TTL_SECONDS } from "../policy/constraints.ts";
import { actionOf, allRights, ANY_SERVICE, resolveRights } from "../policy/rights.ts";
import type { Audit } from "../runtime/audit.ts";
import {
  issuerOf,
  type Layout,
  runtimeFiles,
  type ServiceName,
  socketPath,
  stateFiles,
} from "../runtime/config.ts";
import { writeFileAtomic } from "../runtime/files.ts";
import type { Logger } from "../runtime/log.ts";
import {
  AUDIENCE,
  type Capability,
  type Claims,
  type Constraints,
  MAX_CHAIN,
  newCapId,
  rfc3339,
} from "../token/claims.ts";
import { signV4Public } from "../token/paseto.ts";
import { LIST_CHUNK, type RevokedEntry, signRevocationList } from "../token/revocation_set.ts";
import type { Trust } from "../token/trust.ts";
import type { KeyRing } from "./keyring.ts";
import type { RevocationLog } from "./revocations.ts";

/** The services identity pushes revocations to. */
export const PUSH_TARGETS: readonly ServiceName[] = ["registry", "fs", "supervisor"];

/** Lifetime of the operator token. */
const OPERATOR_TTL_MS = 365 * 24 * 3600_000;

/** An operator token with less left than this is replaced at start. */
const OPERATOR_RENEW_MS = 30 * 24 * 3600_000;

/** Live revocations identity keeps at most (each is dropped once its token has expired). */
export const MAX_LIVE_REVOCATIONS = 100_000;

/**
 * Live revocations one delegated capability, together with everything
 * delegated from it, may have made.
 */
export const MAX_REVOCATIONS_PER_CALLER = 1000;

/** Live revocations kept for the operator token alone: delegated ones stop short of them. */
export const OPERATOR_RESERVED_REVOCATIONS = 10_000;

/** How long identity waits for each service to take a push. */
const PUSH_TIMEOUT_MS = 1000;

const CAP_ID = {
  type: "string",
  pattern: /^[0-9a-f]{32}$/,
  hint: "must be 32 hex digits",
} as const;

/** What a successful issue returns. */
export interface Issued {
  token: string;
  cap_id: string;
  expires: number;
}

/** What identity is built from. */
export interface IdentityDeps {
  layout: Layout;
  ring: KeyRing;
  revocations: RevocationLog;
  trust: Trust;
  audit: Audit;
  log: Logger;
}

/** Identity's state and methods. */
export class IdentityService {
  #d: IdentityDeps;
  #issuer: string;
  /** The cap_id of the operator token in the state dir. */
  #operatorCap?: string;

  constructor(deps: IdentityDeps) {
    this.#d = deps;
    this.#issuer = issuerOf(deps.layout);
  }

  /** Writes the public key set to identity.pub (atomically). */
  publishKeys(): void {
    const rt = runtimeFiles(this.#d.layout);
    writeFileAtomic(
      rt.identityPub,
      JSON.stringify(this.#d.ring.publicDocument(this.#issuer), null, 2) + "\n",
      { tmpPath: rt.identityPubTmp, mode: 0o644, durable: false },
    );
  }

  /**
   * Writes every live revocation to the runtime dir's list file, signed in
   * lines of LIST_CHUNK entries (at start, and after a key rotation).
   */
  async publishRevocations(): Promise<void> {
    const rt = runtimeFiles(this.#d.layout);
    const entries = this.#d.revocations.set.entries();
    // At least one line: an empty list, signed, says "nothing is revoked".
    const lines: string[] = [];
    for (let i = 0; i === 0 || i < entries.length; i += LIST_CHUNK) {
      const chunk = entries.slice(i, i + LIST_CHUNK);
      lines.push(await signRevocationList(this.#d.ring.active, this.#issuer, chunk) + "\n");
    }
    writeFileAtomic(rt.revocations, lines.join(""), {
      tmpPath: rt.revocationsTmp,
      mode: 0o600,
      durable: false,
    });
  }

  /** Appends one signed revocation to the list file (one write, one line). */
  #appendRevocation(signed: string): void {
    const file = Deno.openSync(runtimeFiles(this.#d.layout).revocations, {
      append: true,
      create: true,
      mode: 0o600,
    });
    try {
      file.writeSync(new TextEncoder().encode(signed + "\n"));
    } finally {
      file.close();
    }
  }

  /** Sends a signed list to every service; reports who took it. */
  async push(entries: RevokedEntry[]): Promise<{ propagated: string[]; unreachable: string[] }> {
    return await this.#pushSigned(
      await signRevocationList(this.#d.ring.active, this.#issuer, entries),
    );
  }

  async #pushSigned(signed: string): Promise<{ propagated: string[]; unreachable: string[] }> {
    const results = await Promise.allSettled(
      PUSH_TARGETS.map((svc) =>
        callOnce(socketPath(this.#d.layout, svc), `${svc}.sync`, { signed }, {
          timeoutMs: PUSH_TIMEOUT_MS,
          connectTimeoutMs: PUSH_TIMEOUT_MS,
        })
      ),
    );
    const propagated: string[] = [];
    const unreachable: string[] = [];
    results.forEach((r, i) =>
      (r.status === "fulfilled" ? propagated : unreachable).push(PUSH_TARGETS[i])
    );
    return { propagated, unreachable };
  }

  async #mint(
    body: Omit<Claims, "jti" | "iss" | "aud" | "iat" | "nbf" | "exp">,
    expMs: number,
    now: number,
    jti: string = newCapId(),
  ): Promise<Issued> {
    const issued = rfc3339(now);
    const claims: Claims = {
      jti,
      iss: this.#issuer,
      aud: AUDIENCE,
      iat: issued,
      nbf: issued,
      exp: rfc3339(expMs),
      ...body,
    };
    this.#d.ring.coverExpiry(expMs);
    const token = await signV4Public(this.#d.ring.active, claims);
    this.#d.audit.event("cap.issued", {
      cap_id: jti,
      parent: body.parent,
      sub: body.sub,
      service: body.service,
      rights: body.rights,
      exp: claims.exp,
    });
    return { token, cap_id: jti, expires: Math.floor(expMs / 1000) };
  }

  /**
   * Makes sure the state dir holds a usable operator token (every right, no
   * constraints), minting one on first start or when it is revoked, expiring
   * or signed by a key that is gone.
   */
  async ensureOperatorToken(): Promise<void> {
    const st = stateFiles(this.#d.layout);
    const now = Date.now();
    try {
      const cap = await this.#d.trust.verifier.verify(
        (await Deno.readTextFile(st.operatorToken)).trim(),
      );
      checkCapability(cap, undefined, { service: "identity", revoked: this.#d.revocations.set });
      if (cap.claims.service === ANY_SERVICE && cap.expMs - now > OPERATOR_RENEW_MS) {
        this.#operatorCap = cap.capId;
        return;
      }
    } catch {
      // Missing, unreadable, revoked or signed by a dropped key: mint anew.
    }
    const rights = allRights();
    const issued = await this.#mint(
      {
        sub: "operator",
        service: ANY_SERVICE,
        actions: [],
        rights,
        constraints: {},
      },
      now + OPERATOR_TTL_MS,
      now,
    );
    writeFileAtomic(st.operatorToken, issued.token + "\n", {
      tmpPath: st.operatorTokenTmp,
      mode: 0o600,
    });
    this.#operatorCap = issued.cap_id;
    this.#d.log.info("operator token written", { path: st.operatorToken, cap_id: issued.cap_id });
  }

  /** The methods identity serves. */
  methods(): Method[] {
    return [
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
        handler: (p, ctx) => this.#issue(p, ctx.cap!),
      },
      {
        name: "identity.revoke",
        access: { right: "identity.revoke" },
        params: {
          cap_id: { ...CAP_ID, optional: true },
          token: { type: "string", optional: true, minLength: 1, maxLength: 8192 },
        },
        handler: (p: { cap_id?: string; token?: string }, ctx) => this.#revoke(p, ctx.cap!),
      },
      {
        name: "identity.introspect",
        access: "public",
        params: { token: { type: "string", minLength: 1, maxLength: 8192 } },
        handler: (p: { token: string }) => this.#introspect(p.token),
      },
      {
        name: "identity.rotate_key",
        access: { right: "identity.rotate_key" },
        params: {},
        handler: (_p, ctx) => this.#rotate(ctx.cap!),
      },
      {
        name: "identity.keys",
        access: "public",
        params: {},
        handler: () => this.#d.ring.publicDocument(this.#issuer),
      },
    ];
  }

  async #issue(
    p: {
      service: string;
      actions?: string[];
      rights?: string[];
      path_prefix?: string;
      ttl_seconds?: number;
      rate_limit?: string;
      sub?: string;
    },
    parent: Capability,
  ): Promise<Issued> {
    const now = Date.now();
    const rights = resolveRights(p);
    const capId = newCapId();
    const grant = attenuate(parent, {
      cap_id: capId,
      service: p.service,
      rights,
      path_prefix: p.path_prefix,
      rate_limit: p.rate_limit,
      ttl_seconds: p.ttl_seconds,
    }, now);
    if (parent.lineage.length > MAX_CHAIN) {
      throw permissionDenied(
        `delegation is limited to ${MAX_CHAIN} levels; issue from a shallower token`,
        { reason: "broader_than_parent", field: "depth" },
      );
    }
    const constraints: Constraints = grant.constraints;
    const prefix = grant.service === ANY_SERVICE ? undefined : `${grant.service}.`;
    return await this.#mint(
      {
        sub: p.sub ?? parent.claims.sub,
        service: grant.service,
        actions: rights.map((r) => (prefix && r.startsWith(prefix) ? actionOf(r) : r)),
        rights,
        constraints,
        parent: parent.capId,
        chain: parent.lineage,
      },
      grant.expMs,
      now,
      capId,
    );
  }

  /**
   * Revokes a capability. The operator token may revoke any cap_id; any other
   * holder of identity.revoke only its own capability or ones delegated from
   * it, which it shows by passing the token (so its lineage can be read).
   */
  async #revoke(p: { cap_id?: string; token?: string }, by: Capability) {
    let target: { capId: string; lineage?: readonly string[]; expMs?: number };
    if (p.token !== undefined) {
      let cap: Capability;
      try {
        cap = await this.#d.trust.verifier.verify(p.token);
      } catch (err) {
        throw invalidArgument(`params.token: not a token of this node (${(err as Error).message})`);
      }
      if (p.cap_id !== undefined && p.cap_id !== cap.capId) {
        throw invalidArgument(`params.cap_id: the token's cap_id is ${cap.capId}, not ${p.cap_id}`);
      }
      target = cap;
    } else if (p.cap_id !== undefined) {
      target = { capId: p.cap_id };
    } else {
      throw invalidArgument("params: give cap_id, or the token to revoke");
    }
    const root = by.claims.service === ANY_SERVICE && by.claims.parent === undefined;
    if (!root && target.capId !== by.capId && !target.lineage?.includes(by.capId)) {
      throw permissionDenied(
        target.lineage
          ? `capability ${target.capId} was not delegated from yours (${by.capId})`
          : "params.cap_id: you may revoke only your own capability or ones delegated from it; " +
            "pass the token itself (params.token) so its lineage can be checked",
        { reason: "not_in_your_tree" },
      );
    }
    const capId = target.capId;
    // Keep the entry until no token with this id can still be valid.
    const expMs = target.expMs ??
      (target.capId === by.capId ? by.expMs : this.#d.ring.latestExpiry);
    const entry = { cap_id: capId, exp: Math.ceil(expMs / 1000) };
    // A delegated caller's revocations count against every ancestor below the
    // root token too, so a tree shares one quota; the last revocations are
    // kept for the operator, so its revoke is never refused for lack of room.
    const tree = by.lineage.length > 1 ? by.lineage.slice(1) : [by.capId];
    if (!root) {
      for (const id of tree) {
        const used = this.#d.revocations.countBy(id);
        if (used >= MAX_REVOCATIONS_PER_CALLER) {
          throw new StrataError(
            "RESOURCE_EXHAUSTED",
            `the delegation tree of capability ${id} already has ${used} live revocations, ` +
              "the most one may; they go as the tokens they name expire",
          );
        }
      }
    }
    const room = root ? MAX_LIVE_REVOCATIONS : MAX_LIVE_REVOCATIONS - OPERATOR_RESERVED_REVOCATIONS;
    if (this.#d.revocations.set.size >= room) {
      throw new StrataError(
        "RESOURCE_EXHAUSTED",
        `${this.#d.revocations.set.size} revocations are live, the most identity keeps` +
          (root ? "" : " for delegated tokens (the rest is the operator's)") +
          "; they go as the tokens they name expire",
      );
    }
    const fresh = this.#d.revocations.append(entry, by.capId, tree);
    if (!fresh) return { status: "revoked", cap_id: capId, already: true };
    // The list file first (for services that start meanwhile), then the push.
    const signed = await signRevocationList(this.#d.ring.active, this.#issuer, [entry]);
    this.#appendRevocation(signed);
    const spread = await this.#pushSigned(signed);
    this.#d.audit.event("cap.revoked", { cap_id: capId, by: by.capId, ...spread });
    if (capId === this.#operatorCap) {
      // The operator revoked its own token (and with it every token delegated
      // from it): write a new one at once rather than lock the operator out.
      await this.ensureOperatorToken();
    }
    if (spread.unreachable.length > 0) {
      this.#d.log.warn("revocation not pushed; those services will read the list file", {
        cap_id: capId,
        unreachable: spread.unreachable,
      });
    }
    return { status: "revoked", cap_id: capId, ...spread };
  }

  async #introspect(token: string) {
    let cap: Capability;
    try {
      cap = await this.#d.trust.verifier.verify(token);
    } catch (err) {
      return { valid: false, reason: (err as { reason?: string }).reason ?? "malformed" };
    }
    try {
      checkCapability(cap, undefined, { service: "identity", revoked: this.#d.revocations.set });
    } catch (err) {
      const reason = (err as { details?: { reason?: string } }).details?.reason ?? "invalid";
      return { valid: false, reason, claims: cap.claims };
    }
    return { valid: true, claims: cap.claims };
  }

  async #rotate(by: Capability) {
    // The operator token is the root: service "*" and no parent. A delegated
    // token may carry the right, but rotating the node's key is not delegable.
    if (by.claims.service !== ANY_SERVICE || by.claims.parent !== undefined) {
      throw permissionDenied("identity.rotate_key: only the operator token may rotate the key", {
        reason: "not_operator",
      });
    }
    const { previous, previousNotAfter } = await this.#d.ring.rotate();
    this.publishKeys();
    await this.publishRevocations();
    // The operator token is not replaced: the old key keeps verifying it, and
    // a second root token would stay valid beside it.
    const spread = await this.push([]);
    this.#d.audit.event("key.rotated", { kid: this.#d.ring.active.kid, previous, by: by.capId });
    return {
      kid: this.#d.ring.active.kid,
      previous,
      previous_valid_until: rfc3339(previousNotAfter),
      ...spread,
    };
  }
}
