/**
 * Adding a method is a two-file change, and never strands the operator: a
 * copy of the project is started, its operator token kept; the blocks of
 * docs/adding_a_method.md are applied to the copy as written (fs.stat); the
 * node restarts on the same state dir, and the old operator token calls
 * fs.stat and delegates it.
 * @module
 */

import assert from "node:assert/strict";
import { posix } from "node:path";
import { REPO_ROOT, startNode, tempLayout } from "../helpers.ts";

const PAGE = "docs/adding_a_method.md";

/** One edit from the page: a code block whose first line says where it goes. */
interface Edit {
  file: string;
  how: "before" | "replace";
  anchor: string;
  text: string;
}

/** The page's edits: ```ts ignore blocks starting `// <file>: before|replace the line <anchor>`. */
function pageEdits(): Edit[] {
  const page = Deno.readTextFileSync(`${REPO_ROOT}/${PAGE}`);
  const edits: Edit[] = [];
  for (const [, body] of page.matchAll(/```ts ignore\n([\s\S]*?)```/g)) {
    const [first, ...rest] = body.split("\n");
    const m = /^\/\/ (\S+): (before|replace) the line {3}(.+)$/.exec(first);
    if (!m) continue;
    edits.push({ file: m[1], how: m[2] as Edit["how"], anchor: m[3], text: rest.join("\n") });
  }
  return edits;
}

/** Applies the edits to the copy at `root`; returns the files touched. */
function applyEdits(root: string, edits: Edit[]): string[] {
  for (const e of edits) {
    const path = `${root}/${e.file}`;
    const lines = Deno.readTextFileSync(path).split("\n");
    const at = lines.findIndex((l) => l.trim() === e.anchor.trim());
    assert.ok(at >= 0, `${PAGE}: ${e.file} has no line ${e.anchor}; update the page`);
    const text = e.text.replace(/\n$/, "").split("\n");
    lines.splice(at, e.how === "replace" ? 1 : 0, ...text);
    Deno.writeTextFileSync(path, lines.join("\n"));
  }
  return [...new Set(edits.map((e) => e.file))].sort();
}

/** Files under `dir` (relative paths). */
function filesUnder(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${dir}/${rel}`)) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...filesUnder(dir, p));
    else out.push(p);
  }
  return out.sort();
}

/** The files of src/ that differ between the copy and the project. */
function changedFiles(copy: string): string[] {
  return filesUnder(`${copy}/src`).map((f) => `src/${f}`).filter((f) =>
    Deno.readTextFileSync(`${copy}/${f}`) !== Deno.readTextFileSync(`${REPO_ROOT}/${f}`)
  );
}

async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `${cmd} ${args.join(" ")}: ${text}`);
  return text;
}

Deno.test("adding fs.stat touches two files, and the operator token minted before calls and delegates it", async () => {
  const copy = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-copy-" });
  const temp = await tempLayout();
  try {
    // The project as it is: its code and its config.
    await run("cp", [
      "-a",
      `${REPO_ROOT}/src`,
      `${REPO_ROOT}/deno.json`,
      `${REPO_ROOT}/deno.lock`,
      copy,
    ], REPO_ROOT);
    const file = `${temp.exportRoot}/notes.txt`;
    Deno.writeTextFileSync(file, "twelve bytes");

    const first = await startNode({ temp, root: copy });
    let operator: string;
    try {
      operator = first.operatorToken();
      const before = await first.request("fs", "fs.stat", { path: file }, operator);
      assert.equal(before.ok, false);
      assert.match(!before.ok ? before.error.message : "", /unknown method fs\.stat/);
    } finally {
      await first.stop();
    }

    const touched = applyEdits(copy, pageEdits());
    assert.deepEqual(touched, ["src/api/fs.ts", "src/fs/service.ts"]);
    assert.deepEqual(changedFiles(copy), touched);
    // The page's code is clean code of the project.
    await run(Deno.execPath(), ["fmt", "--check", ...touched], copy);
    await run(Deno.execPath(), ["check", "src/fs/main.ts", "src/identity/main.ts"], copy);

    const second = await startNode({ temp, root: copy });
    try {
      // The same operator token, minted before fs.stat existed: it does not list it.
      assert.equal(second.operatorToken(), operator);
      const seen = await second.request("identity", "identity.introspect", { token: operator });
      assert.ok(seen.ok);
      const claims = (seen.result as { claims: { rights: string[] } }).claims;
      assert.ok(!claims.rights.includes("fs.stat"), claims.rights.join(", "));

      // It calls fs.stat...
      const stat = await second.request("fs", "fs.stat", { path: file }, operator);
      assert.ok(stat.ok, JSON.stringify(stat));
      assert.deepEqual(stat.result, { path: file, size: 12 });

      // ...and delegates it, confined to a prefix.
      const issued = await second.request("identity", "identity.issue", {
        service: "fs",
        rights: ["fs.stat"],
        path_prefix: temp.exportRoot,
      }, operator);
      assert.ok(issued.ok, JSON.stringify(issued));
      const token = (issued.result as { token: string }).token;
      const delegated = await second.request("fs", "fs.stat", { path: file }, token);
      assert.ok(delegated.ok, JSON.stringify(delegated));

      // The delegated token holds only what it lists, within its prefix.
      const read = await second.request("fs", "fs.list", { path: temp.exportRoot }, token);
      assert.equal(!read.ok && read.error.details?.reason, "missing_right");
      const outside = await second.request("fs", "fs.stat", {
        path: posix.join(temp.root, "state", "operator.token"),
      }, token);
      assert.equal(!outside.ok && outside.error.name, "PERMISSION_DENIED");
    } finally {
      await second.stop();
    }
  } finally {
    await temp.cleanup();
    await Deno.remove(copy, { recursive: true }).catch(() => {});
  }
});
