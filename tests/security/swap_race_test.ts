/**
 * Swapping a folder for a symlink while fs checks and opens a path. Deno
 * opens by path, so fs serves only paths through folders no other user can
 * change: another user who owns a folder in the export root can swap its
 * contents as fast as they like and fs reads nothing outside the prefix, and
 * nothing at all through that folder.
 *
 * Needs root (to run the attacker as another user); skipped otherwise.
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import { socketPath } from "../../src/runtime/config.ts";
import { AS_ROOT, issue, REPO_ROOT, startNode, tempLayout } from "../helpers.ts";

const NOBODY = 65534;

async function chownR(path: string, uid: number): Promise<void> {
  // chown -h: change symlinks themselves, not what they point to.
  const out = await new Deno.Command("chown", { args: ["-hR", `${uid}:${uid}`, path] }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
}

Deno.test({
  name: `another user swapping a folder for a symlink cannot lead fs out of the prefix${
    AS_ROOT ? "" : " (skipped: needs root to run the attacker as another user)"
  }`,
  ignore: !AS_ROOT,
  fn: async () => {
    const temp = await tempLayout();
    await Deno.chmod(temp.root, 0o755);
    const atk = `${temp.exportRoot}/atk`;
    await Deno.mkdir(`${atk}/d`, { recursive: true });
    await Deno.mkdir(`${temp.exportRoot}/other`);
    await Deno.writeTextFile(`${atk}/d/secret.txt`, "decoy");
    await Deno.writeTextFile(`${temp.exportRoot}/other/secret.txt`, "TOP SECRET");
    await Deno.symlink("../other", `${atk}/l`);
    // The attacker owns atk and everything in it, and swaps d and l for ever.
    await chownR(atk, NOBODY);
    await Deno.copyFile(`${REPO_ROOT}/tests/fixtures/swapper.ts`, `${temp.root}/swapper.ts`);
    await Deno.chmod(`${temp.root}/swapper.ts`, 0o644);
    await Deno.mkdir(`${temp.root}/denodir`, { mode: 0o777 });
    await Deno.chmod(`${temp.root}/denodir`, 0o777);
    const node = await startNode({ temp });
    const swapper = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", `${temp.root}/swapper.ts`, atk],
      uid: NOBODY,
      gid: NOBODY,
      env: { DENO_DIR: `${temp.root}/denodir`, HOME: temp.root },
      stdout: "null",
      stderr: "null",
    }).spawn();
    const fs = await Client.connect(socketPath(node.layout, "fs"));
    try {
      const { token } = await issue(node, {
        service: "fs",
        actions: ["open", "read", "list"],
        path_prefix: atk,
      });
      const seen: Record<string, number> = {};
      const count = (k: string) => (seen[k] = (seen[k] ?? 0) + 1);
      for (let i = 0; i < 1500; i++) {
        const o = await fs.request("fs.open", { path: "d/secret.txt" }, { token });
        if (o.ok) {
          const { handle } = o.result as { handle: string };
          const r = await fs.call<{ data?: string }>("fs.read", { handle }, { token });
          await fs.call("fs.close", { handle }, { token });
          count(`read ${r.data}`);
        } else count(`${o.error.name} ${(o.error.details as { reason?: string })?.reason}`);
        const l = await fs.request("fs.list", { path: "d" }, { token });
        count(
          l.ok ? "listed" : `${l.error.name} ${(l.error.details as { reason?: string })?.reason}`,
        );
      }
      assert.equal(seen["read TOP SECRET"], undefined, JSON.stringify(seen));
      // Nothing through a folder another user controls: every attempt refused.
      for (const k of Object.keys(seen)) {
        assert(
          /^(PERMISSION_DENIED (changeable_path|path_swapped|symlink_escape)|NOT_FOUND undefined)$/
            .test(k),
          JSON.stringify(seen),
        );
      }
      assert((seen["PERMISSION_DENIED changeable_path"] ?? 0) > 0, JSON.stringify(seen));
    } finally {
      swapper.kill("SIGKILL");
      await swapper.status;
      await fs.close();
      await node.stop();
      await temp.cleanup();
    }
  },
});

Deno.test("paths through the service's own folders are served", async () => {
  const node = await startNode();
  try {
    await Deno.mkdir(`${node.exportRoot}/mine/d`, { recursive: true });
    await Deno.writeTextFile(`${node.exportRoot}/mine/d/f.txt`, "fine");
    const { token } = await issue(node, {
      service: "fs",
      actions: ["open", "read", "list"],
      path_prefix: `${node.exportRoot}/mine`,
    });
    const fs = await node.client("fs");
    const { handle } = await fs.call<{ handle: string }>("fs.open", { path: "d/f.txt" }, { token });
    assert.equal((await fs.call<{ data: string }>("fs.read", { handle }, { token })).data, "fine");
    const l = await fs.call<{ entries: { name: string }[] }>("fs.list", { path: "d" }, { token });
    assert.deepEqual(l.entries.map((e) => e.name), ["f.txt"]);
  } finally {
    await node.stop();
  }
});
