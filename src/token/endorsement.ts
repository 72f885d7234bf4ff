/**
 * Endorsements: the cluster root's signature over one node identity's
 * published keys (cluster mode, docs/cluster.md). An endorsement is a
 * v4.public token signed by the root key, so anyone who can write to etcd
 * still cannot make a key trusted: a verifier takes a key only from an
 * endorsement that verifies against the root public key it was configured
 * with, names the cluster and node it is stored under, and has not expired.
 *
 * Each endorsement carries a per-node sequence number (`seq`), covered by the
 * root's signature and strictly increasing from one the root signs for a node
 * to the next; `cluster leave` signs a withdrawal (`withdrawn: true`, no keys)
 * with a higher one. A verifier that has seen seq N for a node refuses every
 * record of that node with a lower seq, so an older endorsement put back in
 * etcd (a replay) does not make its keys trusted again. Endorsements signed
 * before seq existed count as seq 0.
 * @module
 */

import { parseRfc3339, rfc3339 } from "./claims.ts";
import { fromB64url, parsePublicPaserk, type SigningKey, type VerifyKey } from "./keys.ts";
import { signV4Public, verifyV4Public } from "./paseto.ts";

/** The `typ` of an endorsement's payload. */
export const ENDORSEMENT_TYPE = "strata.endorsement";

/** One endorsed key: its id and its public PASERK. */
export interface EndorsedKey {
  kid: string;
  /** "k4.public.…" */
  public: string;
}

/** What the root signs. */
export interface EndorsementBody {
  /** The cluster's name. */
  cluster: string;
  /** The node whose identity's keys these are. */
  node: string;
  /** The keys tokens of `identity@<node>` may be signed with. */
  keys: EndorsedKey[];
  /** Epoch ms after which the endorsement no longer holds. */
  expMs: number;
  /**
   * The node's sequence number, higher than every earlier record the root signed for it
   * (default the time in ms; strata-ctl always gives it, see src/ctl/cluster.ts).
   */
  seq?: number;
  /** A withdrawal (`cluster leave`): the node's keys are no longer endorsed (then `keys` is empty). */
  withdrawn?: boolean;
}

/** An endorsement that verified: the issuer and its keys, each bound to that issuer. */
export interface Endorsement {
  /** "identity@<node>". */
  issuer: string;
  /** The endorsed keys, ready to verify, each with `issuer` set. */
  keys: VerifyKey[];
  /** When it stops holding (epoch ms). */
  expMs: number;
  /** Its sequence number (0 for one signed before seq existed). */
  seq: number;
  /** A withdrawal: the root says the node's keys are no longer endorsed (`keys` is empty). */
  withdrawn: boolean;
}

/** An endorsement that does not hold, with the reason in its message. */
export class EndorsementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EndorsementError";
  }
}

/** Signs an endorsement with the cluster's root key. */
export function signEndorsement(root: SigningKey, body: EndorsementBody): string {
  return signV4Public(root, {
    typ: ENDORSEMENT_TYPE,
    cluster: body.cluster,
    node: body.node,
    iss: `identity@${body.node}`,
    keys: body.withdrawn ? [] : body.keys.map((k) => ({ kid: k.kid, public: k.public })),
    seq: body.seq ?? Date.now(),
    ...(body.withdrawn ? { withdrawn: true } : {}),
    iat: rfc3339(Date.now()),
    exp: rfc3339(body.expMs),
  });
}

/**
 * Verifies an endorsement stored for `expect.node` against the root public
 * key: signature, type, cluster, node and expiry. Throws EndorsementError.
 */
export async function verifyEndorsement(
  signed: string,
  root: VerifyKey,
  expect: { cluster: string; node: string; now: number },
): Promise<Endorsement> {
  let payload: Record<string, unknown>;
  try {
    payload = await verifyV4Public(signed, (kid) => kid === root.kid ? root : undefined) as Record<
      string,
      unknown
    >;
  } catch (err) {
    throw new EndorsementError(
      `endorsement of ${expect.node}: not signed by the cluster root (${(err as Error).message})`,
    );
  }
  if (payload?.typ !== ENDORSEMENT_TYPE) {
    throw new EndorsementError(`endorsement of ${expect.node}: not an endorsement`);
  }
  if (payload.cluster !== expect.cluster || payload.node !== expect.node) {
    throw new EndorsementError(
      `endorsement of ${expect.node}: signed for ${String(payload.node)} in cluster ${
        String(payload.cluster)
      }`,
    );
  }
  const expMs = parseRfc3339(payload.exp);
  if (Number.isNaN(expMs) || expMs <= expect.now) {
    throw new EndorsementError(
      `endorsement of ${expect.node}: expired at ${
        String(payload.exp)
      }; run strata-ctl cluster join ${expect.node} again`,
    );
  }
  const issuer = `identity@${expect.node}`;
  // Without seq: signed before seq existed, counts as 0 (any newer record supersedes it).
  const seq = payload.seq === undefined ? 0 : payload.seq;
  const withdrawn = payload.withdrawn === true;
  if (
    payload.iss !== issuer || !Array.isArray(payload.keys) ||
    typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0 ||
    (withdrawn && payload.keys.length > 0)
  ) {
    throw new EndorsementError(`endorsement of ${expect.node}: malformed`);
  }
  const keys: VerifyKey[] = [];
  for (const k of payload.keys as EndorsedKey[]) {
    const key = await parsePublicPaserk(String(k?.public)).catch(() => undefined);
    if (!key || key.kid !== k.kid) {
      throw new EndorsementError(`endorsement of ${expect.node}: key ${String(k?.kid)} malformed`);
    }
    keys.push({ ...key, issuer });
  }
  return { issuer, keys, expMs, seq, withdrawn };
}

