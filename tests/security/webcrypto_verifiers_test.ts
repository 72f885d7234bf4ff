/**
 * Registry and supervisor verify tokens with WebCrypto (they do not load
 * Deno's Node layer): forged, tampered and foreign tokens sent to their
 * sockets are refused there as at fs, and genuine ones are taken.
 */

import { generateSigningKey } from "../../src/token/keys.ts";
import { signV4Public } from "../../src/token/paseto.ts";
import { issue, startNode } from "../helpers.ts";
import { expectError, expectOk, footerKid, fsClaims, joinToken, splitToken } from "./support.ts";

Deno.test("registry and supervisor refuse forged tokens and take genuine ones", async () => {
  const node = await startNode();
  try {
    const kid = footerKid(node.operatorToken());
    const foreign = await generateSigningKey();
    const doors = [
      {
        service: "registry" as const,
        method: "registry.register",
        params: { service: "my-svc", endpoint: "unix:///run/strata/my-svc.sock" },
        claims: { service: "registry", rights: ["registry.register"] },
      },
      {
        service: "supervisor" as const,
        method: "supervisor.logs",
        params: { service: "fs" },
        claims: { service: "supervisor", rights: ["supervisor.logs"] },
      },
    ];
    for (const d of doors) {
      // signed by a foreign key that names the node's key id
      const lying = signV4Public({ ...foreign, kid }, fsClaims(node, d.claims));
      expectError(
        await node.request(d.service, d.method, d.params, lying),
        "UNAUTHENTICATED",
        /signature is not valid/,
        "bad_signature",
      );
      // a genuine token whose payload was changed after signing
      const good = await issue(node, { service: d.service, rights: d.claims.rights });
      const parts = splitToken(good.token);
      const text = new TextDecoder().decode(parts.message).replace('"sub":"', '"sub":"x');
      const tampered = joinToken({ ...parts, message: new TextEncoder().encode(text) });
      expectError(
        await node.request(d.service, d.method, d.params, tampered),
        "UNAUTHENTICATED",
        /signature is not valid/,
        "bad_signature",
      );
      // and the genuine token is taken
      expectOk(await node.request(d.service, d.method, d.params, good.token));
    }
  } finally {
    await node.stop();
  }
});
