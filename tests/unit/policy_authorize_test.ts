/**
 * Unit tests for src/policy/authorize.ts: the one yes/no, with real keys,
 * real signed tokens and a TokenVerifier over a simple key lookup.
 */

import assert from "node:assert/strict";
import {
  authorize,
  type AuthorizeContext,
  authorizeNow,
  checkCapability,
} from "../../src/policy/authorize.ts";
import { attenuate } from "../../src/policy/constraints.ts";
import { RateLimiter } from "../../src/policy/rate_limit.ts";
import { systemClock } from "../../src/runtime/clock.ts";
import { type Capability, type Claims, newCapId, rfc3339 } from "../../src/token/claims.ts";
import { generateSigningKey, importVerifyKey, type SigningKey } from "../../src/token/keys.ts";
import { RevocationSet } from "../../src/token/revocation_set.ts";
import { TokenVerifier } from "../../src/token/verifier.ts";
import {
  assertStrataError,
  CountingLookup,
  ISSUER,
  makeClaims,
  mint,
  rejectsStrata,
} from "./support.ts";

/** A limiter whose clock stands still, so rate tests need no timing. */
/**
 * A limiter whose clock stands still. (Overriding `take` did not freeze it:
 * authorize calls `takeAll`, which read the real clock, so a refill between
 * two calls made a retry hint of 499 ms now and then.)
 */
class FrozenLimiter extends RateLimiter {
  constructor() {
    super({ clock: { ...systemClock, monotonic: () => 1_000 } });
  }
}

interface World {
  key: SigningKey;
  ctx: AuthorizeContext;
  revoked: RevocationSet;
  token(overrides?: Partial<Claims>): Promise<string>;
}

async function world(service = "fs"): Promise<World> {
  const key = await generateSigningKey();
  const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
  const revoked = new RevocationSet();
  const ctx: AuthorizeContext = {
    service,
    verifier: new TokenVerifier({ issuer: ISSUER, keys }),
    revoked,
    limiter: new FrozenLimiter(),
  };
  return { key, ctx, revoked, token: (o = {}) => mint(key, makeClaims(o)) };
}

const READ = { right: "fs.read" };

Deno.test("authorize: a valid token with the right returns its capability", async () => {
  // given a valid fs token holding fs.read
  const w = await world();
  const claims = makeClaims();
  const token = await mint(w.key, claims);
  // when fs.read is authorized
  const cap = await authorize(token, READ, w.ctx);
  // then the caller's capability comes back
  assert.ok(cap);
  assert.equal(cap.capId, claims.jti);
  assert.deepEqual(cap.claims.rights, claims.rights);
});

Deno.test("authorizeNow: decides at once when the key is at hand, and waits only for a key lookup", async () => {
  // given a valid token and a revoked one
  const w = await world();
  const token = await w.token();
  const revokedClaims = makeClaims();
  const revoked = await mint(w.key, revokedClaims);
  w.revoked.add([{ cap_id: revokedClaims.jti, exp: Math.floor(Date.now() / 1000) + 3600 }]);
  // then the first use and the cached ones return the capability itself, not a promise
  for (let i = 0; i < 2; i++) {
    const cap = authorizeNow(token, READ, w.ctx);
    assert.ok(cap !== undefined && !(cap instanceof Promise));
    assert.deepEqual(cap.claims.rights, ["fs.list", "fs.open", "fs.read"]);
  }
  // and refusals are thrown at once, with the same errors authorize rejects with
  for (const bad of [revoked, "v4.public.garbage", ""]) {
    let sync: unknown;
    try {
      authorizeNow(bad, READ, w.ctx);
    } catch (err) {
      sync = err;
    }
    const async = await authorize(bad, READ, w.ctx).then(() => undefined, (err) => err);
    const thrown = assertStrataError(sync, "UNAUTHENTICATED");
    assert.deepEqual([thrown.message, thrown.details], [async.message, async.details]);
  }
  // and a right the token lacks is refused at once
  assert.throws(() => authorizeNow(token, { right: "fs.write" }, w.ctx), /lacks the right/);
  // given a verifier whose keys must be looked up (a promise)
  const keys = new CountingLookup([await importVerifyKey(w.key.publicKey)]);
  const slow = { get: (kid: string) => Promise.resolve(keys.get(kid)) };
  const ctx = { ...w.ctx, verifier: new TokenVerifier({ issuer: ISSUER, keys: slow }) };
  // then the first use is a promise of the capability, and a refusal a rejected promise
  const pending = authorizeNow(await w.token(), READ, ctx);
  assert.ok(pending instanceof Promise);
  assert.ok(await pending);
  await rejectsStrata(
    Promise.resolve(authorizeNow(revoked, READ, ctx)),
    "UNAUTHENTICATED",
    /revoked/,
  );
});

