/**
 * The services run from their bundles (scripts/bundle.ts), as the installed
 * form and the bench run them: a supervisor started from its bundle starts
 * its children from theirs, each carrying its npm packages and importing
 * only Deno's `node:` modules, and the node answers, revokes and refuses as
 * one run from the modules does.
 */

import assert from "node:assert/strict";
import { BUNDLED_PROGRAMS, bundleServices } from "../../scripts/bundle.ts";
import { REPO_ROOT } from "../../src/runtime/command.ts";
import { startNode } from "../helpers.ts";

const decoder = new TextDecoder();

/** A process's command line (through cat: Deno refuses /proc/<pid> without -A). */
function cmdline(pid: number): string[] {
  const out = new Deno.Command("cat", { args: [`/proc/${pid}/cmdline`] }).outputSync();
  return decoder.decode(out.stdout).split("\0").filter((w) => w !== "");
}

Deno.test("bundled services: the supervisor starts its children from their bundles, and they serve", async () => {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-bundle-" });
  try {
    // given every service bundled
    await bundleServices(Deno.execPath(), REPO_ROOT, dir);
    for (const program of BUNDLED_PROGRAMS) {
      const text = await Deno.readTextFile(`${dir}/dist/${program}/main.js`);
      // its npm packages inside: what it still imports is Deno's own node: modules
      const imports = [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]);
      assert.deepEqual(imports.filter((s) => !s.startsWith("node:")), [], program);
      // and its source map beside it, unnamed by the bundle (Deno would load a named one at start)
      assert.ok(!text.includes("sourceMappingURL"), program);
      const mapFile = `${dir}/dist/${program}/main.js.map`;
      const map = JSON.parse(await Deno.readTextFile(mapFile)) as { sources: string[] };
      const sources = map.sources.map((s) => new URL(s, `file://${mapFile}`).pathname);
      assert.ok(sources.includes(`${REPO_ROOT}/src/${program}/main.ts`), program);
    }
    // when a node starts from them
    const node = await startNode({ bundles: dir });
    try {
      const words = cmdline(node.process.pid);
      assert.ok(words.includes(`${dir}/dist/supervisor/main.js`), words.join(" "));
      const r = await node.request("supervisor", "supervisor.svc.list");
      assert.ok(r.ok, JSON.stringify(r));
      const services = (r.result as { services: { name: string; pid: number }[] }).services;
      assert.equal(services.length, 3);
      for (const s of services) {
        // then each child runs its own bundle, with no config to read
        const child = cmdline(s.pid);
        assert.ok(child.includes(`${dir}/dist/${s.name}/main.js`), child.join(" "));
        assert.ok(child.includes("--no-config"), child.join(" "));
        assert.ok(!child.some((w) => w.startsWith("--allow-all") || w === "-A"), child.join(" "));
      }
      // and the node works: a token issued, used at fs, revoked, then refused
      const op = node.operatorToken();
      await Deno.writeTextFile(`${node.exportRoot}/hello.txt`, "hi");
      const issued = await node.request("identity", "identity.issue", {
        service: "fs",
        actions: ["list"],
      }, op);
      assert.ok(issued.ok, JSON.stringify(issued));
      const { token, cap_id } = issued.result as { token: string; cap_id: string };
      const listed = await node.request("fs", "fs.list", { path: node.exportRoot }, token);
      assert.ok(listed.ok, JSON.stringify(listed));
      const names = (listed.result as { entries: { name: string }[] }).entries.map((e) => e.name);
      assert.deepEqual(names, ["hello.txt"]);
      const revoked = await node.request("identity", "identity.revoke", { cap_id }, op);
      assert.ok(revoked.ok, JSON.stringify(revoked));
      const refused = await node.request("fs", "fs.list", { path: node.exportRoot }, token);
      assert.equal(
        !refused.ok && refused.error.details?.reason,
        "revoked",
        JSON.stringify(refused),
      );
    } finally {
      await node.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bundleServices: a DENO_DIR without esbuild fetches it once and bundles every service", async () => {
  // given a DENO_DIR that has the locked npm packages (the user's, linked) but no esbuild, as on
  // a machine that never ran `deno bundle`
  const info = JSON.parse(decoder.decode(
    (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output()).stdout,
  )) as { npmCache: string };
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-bundle-" });
  try {
    await Deno.mkdir(`${dir}/deno`);
    await Deno.symlink(info.npmCache, `${dir}/deno/npm`);
    // when every service is bundled with it
    await bundleServices(Deno.execPath(), REPO_ROOT, `${dir}/out`, { DENO_DIR: `${dir}/deno` });
    // then each bundle is there: the first `deno bundle` fetched esbuild before the others ran
    // (four at once raced to copy it into place, and most failed)
    for (const program of BUNDLED_PROGRAMS) {
      assert.ok((await Deno.stat(`${dir}/out/dist/${program}/main.js`)).size > 10_000, program);
    }
    const dl = [...Deno.readDirSync(`${dir}/deno/dl`)].map((e) => e.name);
    assert.equal(dl.filter((n) => n.startsWith("esbuild-")).length, 1, dl.join(" "));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
