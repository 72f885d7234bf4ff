/**
 * Secrets at rest: the operator token, keys.json and the revocation log are
 * 0600, sockets 0600, the runtime and state dirs 0700; the audit log records
 * issuance, revocation and refusals and never a token or a secret key.
 */

import assert from "node:assert/strict";
import {
  runtimeFiles,
  type ServiceName,
  socketPath,
  stateFiles,
} from "../../src/runtime/config.ts";
import { issue, startNode, waitFor } from "../helpers.ts";
import { expectError, expectOk } from "./support.ts";

function mode(path: string): string {
  return (Deno.statSync(path).mode! & 0o777).toString(8).padStart(3, "0");
}

const SERVICES: ServiceName[] = ["supervisor", "registry", "identity", "fs"];

Deno.test("files: modes of secrets and sockets, and an audit log without tokens", async (t) => {
  const node = await startNode();
  try {
    const st = stateFiles(node.layout);
    const rt = runtimeFiles(node.layout);
    const root = node.exportRoot;
    const tokens: string[] = [node.operatorToken()];
    const a = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
    const b = await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: root });
    tokens.push(a.token, b.token);
    expectOk(
      await node.request("identity", "identity.revoke", { cap_id: a.cap_id }, node.operatorToken()),
    );
    // Refusals: a revoked token, no token, a garbage token, a wrong right.
    expectError(
      await node.request("fs", "fs.list", { path: root }, a.token),
      "UNAUTHENTICATED",
      /revoked/,
      "revoked",
    );
    expectError(await node.request("fs", "fs.list", { path: root }), "UNAUTHENTICATED");
    expectError(
      await node.request("fs", "fs.list", { path: root }, "v4.public.xx"),
      "UNAUTHENTICATED",
    );
    expectError(
      await node.request("fs", "fs.open", { path: `${root}/x` }, b.token),
      "PERMISSION_DENIED",
    );
    expectError(
      await node.request(
        "identity",
        "identity.issue",
        { service: "fs", rights: ["fs.read"] },
        b.token,
      ),
      "PERMISSION_DENIED",
    );

    await t.step("secrets in the state dir are 0600", () => {
      assert.equal(mode(st.operatorToken), "600", "operator token");
      assert.equal(mode(st.keys), "600", "keys.json");
      assert.equal(mode(st.revocationLog), "600", "revocation log");
      assert.equal(mode(st.audit), "600", "audit log");
      assert.equal(mode(rt.revocations), "600", "published revocation list");
      // The public key set is public on purpose, but not writable by others.
      assert.equal(mode(rt.identityPub).slice(1), "44", "identity.pub");
    });

    await t.step("no temporary copy of a secret is left behind", () => {
      for (const p of [st.keysTmp, st.operatorTokenTmp, st.revocationLogTmp]) {
        assert.throws(() => Deno.statSync(p), Deno.errors.NotFound, p);
      }
    });

    await t.step("sockets are 0600, the runtime and state dirs 0700", () => {
      for (const s of SERVICES) {
        const path = socketPath(node.layout, s);
        assert(Deno.statSync(path).isSocket, `${path} is a socket`);
        assert.equal(mode(path), "600", `${s}.sock`);
      }
      assert.equal(mode(node.layout.runtimeDir), "700", "runtime dir");
      assert.equal(mode(node.layout.stateDir), "700", "state dir");
    });

    await t.step("the audit log has cap.issued, cap.revoked and auth.denied", async () => {
      type Line = Record<string, unknown> & { event: string };
      let lines: Line[] = [];
      await waitFor("audit lines to be flushed", async () => {
        const text = await Deno.readTextFile(st.audit);
        lines = text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
        return lines.some((l) => l.event === "cap.revoked") &&
          lines.filter((l) => l.event === "auth.denied").length >= 5;
      }, 5000);
      const issued = lines.filter((l) => l.event === "cap.issued").map((l) => l.cap_id);
      assert(issued.includes(a.cap_id) && issued.includes(b.cap_id), "both issuances audited");
      const revoked = lines.find((l) => l.event === "cap.revoked");
      assert.equal(revoked?.cap_id, a.cap_id);
      const denied = lines.filter((l) => l.event === "auth.denied");
      const reasons = new Set(denied.map((l) => l.reason));
      for (const r of ["revoked", "no_token", "malformed", "missing_right", "wrong_service"]) {
        assert(reasons.has(r), `no auth.denied with reason ${r}: ${JSON.stringify(denied)}`);
      }
      assert(
        denied.some((l) => l.reason === "revoked" && l.cap_id === a.cap_id),
        "the refusal names the cap_id",
      );
    });

    await t.step(
      "no token and no secret key ever reaches the audit log or the output",
      async () => {
        const text = await Deno.readTextFile(st.audit);
        const keys = await Deno.readTextFile(st.keys);
        const secrets = [...keys.matchAll(/k4\.secret\.[A-Za-z0-9_-]+/g)].map((m) => m[0]);
        assert(secrets.length >= 1);
        for (const [name, body] of [["audit log", text], ["node output", node.output()]]) {
          assert(!body.includes("v4.public."), `${name} contains a token`);
          assert(!body.includes("k4.secret."), `${name} contains a secret key`);
          for (const tok of tokens) {
            // Not even the signature part of a token on its own.
            const sig = tok.split(".")[2].slice(-40);
            assert(!body.includes(sig), `${name} contains part of a token`);
          }
          for (const s of secrets) assert(!body.includes(s.slice(10, 50)), `${name} has a key`);
        }
      },
    );
  } finally {
    await node.stop();
  }
});
