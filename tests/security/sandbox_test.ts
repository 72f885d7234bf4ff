/**
 * The second lock: each program, started from its entry with exactly the
 * flags src/runtime/permissions.ts gives it, is refused by Deno itself
 * (NotCapable) when it reads outside its grant, connects to a socket it does
 * not own, starts a subprocess or reads an environment variable it does not
 * need.
 */

import assert from "node:assert/strict";
import { programCommand, REPO_ROOT } from "../../src/runtime/command.ts";
import { type Program, PROGRAMS } from "../../src/runtime/permissions.ts";
import { type Layout, runtimeFiles, stateFiles } from "../../src/runtime/config.ts";
import { devTmpLayout, tempLayout } from "../helpers.ts";

/** Runs `program` with its real flags under `layout` and the probe preloaded: its report and argv. */
async function probe(
  program: Program,
  layout: Layout,
): Promise<{ report: Record<string, string>; args: string[] }> {
  const { cmd, args } = programCommand(program, layout, {
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
  return { report: r, args: probeArgs };
}

for (const program of PROGRAMS) {
  Deno.test(`sandbox: ${program} is refused by Deno outside its grant`, async () => {
    const temp = await tempLayout();
    try {
      const { report: r, args: probeArgs } = await probe(program, temp.layout);
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

for (const stateUnderTmp of [false, true]) {
  const name = stateUnderTmp ? "the state dir under exported /tmp" : "the default dev layout";
  Deno.test(`sandbox: ${name}: only identity reads the key; fs nothing of Strata's own folders`, async () => {
    const temp = await devTmpLayout(stateUnderTmp);
    try {
      const { layout } = temp;
      const st = stateFiles(layout);
      const rt = runtimeFiles(layout);
      await Deno.mkdir(layout.stateDir, { recursive: true, mode: 0o700 });
      await Deno.mkdir(layout.runtimeDir, { mode: 0o700 });
      for (const f of [st.keys, st.operatorToken, st.audit, rt.identityPub]) {
        await Deno.writeTextFile(f, "x");
      }
      for (const program of PROGRAMS) {
        const { report: r } = await probe(program, layout);
        const expected = program === "identity" ? "allowed" : "NotCapable";
        assert.equal(r.readKey, expected, `${program} reading keys.json`);
        if (program !== "fs") continue;
        assert.equal(r.fsOperatorToken, "NotCapable");
        assert.equal(r.fsListState, "NotCapable");
        assert.equal(r.fsListRuntime, "NotCapable");
        // Its exact grants inside them still work (the more specific rule wins).
        assert.equal(r.fsIdentityPub, "allowed");
        assert.equal(r.fsAudit, "allowed");
      }
    } finally {
      await temp.cleanup();
    }
  });
}
