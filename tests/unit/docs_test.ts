/**
 * The docs a newcomer reads stay true to the tree: every relative link in
 * README.md and docs/*.md points at a file that exists (and at a heading
 * that exists, when it names one), the TypeScript examples type-check, and
 * README stays the short front door.
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";
import { REPO_ROOT } from "../helpers.ts";

/**
 * Pages linked before they exist on this branch, each written on another
 * branch of the same change; a link to one is checked once the file is there.
 */
const WRITTEN_ELSEWHERE = new Set(["docs/adding_a_method.md"]);

/** The Markdown pages whose links are checked. */
function pages(): string[] {
  const docs = [...Deno.readDirSync(join(REPO_ROOT, "docs"))]
    .filter((e) => e.isFile && e.name.endsWith(".md"))
    .map((e) => `docs/${e.name}`)
    .sort();
  return ["README.md", ...docs];
}

/** The text outside fenced code blocks and inline code, where links are links. */
function prose(markdown: string): string {
  return markdown.replace(/^```[\s\S]*?^```/gm, "").replace(/`[^`\n]*`/g, "");
}

/** The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").replace(/ /g, "-");
}

/** The anchors of a Markdown file's headings. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.replace(/^```[\s\S]*?^```/gm, "").matchAll(/^#{1,6} (.+)$/gm)) {
    out.add(slug(m[1].replace(/`/g, "")));
  }
  return out;
}

/** Every relative link target in a page, as written. */
function relativeLinks(markdown: string): string[] {
  const out: string[] = [];
  for (const m of prose(markdown).matchAll(/\]\(([^)\s]+)\)/g)) {
    if (!/^[a-z]+:/i.test(m[1])) out.push(m[1]);
  }
  return out;
}

Deno.test("docs: every relative link in README.md and docs/ points at a file and heading that exist", () => {
  const broken: string[] = [];
  let checked = 0;
  for (const page of pages()) {
    const text = Deno.readTextFileSync(join(REPO_ROOT, page));
    for (const link of relativeLinks(text)) {
      const [path, anchor] = link.split("#");
      const target = path === "" ? page : relative(REPO_ROOT, join(REPO_ROOT, dirname(page), path));
      let body: string;
      try {
        body = Deno.statSync(join(REPO_ROOT, target)).isFile
          ? Deno.readTextFileSync(join(REPO_ROOT, target))
          : "";
      } catch {
        if (!WRITTEN_ELSEWHERE.has(target)) broken.push(`${page}: ${link} (no ${target})`);
        continue;
      }
      checked++;
      if (anchor && target.endsWith(".md") && !anchors(body).has(anchor)) {
        broken.push(`${page}: ${link} (${target} has no heading #${anchor})`);
      }
    }
  }
  assert.deepEqual(broken, [], `broken links:\n${broken.join("\n")}`);
  assert.ok(checked >= 10, `only ${checked} links checked: is the link pattern still right?`);
});

Deno.test("docs: the link check sees a broken link and a missing heading", () => {
  // Given a page with one good link, one to a missing file and one to a missing heading
  const text = "[ok](docs/cli.md) `[code](nowhere.md)` [gone](docs/nowhere.md) " +
    "[bad anchor](api/protocol.md#no-such-heading)\n```\n[in code](x.md)\n```\n";
  // Then only the prose links are found, and anchors come from headings
  assert.deepEqual(relativeLinks(text), [
    "docs/cli.md",
    "docs/nowhere.md",
    "api/protocol.md#no-such-heading",
  ]);
  assert.ok(
    anchors("## The programs and their permissions\n").has(
      "the-programs-and-their-permissions",
    ),
  );
  assert.ok(anchors("## `--json`, and more\n").has("--json-and-more"));
});

Deno.test("docs: README stays the front door (at most 200 lines)", () => {
  const lines = Deno.readTextFileSync(join(REPO_ROOT, "README.md")).split("\n").length - 1;
  assert.ok(lines <= 200, `README.md is ${lines} lines; move detail into a docs/ page`);
});

Deno.test("docs: the TypeScript examples in README.md and docs/ type-check", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", "--doc-only", ...pages()],
    cwd: REPO_ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
});