Deno.test("authorize: a public method needs no token and ignores a bad one", async () => {
  const w = await world();
  assert.equal(await authorize(undefined, "public", w.ctx), undefined);
  assert.equal(await authorize("garbage", "public", w.ctx), undefined);
});

Deno.test("authorize: no token is UNAUTHENTICATED no_token, naming the right", async () => {
  const w = await world();
  for (const token of [undefined, ""]) {
    const err = await rejectsStrata(
      authorize(token, READ, w.ctx),
      "UNAUTHENTICATED",
      /auth\.token: fs\.read needs a capability token/,
    );
    assert.equal(err.details?.reason, "no_token");
  }
});

Deno.test("authorize: an expired token is UNAUTHENTICATED expired", async () => {
  // given a token that expired a minute ago
  const w = await world();
  const now = Date.now();
  const claims = makeClaims({ exp: rfc3339(now - 60_000) });
  const token = await mint(w.key, claims);
  // when authorized now
  const err = await rejectsStrata(
    authorize(token, READ, { ...w.ctx, now }),
    "UNAUTHENTICATED",
    /expired/,
  );
  // then the reason and the cap_id are in the details
  assert.equal(err.details?.reason, "expired");
  assert.equal(err.details?.cap_id, claims.jti);
});

Deno.test("authorize: a token is expired at exactly its exp, and valid one second before", async () => {
  const w = await world();
  const exp = Date.UTC(2040, 0, 1);
  const token = await mint(w.key, makeClaims({ exp: rfc3339(exp) }, exp - 10_000));
  assert.ok(await authorize(token, READ, { ...w.ctx, now: exp - 1000 }));
  const err = await rejectsStrata(
    authorize(token, READ, { ...w.ctx, now: exp }),
    "UNAUTHENTICATED",
  );
  assert.equal(err.details?.reason, "expired");
});

Deno.test("authorize: a token before its nbf is UNAUTHENTICATED not_yet_valid", async () => {
  // given a token valid only from an hour from now
  const w = await world();
  const now = Date.now();
  const token = await mint(
    w.key,
    makeClaims({ nbf: rfc3339(now + 3600_000), exp: rfc3339(now + 3 * 3600_000) }),
  );
  // when authorized now, then it is not yet valid
  const err = await rejectsStrata(
    authorize(token, READ, { ...w.ctx, now }),
    "UNAUTHENTICATED",
    /not valid before/,
  );
  assert.equal(err.details?.reason, "not_yet_valid");
  // and once that time has come it is accepted
  assert.ok(await authorize(token, READ, { ...w.ctx, now: now + 3600_000 + 1000 }));
});

Deno.test("authorize: a revoked token is UNAUTHENTICATED revoked", async () => {
  // given a token whose cap_id is revoked
  const w = await world();
  const claims = makeClaims();
  const token = await mint(w.key, claims);
  assert.ok(await authorize(token, READ, w.ctx)); // cached as verified first
  w.revoked.add([{ cap_id: claims.jti, exp: Math.floor(Date.now() / 1000) + 3600 }]);
  // when authorized again, then it is refused at once despite the cache
  const err = await rejectsStrata(authorize(token, READ, w.ctx), "UNAUTHENTICATED", /revoked/);
  assert.equal(err.details?.reason, "revoked");
  assert.match(err.message, new RegExp(claims.jti));
});

Deno.test("authorize: a token whose ancestor is revoked is UNAUTHENTICATED revoked, naming the ancestor", async () => {
  // given a token delegated from root → mid, with root revoked
  const w = await world();
  const root = newCapId();
  const mid = newCapId();
  const token = await w.token({ chain: [root, mid], parent: mid });
  w.revoked.add([{ cap_id: root, exp: Math.floor(Date.now() / 1000) + 3600 }]);
  // when authorized
  const err = await rejectsStrata(authorize(token, READ, w.ctx), "UNAUTHENTICATED", /revoked/);
  // then it is refused as revoked and the message says which ancestor
  assert.equal(err.details?.reason, "revoked");
  assert.match(err.message, new RegExp(`delegated from ${root}`));
});

Deno.test("authorize: a token for another service is PERMISSION_DENIED wrong_service", async () => {
  // given an fs token presented to the registry
  const w = await world("registry");
  const token = await w.token();
  // then it is refused naming both services
  const err = await rejectsStrata(
    authorize(token, { right: "registry.register" }, w.ctx),
    "PERMISSION_DENIED",
    /issued for service fs, not registry/,
  );
  assert.equal(err.details?.reason, "wrong_service");
});

