/**
 * The compiled binaries end to end: `deno compile` of every program for a
 * temp layout, the compiled supervisor starting the compiled services next
 * to it, and the compiled strata-ctl talking to them.
 *
 * deno compile needs the denort runtime (downloaded from dl.deno.land, or
 * DENORT_BIN). Where no working denort is available this test is skipped,
 * and says so; it is never counted as passed.
 */

import assert from "node:assert/strict";
import { compileCommand } from "../../src/runtime/command.ts";
import { socketPath } from "../../src/runtime/config.ts";
import { PROGRAMS } from "../../src/runtime/permissions.ts";
import { Client } from "../../src/ipc/client.ts";
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
