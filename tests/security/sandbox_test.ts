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
        assert.equal(r.fsRevocationLog, "NotCapable");
        assert.equal(r.fsListLogs, "NotCapable");
        // Its exact grants inside them still work.
        assert.equal(r.fsIdentityPub, "allowed");
        assert.equal(r.fsAudit, "allowed");
      }
    } finally {
      await temp.cleanup();
    }
  });
}

/**
 * Deno 2.9.6 puts each allow and deny in one list by a binary search whose
 * order is not transitive, and the first entry matching a path decides: a
 * folder denied with grants inside it landed before or after them by how
 * many other grants sorted first. With the production layout and export
 * roots around both Strata folders (or the folders themselves), fs was
 * refused its own audit log; in /tmp, a fourth grant in the runtime dir did
 * the same. fs is now denied each entry it is not granted, never a folder
 * that holds a grant. Every layout below runs a real Deno with fs's flags.
 */
Deno.test("sandbox: fs keeps its own grants and is refused the rest, whatever export roots cover Strata's folders", async () => {
  const base = await Deno.makeTempDir({ prefix: "strata-t-" });
  try {
    const probeFile = `${base}/probe.ts`;
    const folders = [
      ["run/strata", "var/lib/strata"],
      ["run/user/1000/strata", "home/me/.local/state/strata"],
      ["tmp/strata-me", "home/me/.local/state/strata"],
      ["tmp/strata-me", "tmp/st"],
      ["a/rt", "b/st"],
      ["b/rt", "a/st"],
      ["x/rt", "x/st"],
      ["x/st/rt", "x/st"],
    ];
    let cases = 0;
    for (const [rt, st] of folders) {
      const runtimeDir = `${base}/${rt}`;
      const stateDir = `${base}/${st}`;
      const parent = (p: string) => p.slice(0, p.lastIndexOf("/"));
      for (
        const fsRoots of [
          [base],
          [`${base}/${rt.split("/")[0]}`, `${base}/${st.split("/")[0]}`],
          [runtimeDir, stateDir],
          [parent(runtimeDir)],
          [parent(stateDir)],
        ]
      ) {
        const layout: Layout = { runtimeDir, stateDir, nodeId: "t", fsRoots };
        await Deno.mkdir(runtimeDir, { recursive: true });
        await Deno.mkdir(`${stateDir}/logs`, { recursive: true });
        const own = [runtimeFiles(layout).identityPub, stateFiles(layout).audit];
        const sf = stateFiles(layout);
        await Deno.mkdir(sf.issuedDir, { recursive: true });
        const secret = [
          sf.keys,
          sf.operatorToken,
          sf.revocationLog,
          sf.issuedLog,
          `${sf.issuedDir}/1.log`,
        ];
        for (const f of [...own, ...secret]) await Deno.writeTextFile(f, "x");
        const files = JSON.stringify([...own, ...secret]);
        await Deno.writeTextFile(
          probeFile,
          `const r = (f) => { try { f(); return "allowed"; } catch (e) { return e.name; } };
          console.log(JSON.stringify([
            ...${files}.map((p) => r(() => Deno.readTextFileSync(p))),
            r(() => Deno.readDirSync(${JSON.stringify(sf.logs)})),
          ]));`,
        );
        const { args } = programCommand("fs", layout, {
          kind: "dev",
          deno: Deno.execPath(),
          root: REPO_ROOT,
        });
        const flags = args.filter((a) => /^--(allow|deny)-(read|write)=/.test(a));
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "--no-prompt", ...flags, probeFile],
          stdin: "null",
        }).output();
        const got = JSON.parse(new TextDecoder().decode(out.stdout));
        const where = `${rt} and ${st} under roots ${fsRoots.map((r) => r.slice(base.length))}`;
        // its own two files; the secrets and the logs folder refused
        assert.deepEqual(got, [
          "allowed",
          "allowed",
          ...secret.map(() => "NotCapable"),
          "NotCapable",
        ], where);
        cases++;
      }
    }
    assert.equal(cases, 40);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
