/**
 * Log lines for a person: a service's JSON log line or audit event as one
 * readable line, anything else unchanged.
 */

import assert from "node:assert/strict";
import { humanLine } from "../../src/runtime/log.ts";

Deno.test("humanLine: time, program, level when not info, message, then the fields", () => {
  const ts = "2026-12-01T17:16:04.123Z";
  assert.equal(
    humanLine(JSON.stringify({ ts, level: "info", program: "fs", msg: "listening", pid: 12 })),
    "17:16:04 fs         listening  pid=12",
  );
  assert.equal(
    humanLine(
      JSON.stringify({
        ts,
        level: "warn",
        program: "supervisor",
        msg: "exited unexpectedly",
        name: "fs",
        code: 1,
        signal: null,
      }),
      { date: true, programWidth: 8 },
    ),
    "2026-12-01 17:16:04 supervisor WARN exited unexpectedly  name=fs code=1",
  );
  // an audit event names its event; lists of words are joined, odd values quoted
  assert.equal(
    humanLine(
      JSON.stringify({
        ts,
        event: "cap.issued",
        program: "identity",
        rights: ["fs.read", "fs.list"],
        sub: "two words",
      }),
    ),
    '17:16:04 identity   cap.issued  rights=fs.read,fs.list sub="two words"',
  );
  for (const raw of ["not json", "[1,2]", '{"no":"msg"}']) assert.equal(humanLine(raw), raw);
});
