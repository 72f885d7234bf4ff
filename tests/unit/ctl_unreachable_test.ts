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
  assert.doesNotMatch(advice.hint, /svc start/);
  assert.match(advice.message, /CertificateRequired/);
  assert.match(advice.hint, /strata-ctl cluster status/);
});

Deno.test("unreachableAdvice: this node's socket still says svc start", () => {
  const err = new StrataError("UNAVAILABLE", "cannot connect to /run/strata/fs.sock: no socket", {
    path: "/run/strata/fs.sock",
  });
  assert.match(unreachableAdvice("fs", err).hint, /strata-ctl svc start fs/);
});

Deno.test('unreachableAdvice: a socket this user may not use is not called "not running"', () => {
  const err = new StrataError(
    "UNAVAILABLE",
    "cannot connect to /run/strata/supervisor.sock: Permission denied (os error 13)",
    { path: "/run/strata/supervisor.sock" },
  );
  const advice = unreachableAdvice("supervisor", err);
  assert.doesNotMatch(advice.message, /not running/);
  assert.match(advice.message, /^cannot use the supervisor's socket \(.*Permission denied/);
  assert.match(advice.hint, /as the user the node runs as.*STRATA_GROUP_ACCESS=1/);
  const fs = unreachableAdvice("fs", err);
  assert.doesNotMatch(fs.hint, /svc start/);
});

Deno.test("unreachableAdvice: the dialer's tcp:// endpoint (details.endpoint) is another node's too; a peer not granted names --cluster-peers", () => {
  const err = new StrataError(
    "UNAVAILABLE",
    "cannot connect to tcp://127.0.0.1:27402: this program is not permitted to use that endpoint",
    { endpoint: "tcp://127.0.0.1:27402" },
  );
  const advice = unreachableAdvice("fs", err);
  assert.doesNotMatch(advice.hint, /svc start/);
  assert.match(advice.hint, /--cluster-peers \(STRATA_CLUSTER_PEERS\): add 127\.0\.0\.1:27402/);
  const refused = new StrataError(
    "UNAVAILABLE",
    "cannot connect to tcp://10.0.0.2:7402: nothing is listening",
    {
      endpoint: "tcp://10.0.0.2:7402",
    },
  );
  assert.match(unreachableAdvice("fs", refused).hint, /strata-ctl cluster status/);
});