Deno.test("authorize: a token for service * is accepted by any service", async () => {
  const w = await world("registry");
  const token = await w.token({ service: "*", rights: ["registry.register"] });
  assert.ok(await authorize(token, { right: "registry.register" }, w.ctx));
});

Deno.test("authorize: the root capability (service *, no parent) holds every right, present and future", async () => {
  const w = await world("fs");
  // An operator token minted before fs.stat existed lists none of it.
  const root = await w.token({ service: "*", rights: ["fs.list"], actions: ["fs.list"] });
  assert.ok(await authorize(root, { right: "fs.stat" }, w.ctx));
  // A delegated * token holds only what it lists.
  const parent = newCapId();
  const star = await w.token({ service: "*", rights: ["fs.list"], parent, chain: [parent] });
  const err = await rejectsStrata(
    authorize(star, { right: "fs.stat" }, w.ctx),
    "PERMISSION_DENIED",
  );
  assert.equal(err.details?.reason, "missing_right");
});

Deno.test("authorize: a token without the right is PERMISSION_DENIED missing_right", async () => {
  // given a token holding only fs.list
  const w = await world();
  const token = await w.token({ rights: ["fs.list"], actions: ["list"] });
  // when fs.read is asked for
  const err = await rejectsStrata(
    authorize(token, READ, w.ctx),
    "PERMISSION_DENIED",
    /lacks the right fs\.read \(it has fs\.list\)/,
  );
  // then the reason and the right are in the details
  assert.equal(err.details?.reason, "missing_right");
  assert.equal(err.details?.right, "fs.read");
});

Deno.test("authorize: rate limit 2rps lets two calls through and refuses the third", async () => {
  // given a token limited to 2 requests per second (and a clock that stands still)
  const w = await world();
  const claims = makeClaims({ constraints: { rate_limit: "2rps" } });
  const token = await mint(w.key, claims);
  // when called three times at once
  assert.ok(await authorize(token, READ, w.ctx));
  assert.ok(await authorize(token, READ, w.ctx));
  const err = await rejectsStrata(
    authorize(token, READ, w.ctx),
    "RESOURCE_EXHAUSTED",
    /rate limit 2rps/,
  );
  // then the third is refused with a retry hint
  assert.equal(err.details?.reason, "rate_limited");
  assert.equal(err.details?.cap_id, claims.jti);
  assert.equal(err.details?.retry_after_ms, 500);
  // and another capability has its own bucket
  assert.ok(await authorize(await w.token({ constraints: { rate_limit: "2rps" } }), READ, w.ctx));
});

Deno.test("authorize: verification failures are UNAUTHENTICATED with the token's reason", async () => {
  // given tokens that fail verification in different ways
  const w = await world();
  const stranger = await generateSigningKey();
  const cases: [string, string][] = [
    ["not a token", "malformed"],
    ["v2.public.abcd.efgh", "unsupported_version"],
    [await mint(stranger, makeClaims()), "unknown_key"],
    [await w.token({ iss: "identity@other" }), "wrong_issuer"],
    [await w.token({ aud: "nobody" }), "wrong_audience"],
    [await w.token({ jti: "short" }), "malformed_claims"],
  ];
  for (const [token, reason] of cases) {
    const err = await rejectsStrata(authorize(token, READ, w.ctx), "UNAUTHENTICATED");
    assert.equal(err.details?.reason, reason, token.slice(0, 20));
  }
});

Deno.test("authorize: expiry and revocation are judged before service and right", async () => {
  // given a token for the wrong service without the right, that is also expired
  const w = await world("registry");
  const now = Date.now();
  const expired = await w.token({ exp: rfc3339(now - 1000) });
  const revokedClaims = makeClaims();
  const revoked = await mint(w.key, revokedClaims);
  w.revoked.add([{ cap_id: revokedClaims.jti, exp: Math.floor(now / 1000) + 60 }]);
  // then the time and revocation refusals win
  const e1 = await rejectsStrata(
    authorize(expired, { right: "registry.register" }, w.ctx),
    "UNAUTHENTICATED",
  );
  assert.equal(e1.details?.reason, "expired");
  const e2 = await rejectsStrata(
    authorize(revoked, { right: "registry.register" }, w.ctx),
    "UNAUTHENTICATED",
  );
  assert.equal(e2.details?.reason, "revoked");
});

