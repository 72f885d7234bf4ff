/**
 * The compiled binaries: `deno task compile` builds all five on a cold
 * cache with any executable as DENORT_BIN, with each program's flags baked
 * in; and, end to end, the compiled supervisor starting the compiled
 * services next to it, and the compiled strata-ctl talking to them.
 *
 * Running a compiled binary needs a real denort runtime (downloaded from
 * dl.deno.land, or DENORT_BIN). Where none is available the end-to-end test
 * is skipped, and says so; it is never counted as passed. The build test
 * always runs: building needs no working runtime.
 */

import assert from "node:assert/strict";
import {
  BINARY_NAMES,
  compileCommand,
  REPO_ROOT,
  serviceV8Flags,
} from "../../src/runtime/command.ts";
import { type Layout, layoutArgs, socketPath } from "../../src/runtime/config.ts";
import { permissionSet, PROGRAMS } from "../../src/runtime/permissions.ts";
import { Client } from "../../src/server/client.ts";
import { alive, tempLayout, waitFor } from "../helpers.ts";

/** Whether DENORT_BIN names a runtime that really runs compiled programs. */
function denortWorks(): boolean {
  const denort = Deno.env.get("DENORT_BIN");
  if (!denort) return false;
  const dir = Deno.makeTempDirSync({ prefix: "strata-denort-" });
  try {
    Deno.writeTextFileSync(`${dir}/hello.ts`, 'console.log("compiled-ok");');
    const built = new Deno.Command(Deno.execPath(), {
      args: ["compile", "--quiet", `--output=${dir}/hello`, `${dir}/hello.ts`],
      env: { DENORT_BIN: denort },
    }).outputSync();
    if (!built.success) return false;
    const ran = new Deno.Command(`${dir}/hello`).outputSync();
    return new TextDecoder().decode(ran.stdout).trim() === "compiled-ok";
  } catch {
    return false;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const WORKS = denortWorks();

/** The metadata `deno compile` appends to a binary: the JSON object that starts with "argv". */
function bakedMetadata(binary: Uint8Array): Record<string, unknown> {
  const text = new TextDecoder("latin1").decode(binary);
  const start = text.indexOf('{"argv":');
  assert(start >= 0, "no deno compile metadata in the binary");
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return JSON.parse(text.slice(start, i + 1));
  }
  throw new Error("unterminated deno compile metadata");
}

Deno.test("deno task compile builds all five on a cold cache, the V8 flags baked in", async () => {
  const dir = await Deno.makeTempDir({ prefix: "strata-compile-" });
  try {
    const layout: Layout = {
      runtimeDir: `${dir}/run`,
      stateDir: `${dir}/state`,
      nodeId: "cold",
      fsRoots: [`${dir}/srv`],
    };
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "--quiet",
        "compile",
        `--out=${dir}/bin`,
        ...layoutArgs(layout),
      ],
      cwd: REPO_ROOT,
      // A fresh DENO_DIR is a cold cache; building takes any file as the runtime.
      env: { DENO_DIR: `${dir}/deno`, DENORT_BIN: "/bin/true", NO_COLOR: "1" },
    }).output();
    const log = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.success, log);
    assert.match(log, /compiled 5 programs into /);
    for (const program of PROGRAMS) {
      const meta = bakedMetadata(await Deno.readFile(`${dir}/bin/${BINARY_NAMES[program]}`));
      const v8 = meta.v8_flags as string[];
      if (program === "ctl") assert.ok(!v8.includes("--expose-gc"), `${program}: ${v8}`);
      else {
        for (const flag of serviceV8Flags(program).split(",")) {
          assert.ok(v8.includes(flag), `${program}: ${flag} in ${v8}`);
        }
      }
      assert.deepEqual(meta.argv, layoutArgs(layout), program);
      // The grants are the permission module's (ctl's download folder is ".").
      const perms = meta.permissions as Record<string, string[] | null>;
      const sockets = [...new Set(permissionSet(program, layout).sockets)];
      assert.deepEqual(perms.allow_net, sockets.map((s) => `unix:${s}`), program);
      assert.equal(perms.allow_run !== null, program === "supervisor", program);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task compile names a missing DENORT_BIN as the cause", async () => {
  const dir = await Deno.makeTempDir({ prefix: "strata-compile-" });
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "compile", `--out=${dir}/bin`],
      cwd: REPO_ROOT,
      env: { DENORT_BIN: `${dir}/no-denort`, NO_COLOR: "1" },
    }).output();
    assert(!out.success);
    assert.match(new TextDecoder().decode(out.stderr), /DENORT_BIN names no file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: WORKS
    ? "compiled binaries run end to end"
    : "compiled binaries run end to end (skipped: no working denort runtime; set DENORT_BIN)",
  ignore: !WORKS,
  fn: async () => {
    const temp = await tempLayout();
    const bin = `${temp.root}/bin`;
    try {
      for (const program of PROGRAMS) {
        const { cmd, args } = compileCommand(program, temp.layout, {
          deno: Deno.execPath(),
          outDir: bin,
          binDir: bin,
        });
        const out = await new Deno.Command(cmd, { args }).output();
        assert(out.success, new TextDecoder().decode(out.stderr));
      }
      const sup = new Deno.Command(`${bin}/supervisor`, { stdout: "piped", stderr: "piped" })
        .spawn();
      try {
        await waitFor("every service Healthy", async () => {
          const c = await Client.connect(socketPath(temp.layout, "supervisor"));
          try {
            const r = await c.call<{ services: { state: string }[] }>("supervisor.svc.list");
            return r.services.every((s) => s.state === "Healthy");
          } finally {
            await c.close();
          }
        }, 20_000);
        const ctl = await new Deno.Command(`${bin}/strata-ctl`, { args: ["supervisor.status"] })
          .output();
        assert.equal(ctl.code, 0, new TextDecoder().decode(ctl.stderr));
        assert.match(new TextDecoder().decode(ctl.stdout), /"node_id": "test"/);
      } finally {
        sup.kill("SIGTERM");
        const st = await sup.status;
        await sup.stdout.cancel();
        await sup.stderr.cancel();
        assert(!alive(sup.pid));
        assert.equal(st.code, 0);
      }
    } finally {
      await temp.cleanup();
    }
  },
});
