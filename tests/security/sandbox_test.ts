/**
 * The second lock: each program, started from its entry with exactly the
 * flags src/runtime/permissions.ts gives it, is refused by Deno itself
 * (NotCapable) when it reads outside its grant, connects to a socket it does
 * not own, starts a subprocess or reads an environment variable it does not
 * need.
 */

import assert from "node:assert/strict";
import { programCommand, REPO_ROOT } from "../../src/runtime/command.ts";
import { PROGRAMS } from "../../src/runtime/permissions.ts";
import { tempLayout } from "../helpers.ts";

for (const program of PROGRAMS) {
  Deno.test(`sandbox: ${program} is refused by Deno outside its grant`, async () => {
    const temp = await tempLayout();
    try {
      const { cmd, args } = programCommand(program, temp.layout, {
        kind: "dev",
        deno: Deno.execPath(),
        root: REPO_ROOT,
      }, { run: program === "supervisor" ? [Deno.execPath()] : undefined });
      const entry = args.findIndex((a) => a.endsWith("/main.ts"));
      const probeArgs = [
        ...args.slice(0, entry),
        `--preload=${REPO_ROOT}/tests/fixtures/sandbox_probe.ts`,
        ...args.slice(entry),
      ];
      const out = await new Deno.Command(cmd, { args: probeArgs, stdin: "null" }).output();
      const text = new TextDecoder().decode(out.stdout).trim();
      assert(out.success, `probe failed: ${text}\n${new TextDecoder().decode(out.stderr)}`);
      const r = JSON.parse(text.split("\n").at(-1)!);
      assert.equal(r.program, program);
      for (
        const key of [
          "readOutside",
          "writeOutside",
          "connectForeign",
          "subprocess",
          "env",
          "sys",
          "ffi",
        ]
      ) {
        assert.equal(r[key], "NotCapable", `${program}: ${key} was ${r[key]}`);
      }
      assert.equal(r.ownSocketPermission, "granted", `${program}: its own socket is not granted`);
      // No program gets a blanket grant.
      for (const a of probeArgs) {
        assert(!/^--allow-(all|read|write|net|run|env)$/.test(a), `${program} has ${a}`);
        assert(!/^(-A|--allow-sys|--allow-ffi)/.test(a), `${program} has ${a}`);
      }
    } finally {
      await temp.cleanup();
    }
  });
}