Deno.test("authorize: a token without a constraints claim is authorized like one with none", async () => {
  // given a properly signed token whose payload has no constraints field
  // (parseClaims accepts it and treats constraints as absent)
  const w = await world();
  const claims: Record<string, unknown> = { ...makeClaims() };
  delete claims.constraints;
  const token = await mint(w.key, claims as unknown as Claims);
  // when authorized, then it is accepted (not an internal TypeError)
  const cap = await authorize(token, READ, w.ctx);
  assert.ok(cap);
});

Deno.test("checkCapability: without a right only time and revocation are checked", async () => {
  // given a capability for another service with no rights at all
  const w = await world();
  const cap = await w.ctx.verifier.verify(await w.token({ service: "identity", rights: [] }));
  // then it passes a check that names no right
  checkCapability(cap, undefined, { service: "fs", revoked: w.revoked });
  // but not one that does
  assert.throws(
    () => checkCapability(cap, "fs.read", { service: "fs", revoked: w.revoked }),
    (e: unknown) => (e as { details?: { reason?: string } }).details?.reason === "wrong_service",
  );
  // and expiry still applies
  assert.throws(
    () => checkCapability(cap, undefined, { service: "fs", revoked: w.revoked, now: cap.expMs }),
    /expired/,
  );
});

/** Mints a child of `parent` the way identity does: attenuate, then sign with parent and chain. */
async function delegate(w: World, parent: Capability, rateLimit?: string): Promise<string> {
  const capId = newCapId();
  const grant = attenuate(parent, {
    cap_id: capId,
    service: "fs",
    rights: ["fs.read"],
    rate_limit: rateLimit,
  }, Date.now());
  return await mint(
    w.key,
    makeClaims({
      jti: capId,
      rights: grant.rights,
      actions: ["read"],
      constraints: grant.constraints,
      exp: rfc3339(grant.expMs),
      chain: [...parent.lineage],
      parent: parent.capId,
    }),
  );
}

Deno.test("authorize: children with an inherited rate_limit share their parent's bucket", async () => {
  // given a 2rps parent and two children that inherit its limit
  const w = await world();
  const parentToken = await w.token({ constraints: { rate_limit: "2rps" } });
  const parent = await w.ctx.verifier.verify(parentToken);
  const a = await delegate(w, parent);
  const b = await delegate(w, parent);
  // when each child makes one request
  assert.ok(await authorize(a, READ, w.ctx));
  assert.ok(await authorize(b, READ, w.ctx));
  // then the shared bucket is empty: minting children did not multiply the rate
  const err = await rejectsStrata(authorize(parentToken, READ, w.ctx), "RESOURCE_EXHAUSTED");
  assert.match(err.message, new RegExp(`rate limit 2rps of capability ${parent.capId}`));
  await rejectsStrata(authorize(a, READ, w.ctx), "RESOURCE_EXHAUSTED");
});

Deno.test("authorize: a child's own tighter rate_limit refuses it first", async () => {
  // given a 10rps parent and a child limited to 1rps
  const w = await world();
  const parentToken = await w.token({ constraints: { rate_limit: "10rps" } });
  const parent = await w.ctx.verifier.verify(parentToken);
  const child = await delegate(w, parent, "1rps");
  // then the child gets one request, and its second is refused by its own bucket
  assert.ok(await authorize(child, READ, w.ctx));
  const err = await rejectsStrata(
    authorize(child, READ, w.ctx),
    "RESOURCE_EXHAUSTED",
    /rate limit 1rps/,
  );
  assert.equal(err.details?.reason, "rate_limited");
});

Deno.test("authorize: requests a child's own bucket refuses do not spend its parent's bucket", async () => {
  // given a 10rps parent and a child limited to 1rps (the clock stands still)
  const w = await world();
  const parentToken = await w.token({ constraints: { rate_limit: "10rps" } });
  const parent = await w.ctx.verifier.verify(parentToken);
  const child = await delegate(w, parent, "1rps");
  // when the child makes one request that passes and ten that its own limit refuses
  assert.ok(await authorize(child, READ, w.ctx));
  for (let i = 0; i < 10; i++) {
    await rejectsStrata(authorize(child, READ, w.ctx), "RESOURCE_EXHAUSTED");
  }
  // then only the one request it was allowed counted against the parent: 9 remain for it
  for (let i = 0; i < 9; i++) {
    assert.ok(await authorize(parentToken, READ, w.ctx), `parent request ${i + 1} of 9 refused`);
  }
  await rejectsStrata(authorize(parentToken, READ, w.ctx), "RESOURCE_EXHAUSTED");
});
