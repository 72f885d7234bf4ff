/**
 * strata-ctl and the development launcher (`deno task ctl`, `deno task
 * start`) import no `node:` module before they run: any of them starts
 * Deno's Node layer, 15-20 ms of every run (docs/performance.md). Nor do
 * supervisor and registry, which verify tokens with WebCrypto (`light` in
 * node/service.ts): the layer would cost each about 21 ms of start-up
 * and 0.4 MB. Read from
 * `deno info --json`, static imports only (type-only and dynamic ones load
 * nothing at start).
 */

import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

interface Info {
  roots: string[];
  modules: {
    specifier: string;
    dependencies?: { code?: { specifier?: string }; isDynamic?: boolean }[];
  }[];
}

/** The `node:` modules `entry` loads before it runs, each with the module that imports it. */
async function nodeImportsOf(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", `--config=${ROOT}deno.json`, `${ROOT}${entry}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as Info;
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const found: string[] = [];
  const seen = new Set<string>();
  const walk = (specifier: string, from: string) => {
    if (seen.has(specifier)) return;
    seen.add(specifier);
    if (specifier.startsWith("node:")) found.push(`${specifier} (imported by ${from})`);
    for (const d of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (!d.isDynamic && d.code?.specifier) walk(d.code.specifier, specifier);
    }
  };
  walk(info.roots[0], entry);
  // The walk must have reached the program's modules, or it proves nothing.
  assert.ok(seen.size > 10, `${entry}: only ${seen.size} modules reached`);
  return found;
}

Deno.test("strata-ctl loads no node: module at start", async () => {
  assert.deepEqual(await nodeImportsOf("src/ctl/main.ts"), []);
});

Deno.test("the development launcher loads no node: module at start", async () => {
  assert.deepEqual(await nodeImportsOf("scripts/launch.ts"), []);
});

Deno.test("supervisor and registry load no node: module at start", async () => {
  assert.deepEqual(await nodeImportsOf("src/supervisor/main.ts"), []);
  assert.deepEqual(await nodeImportsOf("src/registry/main.ts"), []);
});

Deno.test("the check sees a node: module a service does load (so it can fail)", async () => {
  const found = await nodeImportsOf("src/fs/main.ts");
  assert.ok(found.some((f) => f.startsWith("node:fs ")), found.join(", "));
});
