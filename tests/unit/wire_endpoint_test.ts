/** Unit tests for src/wire/endpoint.ts: the one reading of endpoint URLs. */

import assert from "node:assert/strict";
import { formatEndpoint, netGrant, parseEndpoint } from "../../src/wire/endpoint.ts";
import { StrataError } from "../../src/wire/errors.ts";

Deno.test("parseEndpoint: unix:// absolute paths and tcp://host:port parse; bare paths are unix", () => {
  assert.deepEqual(parseEndpoint("unix:///run/strata/fs.sock"), {
    kind: "unix",
    path: "/run/strata/fs.sock",
  });
  assert.deepEqual(parseEndpoint("/run/strata/fs.sock"), {
    kind: "unix",
    path: "/run/strata/fs.sock",
  });
  assert.deepEqual(parseEndpoint("tcp://127.0.0.1:7402"), {
    kind: "tcp",
    host: "127.0.0.1",
    port: 7402,
  });
  assert.deepEqual(parseEndpoint("tcp://node-b.example:443"), {
    kind: "tcp",
    host: "node-b.example",
    port: 443,
  });
});

Deno.test("parseEndpoint: anything else is INVALID_ARGUMENT naming the field and the form", () => {
  const bad: [string, RegExp][] = [
    ["unix://relative.sock", /params\.endpoint: must be "unix:\/\/\/absolute/],
    ["unix:///run/../etc/x.sock", /must be "unix:\/\/\//],
    ["unix:///run/\0x", /must be "unix:\/\/\//],
    ["tcp://127.0.0.1", /must be "tcp:\/\/host:port"/],
    ["tcp://127.0.0.1:0", /port 1-65535/],
    ["tcp://127.0.0.1:65536", /port 1-65535/],
    ["tcp://[::1]:80", /tcp:\/\/host:port/],
    ["tcp://a b:80", /tcp:\/\/host:port/],
    ["tcp://h:80/path", /tcp:\/\/host:port/],
    ["tcp://user@h:80", /tcp:\/\/host:port/],
    ["http://h:80", /must start with unix:\/\/ or tcp:\/\//],
    ["", /must start with unix:\/\/ or tcp:\/\//],
  ];
  for (const [endpoint, message] of bad) {
    assert.throws(
      () => parseEndpoint(endpoint, "params.endpoint"),
      (e: unknown) =>
        e instanceof StrataError && e.errorName === "INVALID_ARGUMENT" && message.test(e.message),
      JSON.stringify(endpoint),
    );
  }
});

Deno.test("formatEndpoint and netGrant: the URL back, and the exact --allow-net entry", () => {
  for (const url of ["unix:///run/strata/fs.sock", "tcp://127.0.0.1:7402"]) {
    assert.equal(formatEndpoint(parseEndpoint(url)), url);
  }
  assert.equal(netGrant(parseEndpoint("unix:///run/strata/fs.sock")), "unix:/run/strata/fs.sock");
  assert.equal(netGrant(parseEndpoint("tcp://127.0.0.1:7402")), "127.0.0.1:7402");
});