/**
 * The key ids an endorsement claims, read WITHOUT checking its signature:
 * only to name them in a refusal's reason, never to trust them.
 */
export function claimedKeyIds(signed: string): string[] {
  try {
    const body = fromB64url(signed.split(".")[2] ?? "");
    if (!body || body.length < 64) return [];
    const payload = JSON.parse(new TextDecoder().decode(body.subarray(0, body.length - 64)));
    return Array.isArray(payload?.keys)
      ? payload.keys.flatMap((k: EndorsedKey) => typeof k?.kid === "string" ? [k.kid] : [])
      : [];
  } catch {
    return [];
  }
}

/** The `typ` of a node's pending key set: keys it asks the operator to endorse. */
export const PENDING_KEYS_TYPE = "strata.pending_keys";

/**
 * A node identity's key set awaiting endorsement (after identity.rotate_key),
 * signed by one of its own keys that the root already endorses, so a writer
 * to etcd can neither forge one nor make its keys trusted: only the operator's
 * endorsement does that.
 */
export interface PendingKeys {
  /** "identity@<node>". */
  issuer: string;
  /** The keys the node publishes now (the new one and those still verifying old tokens). */
  keys: EndorsedKey[];
  /** The endorsed key that signed it. */
  signedBy: string;
  /** When identity signed it (epoch ms). */
  iatMs: number;
}

/** Signs a node's pending key set with `key`, one of its endorsed signing keys. */
export function signPendingKeys(
  key: SigningKey,
  body: { cluster: string; node: string; keys: EndorsedKey[] },
): string {
  return signV4Public(key, {
    typ: PENDING_KEYS_TYPE,
    cluster: body.cluster,
    node: body.node,
    iss: `identity@${body.node}`,
    keys: body.keys.map((k) => ({ kid: k.kid, public: k.public })),
    iat: rfc3339(Date.now()),
  });
}

/**
 * Verifies a pending key set stored for `expect.node`: signed by a key of the
 * node's endorsement that holds now (`endorsed`), for that cluster and node.
 * Throws EndorsementError.
 */
export async function verifyPendingKeys(
  signed: string,
  endorsed: Endorsement,
  expect: { cluster: string; node: string },
): Promise<PendingKeys> {
  let payload: Record<string, unknown>;
  let signedBy = "";
  try {
    payload = await verifyV4Public(signed, (kid) => {
      signedBy = kid;
      return endorsed.keys.find((k) => k.kid === kid);
    }) as Record<string, unknown>;
  } catch (err) {
    throw new EndorsementError(
      `pending keys of ${expect.node}: not signed by a key the root endorses for ` +
        `${endorsed.issuer} (${(err as Error).message})`,
    );
  }
  if (
    payload?.typ !== PENDING_KEYS_TYPE || payload.cluster !== expect.cluster ||
    payload.node !== expect.node || payload.iss !== endorsed.issuer ||
    !Array.isArray(payload.keys)
  ) {
    throw new EndorsementError(`pending keys of ${expect.node}: not ${expect.node}'s pending keys`);
  }
  const keys: EndorsedKey[] = [];
  for (const k of payload.keys as EndorsedKey[]) {
    const key = await parsePublicPaserk(String(k?.public)).catch(() => undefined);
    if (!key || key.kid !== k.kid) {
      throw new EndorsementError(`pending keys of ${expect.node}: key ${String(k?.kid)} malformed`);
    }
    keys.push({ kid: k.kid, public: k.public });
  }
  return { issuer: endorsed.issuer, keys, signedBy, iatMs: parseRfc3339(payload.iat) };
}
