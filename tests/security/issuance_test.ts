/**
 * Issuance at identity.sock: it needs a token with identity.issue, and a
 * delegated token can never mint anything broader than itself (rights,
 * path_prefix, lifetime, rate limit, chain depth). A narrower child works,
 * records its parent and chain, and dies with its parent's revocation.
 */

import assert from "node:assert/strict";
import { issue, startNode } from "../helpers.ts";
import { expectError, expectOk } from "./support.ts";

interface Introspection {
  valid: boolean;
  reason?: string;
  claims?: {
    jti: string;
    parent?: string;
    chain?: string[];
    service: string;
    rights: string[];
    constraints: { path_prefix?: string; rate_limit?: string; rate_buckets?: unknown[] };
    exp: string;
  };
}

Deno.test("issuance needs a capability and never widens it", async (t) => {
  const node = await startNode();
  try {
    const root = node.exportRoot;
    const P = `${root}/data`;
    await Deno.mkdir(`${P}/sub`, { recursive: true });
    await Deno.writeTextFile(`${P}/sub/f.txt`, "child can read this");
    const mint = (params: Record<string, unknown>, token?: string) =>
      node.request("identity", "identity.issue", params, token);
    const introspect = async (token: string) =>
      expectOk<Introspection>(await node.request("identity", "identity.introspect", { token }));
    const operatorCap = (await introspect(node.operatorToken())).claims!.jti;

    await t.step("identity.issue without a token", async () => {
      expectError(
        await mint({ service: "fs", rights: ["fs.read"] }),
        "UNAUTHENTICATED",
        /identity\.issue needs a capability token/,
        "no_token",
      );
    });

    await t.step("identity.issue with a token lacking identity.issue", async () => {
      const revoker = await issue(node, { service: "identity", rights: ["identity.revoke"] });
      expectError(
        await mint({ service: "fs", rights: ["fs.read"] }, revoker.token),
        "PERMISSION_DENIED",
        /lacks the right identity\.issue \(it has identity\.revoke\)/,
        "missing_right",
      );
      const reader = await issue(node, { service: "*", rights: ["fs.read"] });
      expectError(
        await mint({ service: "fs", rights: ["fs.read"] }, reader.token),
        "PERMISSION_DENIED",
        /lacks the right identity\.issue/,
        "missing_right",
      );
    });

    // The delegated token D: rights identity.issue, fs.read and fs.open, confined to P.
    const D = await issue(node, {
      service: "*",
      rights: ["identity.issue", "fs.read", "fs.open"],
      path_prefix: P,
      ttl_seconds: 600,
      rate_limit: "100rps",
      sub: "delegate",
    });

    await t.step("D cannot mint a right it does not hold", async () => {
      expectError(
        await mint({ service: "fs", rights: ["fs.list"] }, D.token),
        "PERMISSION_DENIED",
        /params\.rights: fs\.list not held by your capability/,
        "broader_than_parent",
      );
      expectError(
        await mint({ service: "fs", actions: ["read", "list"] }, D.token),
        "PERMISSION_DENIED",
        /fs\.list not held/,
        "broader_than_parent",
      );
      expectError(
        await mint({ service: "identity", rights: ["identity.revoke"] }, D.token),
        "PERMISSION_DENIED",
        /identity\.revoke not held/,
        "broader_than_parent",
      );
      expectError(
        await mint({ service: "*", rights: ["identity.rotate_key"] }, D.token),
        "PERMISSION_DENIED",
        /identity\.rotate_key not held/,
        "broader_than_parent",
      );
    });

    await t.step("D cannot mint a path_prefix outside its own", async () => {
      const outside = new RegExp(`is outside your capability's path_prefix ${P}`);
      for (const prefix of ["/etc", "/", root, `${root}/data-evil`, `${P}/..`, `${P}/sub/../..`]) {
        expectError(
          await mint({ service: "fs", rights: ["fs.read"], path_prefix: prefix }, D.token),
          "PERMISSION_DENIED",
          outside,
          "broader_than_parent",
        );
      }
      expectError(
        await mint({ service: "fs", rights: ["fs.read"], path_prefix: "sub" }, D.token),
        "INVALID_ARGUMENT",
        /params\.path_prefix: must be an absolute path/,
      );
      expectError(
        await mint({ service: "fs", rights: ["fs.read"], path_prefix: `${P}/\0` }, D.token),
        "INVALID_ARGUMENT",
        /params\.path_prefix: contains a NUL byte/,
      );
    });

    await t.step("D cannot mint a token that outlives it", async () => {
      expectError(
        await mint({ service: "fs", rights: ["fs.read"], ttl_seconds: 3600 }, D.token),
        "PERMISSION_DENIED",
        /params\.ttl_seconds: would outlive your capability.*ask for at most \d+/,
        "broader_than_parent",
      );
      expectError(
        await mint({ service: "fs", rights: ["fs.read"], ttl_seconds: 601 }, D.token),
        "PERMISSION_DENIED",
        /would outlive/,
        "broader_than_parent",
      );
      expectError(
        await mint({ service: "fs", rights: ["fs.read"], ttl_seconds: 10 ** 9 }, D.token),
        "INVALID_ARGUMENT",
        /params\.ttl_seconds: must be at most/,
      );
      // Without a ttl the child is capped at D's expiry.
      const c = await issue(node, { service: "fs", rights: ["fs.read"] }, D.token);
      assert(c.expires <= D.expires, `${c.expires} > ${D.expires}`);
    });

    await t.step("D cannot mint a looser rate limit", async () => {
      expectError(
        await mint({ service: "fs", rights: ["fs.read"], rate_limit: "1000rps" }, D.token),
        "PERMISSION_DENIED",
        /params\.rate_limit: 1000rps is looser than your capability's 100rps/,
        "broader_than_parent",
      );
      expectError(
        await mint({ service: "fs", rights: ["fs.read"], rate_limit: "5 rps" }, D.token),
        "INVALID_ARGUMENT",
        /params\.rate_limit: must look like "50rps"/,
      );
    });

    await t.step("omitted constraints are inherited, not dropped", async () => {
      const c = await issue(node, { service: "fs", rights: ["fs.read"] }, D.token);
      const i = await introspect(c.token);
      assert.equal(i.valid, true);
      assert.deepEqual(i.claims!.constraints, {
        path_prefix: P,
        rate_limit: "100rps",
        // Inherited: it counts in D's bucket, not in one of its own.
        rate_buckets: [{ cap_id: D.cap_id, rate_limit: "100rps" }],
      });
    });

    // A valid, narrower child C of D.
    const C = await issue(node, {
      service: "fs",
      rights: ["fs.open", "fs.read"],
      path_prefix: `${P}/sub`,
      ttl_seconds: 300,
      rate_limit: "10rps",
    }, D.token);
    let handle = "";

    await t.step("a narrower child works and records its parent and chain", async () => {
      const i = await introspect(C.token);
      assert.equal(i.valid, true, JSON.stringify(i));
      assert.equal(i.claims!.jti, C.cap_id);
      assert.equal(i.claims!.parent, D.cap_id);
      assert.deepEqual(i.claims!.chain, [operatorCap, D.cap_id]);
      assert.deepEqual(i.claims!.rights, ["fs.open", "fs.read"]);
      assert.deepEqual(i.claims!.constraints, {
        path_prefix: `${P}/sub`,
        rate_limit: "10rps",
        rate_buckets: [
          { cap_id: D.cap_id, rate_limit: "100rps" },
          { cap_id: C.cap_id, rate_limit: "10rps" },
        ],
      });
      const opened = expectOk<{ handle: string }>(
        await node.request("fs", "fs.open", { path: "f.txt" }, C.token),
      );
      handle = opened.handle;
      const r = expectOk<{ data: string }>(
        await node.request("fs", "fs.read", { handle, size: 5 }, C.token),
      );
      assert.equal(r.data, "child");
      // Still confined to its own, narrower prefix.
      expectError(
        await node.request("fs", "fs.open", { path: `${P}/sub/../x` }, C.token),
        "PERMISSION_DENIED",
        /outside the token's path_prefix/,
        "outside_prefix",
      );
    });

    await t.step("a child cannot be used to mint (it lacks identity.issue)", async () => {
      expectError(
        await mint({ service: "fs", rights: ["fs.read"] }, C.token),
        "PERMISSION_DENIED",
        /issued for service fs, not identity/,
        "wrong_service",
      );
    });

    await t.step("revoking the parent refuses the child at fs with 'revoked'", async () => {
      const rev = expectOk<{ status: string }>(
        await node.request(
          "identity",
          "identity.revoke",
          { cap_id: D.cap_id },
          node.operatorToken(),
        ),
      );
      assert.equal(rev.status, "revoked");
      const msg = new RegExp(
        `capability ${C.cap_id} was delegated from ${D.cap_id}, which has been revoked`,
      );
      // The open handle dies with it, and a new open is refused.
      expectError(
        await node.request("fs", "fs.read", { handle, offset: 5 }, C.token),
        "UNAUTHENTICATED",
        msg,
        "revoked",
      );
      expectError(
        await node.request("fs", "fs.open", { path: "f.txt" }, C.token),
        "UNAUTHENTICATED",
        msg,
        "revoked",
      );
      const i = await introspect(C.token);
      assert.equal(i.valid, false);
      assert.equal(i.reason, "revoked");
      // D itself can no longer mint.
      expectError(
        await mint({ service: "fs", rights: ["fs.read"] }, D.token),
        "UNAUTHENTICATED",
        new RegExp(`capability ${D.cap_id} has been revoked`),
        "revoked",
      );
    });

    await t.step("delegation depth is capped at 8 levels", async () => {
      let tok = node.operatorToken();
      const caps: string[] = [];
      for (let depth = 1; depth <= 8; depth++) {
        const c = await issue(node, { service: "identity", rights: ["identity.issue"] }, tok);
        caps.push(c.cap_id);
        tok = c.token;
      }
      const last = await introspect(tok);
      assert.equal(last.claims!.chain!.length, 8);
      expectError(
        await mint({ service: "identity", rights: ["identity.issue"] }, tok),
        "PERMISSION_DENIED",
        /delegation is limited to 8 levels/,
      );
    });

    await t.step("identity.revoke itself needs identity.revoke", async () => {
      const reader = await issue(node, { service: "fs", rights: ["fs.read"] });
      expectError(
        await node.request("identity", "identity.revoke", { cap_id: reader.cap_id }),
        "UNAUTHENTICATED",
        /needs a capability token/,
        "no_token",
      );
      const issuer = await issue(node, { service: "identity", rights: ["identity.issue"] });
      expectError(
        await node.request("identity", "identity.revoke", { cap_id: reader.cap_id }, issuer.token),
        "PERMISSION_DENIED",
        /lacks the right identity\.revoke/,
        "missing_right",
      );
      assert.equal((await introspect(reader.token)).valid, true);
    });
  } finally {
    await node.stop();
  }
});
