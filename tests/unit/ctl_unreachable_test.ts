/**
 * unreachableAdvice: a tcp:// endpoint of another node (strata-ctl --node) is not told to
 * `svc start` a service, which would start this node's (seen: a mutual-TLS refusal was); a
 * socket this user may not use is not called "not running". It decides by the client's
 * details.reason (src/server/transport.ts), not by the words of the message.
 */
import assert from "node:assert/strict";
import { unreachableAdvice } from "../../src/ctl/connect.ts";
import { StrataError } from "../../src/wire/errors.ts";
import { unreachable } from "../../src/server/transport.ts";

Deno.test("unreachableAdvice: another node's tcp:// endpoint points at cluster status, not svc start", () => {
  const err = new StrataError(
    "UNAVAILABLE",
    "cannot connect to tcp://127.0.0.1:7402: received fatal alert: CertificateRequired",
    { reason: "tls_failed", endpoint: "tcp://127.0.0.1:7402" },
  );
  const advice = unreachableAdvice("fs", err);
  assert.doesNotMatch(advice.hint, /svc start/);
  assert.match(advice.message, /CertificateRequired/);
  assert.match(advice.hint, /strata-ctl cluster status/);
});

Deno.test("unreachableAdvice: this node's socket still says svc start", () => {
  const err = new StrataError("UNAVAILABLE", "cannot connect to /run/strata/fs.sock: no socket", {
    reason: "not_running",
    path: "/run/strata/fs.sock",
  });
  assert.match(unreachableAdvice("fs", err).hint, /strata-ctl svc start fs/);
});

Deno.test('unreachableAdvice: a socket this user may not use is not called "not running"', () => {
  const err = new StrataError(
    "UNAVAILABLE",
    "cannot connect to /run/strata/supervisor.sock: Permission denied (os error 13)",
    { reason: "permission_denied", path: "/run/strata/supervisor.sock" },
  );
  const advice = unreachableAdvice("supervisor", err);
  assert.doesNotMatch(advice.message, /not running/);
  assert.match(advice.message, /^cannot use the supervisor's socket \(.*Permission denied/);
  assert.match(advice.hint, /as the user the node runs as.*STRATA_GROUP_ACCESS=1/);
  const fs = unreachableAdvice("fs", err);
  assert.doesNotMatch(fs.hint, /svc start/);
});

Deno.test("unreachableAdvice: the reason decides, not the message's words", () => {
  // The system's words for EACCES may be other ones (another libc, a translation): still "not yours".
  const denied = new StrataError(
    "UNAVAILABLE",
    "cannot connect to /run/strata/supervisor.sock: Keine Berechtigung (os error 13)",
    { reason: "permission_denied", path: "/run/strata/supervisor.sock" },
  );
  assert.match(unreachableAdvice("supervisor", denied).message, /^cannot use the supervisor's/);
  assert.match(unreachableAdvice("fs", denied).hint, /as the user the node runs as/);
  // And words that look like a refusal (here in the socket's path) do not make one.
  const absent = new StrataError(
    "UNAVAILABLE",
    "cannot connect to /srv/permission denied/supervisor.sock: no socket there",
    { reason: "not_running", path: "/srv/permission denied/supervisor.sock" },
  );
  assert.match(unreachableAdvice("supervisor", absent).message, /^the supervisor is not running/);
  // A firewall's EPERM on a tcp:// dial is PermissionDenied too: not "run as the node's user".
  const peer = unreachable(
    "tcp://10.0.0.9:7402",
    new Deno.errors.PermissionDenied("Operation not permitted (os error 1)"),
  );
  assert.equal(peer.details?.reason, "connect_failed");
  assert.doesNotMatch(
    unreachableAdvice("fs", peer).hint,
    /--cluster-peers|the user the node runs as/,
  );
});

Deno.test("unreachableAdvice: the dialer's tcp:// endpoint (details.endpoint) is another node's too; a peer not granted names --cluster-peers", () => {
  const err = new StrataError(
    "UNAVAILABLE",
    "cannot connect to tcp://127.0.0.1:27402: this program is not permitted to use that endpoint",
    { reason: "not_permitted", endpoint: "tcp://127.0.0.1:27402" },
  );
  const advice = unreachableAdvice("fs", err);
  assert.doesNotMatch(advice.hint, /svc start/);
  assert.match(advice.hint, /--cluster-peers \(STRATA_CLUSTER_PEERS\): add 127\.0\.0\.1:27402/);
  const refused = new StrataError(
    "UNAVAILABLE",
    "cannot connect to tcp://10.0.0.2:7402: nothing is listening",
    { reason: "not_running", endpoint: "tcp://10.0.0.2:7402" },
  );
  assert.match(unreachableAdvice("fs", refused).hint, /strata-ctl cluster status/);
});
