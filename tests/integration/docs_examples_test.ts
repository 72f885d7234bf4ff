/**
 * The examples a newcomer pastes work: README's "first five minutes" and
 * docs/cli.md's raw-form flow run line by line with bash against a real
 * supervisor in a temp dir, and README's client program runs with a token
 * issued as its comment says. The changes made to them: their folder,
 * /tmp/strata-demo, moves into the test node's export root, and the
 * program's socket and import path are the test node's and the repo's.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { type Node, REPO_ROOT, startNode } from "../helpers.ts";

/** The first ```sh block after `heading` in `page`. */
function shellBlock(page: string, heading: string): string {
  const text = Deno.readTextFileSync(join(REPO_ROOT, page));
  const at = text.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `${page} has no heading ${heading}`);
  const block = /\n```sh\n([\s\S]*?)\n```/.exec(text.slice(at));
  assert.ok(block, `${page}: no sh block under ${heading}`);
  return block[1];
}

/** What one line of an example did. */
interface LineRun {
  line: string;
  code: number;
}

/**
 * Runs a block in one bash, each command line followed by a marker with its
 * exit code, and returns the codes by line with everything printed.
 */
async function runBlock(
  node: Node,
  block: string,
): Promise<{ lines: LineRun[]; stdout: string; stderr: string }> {
  const demo = `${node.exportRoot}/strata-demo`;
  const commands = block.split("\n").filter((l) => l.trim() !== "" && !l.trim().startsWith("#"));
  const script = commands
    .map((l, i) => `{ ${l.replaceAll("/tmp/strata-demo", demo)}\n}; echo "::exit ${i} $?" >&2`)
    .join("\n");
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    cwd: REPO_ROOT,
    env: {
      STRATA_RUNTIME_DIR: node.layout.runtimeDir,
      STRATA_STATE_DIR: node.layout.stateDir,
      NO_COLOR: "1",
      // The deno that runs the tests runs the examples' `deno task`.
      PATH: `${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    },
    stdin: "null",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  const codes = new Map<number, number>();
  for (const m of stderr.matchAll(/^::exit (\d+) (\d+)$/gm)) codes.set(Number(m[1]), Number(m[2]));
  return {
    lines: commands.map((line, i) => ({ line, code: codes.get(i) ?? -1 })),
    stdout,
    stderr,
  };
}

/** A line whose comment says it is refused must exit 1; every other line 0. */
function expectedCode(line: string): number {
  return /#.*(refused|UNAUTHENTICATED|PERMISSION_DENIED)/.test(line) ? 1 : 0;
}

function assertCodes(what: string, r: { lines: LineRun[]; stdout: string; stderr: string }) {
  const wrong = r.lines.filter((l) => l.code !== expectedCode(l.line))
    .map((l) => `exit ${l.code} (expected ${expectedCode(l.line)}): ${l.line}`);
  assert.deepEqual(wrong, [], `${what}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
}

Deno.test("README's first five minutes and docs/cli.md's raw form work as pasted", async (t) => {
  const node = await startNode();
  try {
    await t.step("README.md, The first five minutes", async () => {
      const r = await runBlock(node, shellBlock("README.md", "## The first five minutes"));
      assertCodes("README's first five minutes", r);
      assert.match(r.stdout, /services +3 of 3 healthy/);
      assert.match(r.stdout, /file +13 B +hello\.txt/);
      assert.match(r.stdout, /^hello strata$/m);
      assert.match(r.stdout, /^valid +yes$/m);
      assert.match(r.stdout, /^revoked [0-9a-f]{32}; /m);
      assert.match(r.stderr, /\/etc\/passwd is outside the token's path_prefix/);
      assert.match(r.stderr, /has been revoked/);
    });
    await t.step("README.md, the client from your own program", async () => {
      // The token its comment says to issue, as pasted.
      const text = Deno.readTextFileSync(join(REPO_ROOT, "README.md"));
      const at = text.indexOf("From your own program");
      const code = /\n```ts\n([\s\S]*?)\n```/.exec(text.slice(at))![1];
      const issue = /^\/\/ (deno task -q ctl token issue .*)$/m.exec(code)![1];
      const r = await runBlock(node, `TOKEN=$(${issue})\necho "token=$TOKEN"`);
      const token = /^token=(v4\.public\..+)$/m.exec(r.stdout)?.[1];
      assert.ok(token, `no token\n${r.stderr}`);
      // The program as written, but for its socket, folder and import path, and a line that prints.
      const fsSock = `${node.layout.runtimeDir}/fs.sock`;
      const program = code.replace("./src/mod.ts", join(REPO_ROOT, "src/mod.ts"))
        .replace("/run/strata/fs.sock", fsSock)
        .replaceAll("/tmp/strata-demo", `${node.exportRoot}/strata-demo`) +
        "\nconsole.log(entries.map((e: { name: string }) => e.name).join(' '));\n";
      const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-readme-" });
      try {
        await Deno.writeTextFile(`${dir}/main.ts`, program);
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            "--no-prompt",
            `--config=${join(REPO_ROOT, "deno.json")}`,
            `--allow-net=unix:${fsSock}`,
            `--allow-read=${fsSock}`,
            `--allow-write=${fsSock}`,
            "--allow-env=STRATA_TOKEN",
            `${dir}/main.ts`,
          ],
          env: { STRATA_TOKEN: token },
          stdin: "null",
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        assert.equal(out.code, 0, stderr);
        assert.equal(new TextDecoder().decode(out.stdout).trim(), "hello.txt");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
    await t.step("docs/cli.md, The raw form", async () => {
      const r = await runBlock(node, shellBlock("docs/cli.md", "## The raw form"));
      assertCodes("docs/cli.md's raw form", r);
      assert.match(r.stdout, /"data": "hello strata\\n"/);
      assert.match(r.stdout, /"reason": "revoked"/);
      assert.match(r.stdout, /"node_id": /);
    });
  } finally {
    await node.stop();
  }
});
