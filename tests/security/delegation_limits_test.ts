/**
 * Delegation never multiplies authority: a delegated revoker reaches only
 * its own subtree, and children share their ancestors' rate-limit buckets.
 */

import assert from "node:assert/strict";
import type { Response } from "../../src/wire/envelope.ts";
import { issue, startNode } from "../helpers.ts";
import { expectError, expectOk } from "./support.ts";

Deno.test("a delegated revoker may revoke only its own tree", async (t) => {
  const node = await startNode();
  try {
    const op = node.operatorToken();
    const opCap = expectOk<{ claims: { jti: string } }>(
      await node.request("identity", "identity.introspect", { token: op }),
    ).claims.jti;
    // L (a team lead) may issue and revoke; it mints A. S is a sibling from the operator.
    const L = await issue(node, {
      service: "*",
      rights: ["identity.issue", "identity.revoke", "fs.list"],
      ttl_seconds: 600,
    });
    const A = await issue(node, { service: "fs", rights: ["fs.list"] }, L.token);
    const S = await issue(node, { service: "fs", rights: ["fs.list"] });
    const revoke = (params: Record<string, unknown>) =>
      node.request("identity", "identity.revoke", params, L.token);

    await t.step("not the operator token, by cap_id", async () => {
      expectError(
        await revoke({ cap_id: opCap }),
        "PERMISSION_DENIED",
        /pass the token itself/,
        "not_in_your_tree",
      );
    });
    await t.step("not a sibling, even with its token", async () => {
      expectError(
        await revoke({ token: S.token }),
        "PERMISSION_DENIED",
        /was not delegated from yours/,
        "not_in_your_tree",
      );
    });
    await t.step("its own child, by token: revoked everywhere", async () => {
      const r = expectOk<{ status: string; cap_id: string }>(await revoke({ token: A.token }));
      assert.equal(r.cap_id, A.cap_id);
      expectError(
        await node.request("fs", "fs.list", { path: node.exportRoot }, A.token),
        "UNAUTHENTICATED",
        /revoked/,
        "revoked",
      );
    });
    await t.step("the sibling and the operator are untouched", async () => {
      expectOk(await node.request("fs", "fs.list", { path: node.exportRoot }, S.token));
      expectOk(await node.request("identity", "identity.introspect", { token: op }));
      assert.equal(
        expectOk<{ valid: boolean }>(
          await node.request("identity", "identity.introspect", { token: op }),
        ).valid,
        true,
      );
    });
    await t.step("cap_id and token must agree", async () => {
      expectError(
        await revoke({ token: S.token, cap_id: A.cap_id }),
        "INVALID_ARGUMENT",
        /params\.cap_id/,
      );
    });
    await t.step("itself, by cap_id", async () => {
      expectOk(await revoke({ cap_id: L.cap_id }));
      expectError(
        await node.request("fs", "fs.list", { path: node.exportRoot }, L.token),
        "UNAUTHENTICATED",
        /revoked/,
      );
    });
  } finally {
    await node.stop();
  }
});

Deno.test("children share their ancestors' rate-limit buckets", async () => {
  const node = await startNode();
  try {
    // P may issue, and is limited to 12 requests a second (minting counts too).
    const P = await issue(node, {
      service: "*",
      rights: ["identity.issue", "fs.list"],
      rate_limit: "12rps",
      ttl_seconds: 600,
    });
    // Ten children, each inheriting P's limit: together they still get about 12.
    const children = [];
    for (let i = 0; i < 10; i++) {
      children.push(await issue(node, { service: "fs", rights: ["fs.list"] }, P.token));
    }
    const fs = await node.client("fs");
    const burst: Promise<Response>[] = [];
    for (const c of children) {
      for (let k = 0; k < 5; k++) {
        burst.push(fs.request("fs.list", { path: node.exportRoot }, { token: c.token }));
      }
    }
    const results = await Promise.all(burst);
    const ok = results.filter((r) => r.ok).length;
    const limited = results.filter((r) => !r.ok && r.error.name === "RESOURCE_EXHAUSTED").length;
    assert.equal(ok + limited, 50, JSON.stringify(results.find((r) => !r.ok)));
    assert(ok <= 12, `50 requests through 10 children of a 10rps parent: ${ok} allowed`);
    // A child may tighten the limit, and then counts in both buckets.
    const tight = await issue(
      node,
      { service: "fs", rights: ["fs.list"], rate_limit: "2rps" },
      P.token,
    );
    const introspected = expectOk<{ claims: { constraints: { rate_buckets: unknown[] } } }>(
      await node.request("identity", "identity.introspect", { token: tight.token }),
    );
    assert.deepEqual(
      introspected.claims.constraints.rate_buckets,
      [{ cap_id: P.cap_id, rate_limit: "12rps" }, { cap_id: tight.cap_id, rate_limit: "2rps" }],
    );
  } finally {
    await node.stop();
  }
});

Deno.test("revoking the operator token revokes every token, and identity writes a new one", async () => {
  const node = await startNode();
  try {
    const old = node.operatorToken();
    const child = await issue(node, { service: "fs", rights: ["fs.list"] });
    const opCap = expectOk<{ claims: { jti: string } }>(
      await node.request("identity", "identity.introspect", { token: old }),
    ).claims.jti;
    expectOk(
      await node.request("identity", "identity.revoke", { cap_id: opCap, confirm_root: true }, old),
    );
    // Everything delegated from it is refused, the old operator token too.
    expectError(
      await node.request("fs", "fs.list", { path: node.exportRoot }, child.token),
      "UNAUTHENTICATED",
      /revoked/,
    );
    expectError(
      await node.request("identity", "identity.issue", { service: "fs", rights: ["fs.list"] }, old),
      "UNAUTHENTICATED",
      /revoked/,
    );
    // The operator is not locked out: a new operator token is in the state dir.
    const fresh = node.operatorToken();
    assert.notEqual(fresh, old);
    const again = await issue(node, { service: "fs", rights: ["fs.list"] }, fresh);
    expectOk(await node.request("fs", "fs.list", { path: node.exportRoot }, again.token));
  } finally {
    await node.stop();
  }
});
