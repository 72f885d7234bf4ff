/**
 * Unit tests for src/ctl/main.ts: strata-ctl's command-line parsing.
 */

import assert from "node:assert/strict";
import { helpText, parseCtlArgs, UsageError } from "../../src/ctl/main.ts";
import { METHODS } from "../../src/ctl/methods.ts";
import { ConfigError, DEFAULT_LAYOUT } from "../../src/runtime/config.ts";

Deno.test("parseCtlArgs: the seed CLI's -token T form", () => {
  const a = parseCtlArgs(["-token", "v4.public.T", "fs.list", '{"path":"/tmp"}']);
  assert.equal(a.token, "v4.public.T");
  assert.deepEqual(a.positionals, ["fs.list", '{"path":"/tmp"}']);
});

Deno.test("parseCtlArgs: --token T and --token=T", () => {
  assert.equal(parseCtlArgs(["--token", "T1", "fs.list"]).token, "T1");
  assert.equal(parseCtlArgs(["--token=T2", "fs.list"]).token, "T2");
  // an inline value may itself contain "="
  assert.equal(parseCtlArgs(["--token=a=b", "fs.list"]).token, "a=b");
});

Deno.test("parseCtlArgs: options may follow the command", () => {
  const a = parseCtlArgs(["fs.list", '{"path":"/tmp"}', "--token", "T", "--timeout=250"]);
  assert.equal(a.token, "T");
  assert.equal(a.timeoutMs, 250);
  assert.deepEqual(a.positionals, ["fs.list", '{"path":"/tmp"}']);
});

Deno.test("parseCtlArgs: no options means the default layout, no token, 10 s timeout", () => {
  const a = parseCtlArgs(["supervisor.status"]);
  assert.equal(a.token, undefined);
  assert.equal(a.timeoutMs, 10_000);
  assert.equal(a.json, false);
  assert.equal(a.help, false);
  assert.deepEqual(a.layout, { ...DEFAULT_LAYOUT, fsRoots: [] });
});

Deno.test("parseCtlArgs: layout options set the layout, in either spelling", () => {
  const a = parseCtlArgs([
    "--runtime-dir",
    "/run/x/",
    "--state-dir=/var/lib/x",
    "-node-id",
    "n7",
    "--fs-roots=/ignored",
    "--group-access",
    "registry.list",
  ]);
  assert.equal(a.layout.runtimeDir, "/run/x");
  assert.equal(a.layout.stateDir, "/var/lib/x");
  assert.equal(a.layout.nodeId, "n7");
  assert.deepEqual(a.positionals, ["registry.list"]);
});

Deno.test("parseCtlArgs: a bad layout value is refused by the layout check", () => {
  assert.throws(() => parseCtlArgs(["--runtime-dir", "relative/dir", "fs.list"]), ConfigError);
  assert.throws(() => parseCtlArgs(["--node-id=bad id", "fs.list"]), ConfigError);
});

Deno.test("parseCtlArgs: an option without its value is a UsageError naming it", () => {
  assert.throws(
    () => parseCtlArgs(["fs.list", "--token"]),
    (e: unknown) => e instanceof UsageError && /--token needs a value/.test(e.message),
  );
  assert.throws(() => parseCtlArgs(["-token"]), /-token needs a value/);
});

Deno.test("parseCtlArgs: --timeout takes positive milliseconds", () => {
  assert.equal(parseCtlArgs(["--timeout", "1", "x.y"]).timeoutMs, 1);
  for (const bad of ["0", "-5", "1.5", "soon"]) {
    assert.throws(() => parseCtlArgs([`--timeout=${bad}`, "x.y"]), UsageError, bad);
  }
});

Deno.test("parseCtlArgs: an unknown option before the command is a UsageError; after it, it belongs to the command", () => {
  assert.throws(
    () => parseCtlArgs(["--verbose", "fs.list"]),
    /unknown option --verbose; see strata-ctl --help/,
  );
  assert.deepEqual(parseCtlArgs(["fs", "get", "--out", "/tmp/x"]).positionals, [
    "fs",
    "get",
    "--out",
    "/tmp/x",
  ]);
});

Deno.test("parseCtlArgs: --json, --help and -h; -- ends the options", () => {
  assert.equal(parseCtlArgs(["--json", "x.y"]).json, true);
  assert.equal(parseCtlArgs(["--help"]).help, true);
  assert.equal(parseCtlArgs(["-h"]).help, true);
  const a = parseCtlArgs(["--", "--token", "x"]);
  assert.equal(a.token, undefined);
  assert.deepEqual(a.positionals, ["--token", "x"]);
});

Deno.test("helpText: lists every method, marking the protected ones", () => {
  const text = helpText();
  for (const m of METHODS) {
    assert.ok(text.includes(m.method), m.method);
    const line = text.split("\n").find((l) => l.trimStart().startsWith(m.method + " "))!;
    assert.equal(line.includes(" * "), m.protected, m.method);
  }
  assert.match(text, /strata-ctl \[-token T \| --token T\] METHOD/);
});

Deno.test("parseCtlArgs: --tls-ca and the layout's tcp:// listeners become the layout", () => {
  const args = parseCtlArgs([
    "--fs-listen=tcp://127.0.0.1:7402",
    "--tls-cert=/etc/s/c.pem",
    "--tls-key=/etc/s/k.pem",
    "--tls-ca",
    "/etc/s/ca.pem",
    "status",
  ]);
  assert.deepEqual(args.layout.listen, { fs: "tcp://127.0.0.1:7402" });
  assert.deepEqual(args.layout.tls, {
    cert: "/etc/s/c.pem",
    key: "/etc/s/k.pem",
    ca: "/etc/s/ca.pem",
  });
  assert.deepEqual(args.positionals, ["status"]);
});

Deno.test("parseCtlArgs: --node NAME before or after the command; --cluster-peers", () => {
  assert.equal(parseCtlArgs(["--node", "b", "fs", "get", "/x"]).node, "b");
  assert.equal(parseCtlArgs(["fs", "get", "/x", "--node=b"]).node, "b");
  assert.equal(parseCtlArgs(["fs.list"]).node, undefined);
  const a = parseCtlArgs([
    "--cluster=c",
    "--etcd-endpoints=http://127.0.0.1:2379",
    "--cluster-root=/r.pub",
    "--cluster-peers=10.0.0.2:7402,10.0.0.3:7402",
    "svc",
    "list",
    "--all-nodes",
  ]);
  assert.deepEqual(a.layout.cluster?.peers, ["10.0.0.2:7402", "10.0.0.3:7402"]);
});

Deno.test("parseCtlArgs: --version before a command is the version command; after one, the command's", () => {
  assert.deepEqual(parseCtlArgs(["--version"]).positionals, ["version"]);
  assert.deepEqual(parseCtlArgs(["--json", "--version"]).positionals, ["version"]);
  assert.deepEqual(parseCtlArgs(["status", "--version"]).positionals, ["status", "--version"]);
});
