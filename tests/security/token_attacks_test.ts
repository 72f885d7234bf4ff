/**
 * Forged, foreign, tampered, wrong-version, expired, not-yet-valid,
 * wrong-service and under-privileged tokens at fs.sock (and the other
 * protected doors): each is refused with the exact error name and reason.
 */

import assert from "node:assert/strict";
import { generateSigningKey } from "../../src/token/keys.ts";
import { signV4Public } from "../../src/token/paseto.ts";
import { rfc3339 } from "../../src/token/claims.ts";
import { Client } from "../../src/server/client.ts";
import { socketPath } from "../../src/runtime/config.ts";
import { issue, startNode } from "../helpers.ts";
import {
  claimsOf,
  expectError,
  expectOk,
  footerKid,
  fsClaims,
  joinToken,
  nodeSigningKey,
  rawRequest,
  splitToken,
} from "./support.ts";

Deno.test("token attacks at fs.list are refused", async (t) => {
  const node = await startNode();
  try {
    const root = node.exportRoot;
    await Deno.mkdir(`${root}/data`);
    await Deno.writeTextFile(`${root}/data/a.txt`, "a");
    const good = await issue(node, {
      service: "fs",
      rights: ["fs.list"],
      path_prefix: `${root}/data`,
    });
    // Each attempt on a connection of its own: fs closes a connection that has
    // sent 32 refusals and fewer successes, and this test sends far more.
    const list = async (token?: string) => {
      const c = await Client.connect(socketPath(node.layout, "fs"));
      try {
        return await c.request("fs.list", { path: `${root}/data` }, { token });
      } finally {
        await c.close();
      }
    };

    await t.step("baseline: the genuine token lists the folder", async () => {
      const r = expectOk<{ entries: { name: string }[] }>(await list(good.token));
      assert.deepEqual(r.entries.map((e) => e.name), ["a.txt"]);
    });

    await t.step("no token", async () => {
      expectError(await list(), "UNAUTHENTICATED", /fs\.list needs a capability token/, "no_token");
      expectError(await list(""), "UNAUTHENTICATED", /needs a capability token/, "no_token");
    });

    await t.step("garbage tokens", async () => {
      expectError(await list("hello"), "UNAUTHENTICATED", /not a PASETO token/, "malformed");
      expectError(
        await list("v4.public.!!!!.eyJ9"),
        "UNAUTHENTICATED",
        /invalid base64url/,
        "malformed",
      );
      expectError(
        await list("v4.public.AAAA"),
        "UNAUTHENTICATED",
        /missing footer/,
        "malformed",
      );
      expectError(
        await list("v4.public.AAAA.BBBB.CCCC"),
        "UNAUTHENTICATED",
        /too many parts/,
        "malformed",
      );
      expectError(
        await list("v4.public.AAAA.e30"),
        "UNAUTHENTICATED",
        /too short to hold a signature/,
        "malformed",
      );
      // Padded / non-canonical base64url of the real token is not the same token.
      const parts = good.token.split(".");
      expectError(
        await list(`${parts[0]}.${parts[1]}.${parts[2]}=.${parts[3]}`),
        "UNAUTHENTICATED",
        /invalid base64url/,
        "malformed",
      );
      // A footer without a kid.
      const p = splitToken(good.token);
      expectError(
        await list(joinToken({ ...p, footer: "e30" })),
        "UNAUTHENTICATED",
        /footer has no key id/,
        "malformed",
      );
    });

    await t.step("auth.token that is not a string, or too long, is an envelope error", async () => {
      const { frames } = await rawRequest(
        node,
        "fs",
        `{"v":1,"req_id":"t1","method":"fs.list","auth":{"token":42},"params":{"path":"${root}"}}`,
      );
      expectError(frames[0], "INVALID_ARGUMENT", /^auth: must be an object \{token: string\}/);
      const long = await rawRequest(
        node,
        "fs",
        JSON.stringify({
          v: 1,
          req_id: "t2",
          method: "fs.list",
          auth: { token: "v4.public." + "A".repeat(9000) },
          params: { path: root },
        }),
      );
      expectError(long.frames[0], "INVALID_ARGUMENT", /auth\.token: longer than 8192/);
    });

    await t.step("forged signature: one flipped bit of the signature", async () => {
      const p = splitToken(good.token);
      for (const i of [0, 31, 63]) {
        const sig = p.signature.slice();
        sig[i] ^= 0x01;
        expectError(
          await list(joinToken({ ...p, signature: sig })),
          "UNAUTHENTICATED",
          /signature is not valid/,
          "bad_signature",
        );
      }
      // An all-zero signature.
      expectError(
        await list(joinToken({ ...p, signature: new Uint8Array(64) })),
        "UNAUTHENTICATED",
        /signature is not valid/,
        "bad_signature",
      );
    });

    await t.step("tampered payload: wider path_prefix, old signature", async () => {
      const p = splitToken(good.token);
      const claims = claimsOf(good.token);
      for (
        const tamper of [
          { ...claims, constraints: { path_prefix: "/" } },
          { ...claims, constraints: {} },
          { ...claims, rights: ["fs.list", "fs.open", "fs.read"] },
          { ...claims, exp: rfc3339(Date.now() + 10 * 365 * 86400_000) },
        ]
      ) {
        const message = new TextEncoder().encode(JSON.stringify(tamper));
        expectError(
          await list(joinToken({ ...p, message })),
          "UNAUTHENTICATED",
          /signature is not valid/,
          "bad_signature",
        );
      }
      // The footer is signed too: swapping it for another kid spelling fails.
      const otherFooter = btoa(JSON.stringify({ kid: footerKid(good.token), x: 1 }))
        .replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
      expectError(
        await list(joinToken({ ...p, footer: otherFooter })),
        "UNAUTHENTICATED",
        /signature is not valid/,
        "bad_signature",
      );
    });

    await t.step("a token signed by another Ed25519 key", async () => {
      const foreign = await generateSigningKey();
      const token = await signV4Public(
        foreign,
        fsClaims(node, { constraints: { path_prefix: `${root}/data` } }),
      );
      expectError(
        await list(token),
        "UNAUTHENTICATED",
        /signed by a key this node does not know/,
        "unknown_key",
      );
      // The same forgery naming the node's own key id in its footer.
      const nodeKid = footerKid(good.token);
      const lying = await signV4Public({ ...foreign, kid: nodeKid }, fsClaims(node));
      assert.equal(footerKid(lying), nodeKid);
      expectError(await list(lying), "UNAUTHENTICATED", /signature is not valid/, "bad_signature");
    });

    await t.step("v2.public and v4.local tokens", async () => {
      const rest = good.token.slice("v4.public.".length);
      for (const [prefix, shown] of [["v2.public.", "v2.public"], ["v4.local.", "v4.local"]]) {
        const e = expectError(
          await list(prefix + rest),
          "UNAUTHENTICATED",
          /v4\.public/,
          "unsupported_version",
        );
        assert(e.message.includes(`${shown} tokens are not accepted`), e.message);
      }
      expectError(await list("v3.public." + rest), "UNAUTHENTICATED", /v4\.public/);
      expectError(await list("V4.PUBLIC." + rest), "UNAUTHENTICATED", /v4\.public/, "malformed");
    });

    const key = await nodeSigningKey(node);

    await t.step("the test can sign as the node (control): a self-made token works", async () => {
      const token = await signV4Public(key, fsClaims(node));
      expectOk(await list(token));
    });

    await t.step("expired token, signed by the node's key", async () => {
      const now = Date.now();
      const token = await signV4Public(
        key,
        fsClaims(node, {
          iat: rfc3339(now - 7200_000),
          nbf: rfc3339(now - 7200_000),
          exp: rfc3339(now - 3600_000),
        }),
      );
      expectError(await list(token), "UNAUTHENTICATED", /token: expired at /, "expired");
      // A token that expired a second ago.
      const edge = await signV4Public(key, fsClaims(node, { exp: rfc3339(now - 1000) }));
      expectError(await list(edge), "UNAUTHENTICATED", /expired/, "expired");
    });

    await t.step("not-yet-valid token (nbf in the future)", async () => {
      const now = Date.now();
      const token = await signV4Public(
        key,
        fsClaims(node, { nbf: rfc3339(now + 3600_000), exp: rfc3339(now + 7200_000) }),
      );
      expectError(await list(token), "UNAUTHENTICATED", /not valid before/, "not_yet_valid");
    });

    await t.step("node-signed tokens with the wrong issuer, audience or shape", async () => {
      expectError(
        await list(await signV4Public(key, fsClaims(node, { iss: "identity@other" }))),
        "UNAUTHENTICATED",
        /issued by "identity@other", not by this node's identity/,
        "wrong_issuer",
      );
      expectError(
        await list(await signV4Public(key, fsClaims(node, { aud: "elsewhere" }))),
        "UNAUTHENTICATED",
        /audience is not "strata"/,
        "wrong_audience",
      );
      expectError(
        await list(await signV4Public(key, fsClaims(node, { exp: "tomorrow" }))),
        "UNAUTHENTICATED",
        /exp is not an RFC 3339 time/,
        "malformed_claims",
      );
      expectError(
        await list(await signV4Public(key, fsClaims(node, { rights: "fs.list" }))),
        "UNAUTHENTICATED",
        /rights is not a list of strings/,
        "malformed_claims",
      );
      expectError(
        await list(await signV4Public(key, fsClaims(node, { constraints: { path_prefix: 7 } }))),
        "UNAUTHENTICATED",
        /path_prefix is not a string/,
        "malformed_claims",
      );
    });

    await t.step("wrong service: a token for identity used at fs", async () => {
      const idTok = await issue(node, { service: "identity", rights: ["identity.issue"] });
      expectError(
        await list(idTok.token),
        "PERMISSION_DENIED",
        /issued for service identity, not fs/,
        "wrong_service",
      );
      // And the reverse: an fs token at identity.issue.
      expectError(
        await node.request("identity", "identity.issue", {
          service: "fs",
          rights: ["fs.list"],
        }, good.token),
        "PERMISSION_DENIED",
        /issued for service fs, not identity/,
        "wrong_service",
      );
      // A node-signed token naming the right under another service.
      const odd = await signV4Public(key, fsClaims(node, { service: "registry" }));
      expectError(await list(odd), "PERMISSION_DENIED", /not fs/, "wrong_service");
    });

    await t.step("missing right: fs.list only, used for fs.open and fs.read", async () => {
      expectError(
        await node.request("fs", "fs.open", { path: `${root}/data/a.txt` }, good.token),
        "PERMISSION_DENIED",
        /lacks the right fs\.open \(it has fs\.list\)/,
        "missing_right",
      );
      expectError(
        await node.request("fs", "fs.read", { handle: "h1" }, good.token),
        "PERMISSION_DENIED",
        /lacks the right fs\.read/,
        "missing_right",
      );
      expectError(
        await node.request("fs", "fs.close", { handle: "h1" }, good.token),
        "PERMISSION_DENIED",
        /lacks the right fs\.open/,
        "missing_right",
      );
    });

    await t.step("other protected doors refuse fs tokens and no tokens", async () => {
      expectError(
        await node.request("supervisor", "supervisor.svc.stop", { name: "fs" }),
        "UNAUTHENTICATED",
        /needs a capability token/,
        "no_token",
      );
      expectError(
        await node.request("supervisor", "supervisor.svc.stop", { name: "fs" }, good.token),
        "PERMISSION_DENIED",
        /not supervisor/,
        "wrong_service",
      );
      expectError(
        await node.request("registry", "registry.register", {
          service: "fs",
          endpoint: "unix:///tmp/evil.sock",
        }, good.token),
        "PERMISSION_DENIED",
        /not registry/,
        "wrong_service",
      );
      // Even with the right, the supervisor's entry for fs cannot be hijacked.
      const reg = await issue(node, { service: "registry", rights: ["registry.register"] });
      expectError(
        await node.request("registry", "registry.register", {
          service: "fs",
          endpoint: "unix:///tmp/evil.sock",
        }, reg.token),
        "PERMISSION_DENIED",
        /run by the supervisor/,
        "reserved_name",
      );
      const resolved = expectOk<{ endpoint: string }>(
        await node.request("registry", "registry.resolve", { service: "fs" }),
      );
      assert.match(resolved.endpoint, /\/fs\.sock$/);
    });

    await t.step("after all that the genuine token still works", async () => {
      expectOk(await list(good.token));
    });
  } finally {
    await node.stop();
  }
});
