/**
 * unreachableAdvice: a tcp:// endpoint of another node (strata-ctl --node) is not told to
 * `svc start` a service, which would start this node's (seen: a mutual-TLS refusal was).
 */
import assert from "node:assert/strict";
import { unreachableAdvice } from "../../src/ctl/connect.ts";
import { StrataError } from "../../src/wire/errors.ts";

Deno.test("unreachableAdvice: another node's tcp:// endpoint points at cluster status, not svc start", () => {
  const err = new StrataError(
    "UNAVAILABLE",
    "cannot connect to tcp://127.0.0.1:7402: received fatal alert: CertificateRequired",
    { path: "tcp://127.0.0.1:7402" },
  );
  const advice = unreachableAdvice("fs", err);
  assert.doesNotMatch(advice, /svc start/);
  assert.match(advice, /CertificateRequired/);
  assert.match(advice, /strata-ctl cluster status/);
});

Deno.test("unreachableAdvice: this node's socket still says svc start", () => {
  const err = new StrataError("UNAVAILABLE", "cannot connect to /run/strata/fs.sock: no socket", {
    path: "/run/strata/fs.sock",
  });
  assert.match(unreachableAdvice("fs", err), /strata-ctl svc start fs/);
});
