/**
 * Path confinement at fs.sock: "..", absolute paths elsewhere, symlinks out
 * of the prefix, sibling prefixes and NUL bytes are refused; relative paths
 * inside the prefix work; a token without a prefix is still held to the
 * export roots.
 */

import assert from "node:assert/strict";
import { Client } from "../../src/server/client.ts";
import { socketPath } from "../../src/runtime/config.ts";
import { issue, startNode } from "../helpers.ts";
import { expectError, expectOk, rawRequest, svcStatus } from "./support.ts";

interface Listing {
  path: string;
  entries: { name: string; is_dir: boolean; is_symlink: boolean }[];
}

Deno.test("path attacks at fs are refused; paths inside the prefix work", async (t) => {
  const node = await startNode();
  try {
    const root = node.exportRoot;
    const data = `${root}/data`;
    // <root>/data        the token's prefix
    // <root>/data-evil   a sibling whose name starts with the prefix
    // <root>/other       a sibling folder inside the export root
    await Deno.mkdir(`${data}/sub`, { recursive: true });
    await Deno.mkdir(`${root}/data-evil`);
    await Deno.mkdir(`${root}/other`);
    await Deno.writeTextFile(`${data}/file.txt`, "inside");
    await Deno.writeTextFile(`${data}/sub/deep.txt`, "deep");
    await Deno.writeTextFile(`${root}/data-evil/secret.txt`, "evil secret");
    await Deno.writeTextFile(`${root}/other/secret.txt`, "other secret");
    await Deno.symlink("/etc", `${data}/to-etc`);
    await Deno.symlink("/etc/hostname", `${data}/to-hostname`);
    await Deno.symlink(`${root}/other`, `${data}/to-other`);
    await Deno.symlink("../other/secret.txt", `${data}/to-other-secret`);
    await Deno.symlink("sub/deep.txt", `${data}/to-deep`);
    await Deno.symlink(data, `${root}/data-link`);

    const tok = (await issue(node, {
      service: "fs",
      rights: ["fs.list", "fs.open", "fs.read"],
      path_prefix: data,
    })).token;
    const list = (path: string, token = tok) => node.request("fs", "fs.list", { path }, token);
    const open = (path: string, token = tok) => node.request("fs", "fs.open", { path }, token);
    const readAll = async (path: string, token = tok) => {
      const { handle } = expectOk<{ handle: string }>(await open(path, token));
      const r = expectOk<{ data: string }>(
        await node.request("fs", "fs.read", { handle }, token),
      );
      expectOk(await node.request("fs", "fs.close", { handle }, token));
      return r.data;
    };
    const outsidePrefix = new RegExp(`is outside the token's path_prefix ${data}$`);

    await t.step("relative paths inside the prefix work", async () => {
      const top = expectOk<Listing>(await list("."));
      assert.equal(top.path, data);
      assert.deepEqual(top.entries.map((e) => e.name), [
        "file.txt",
        "sub",
        "to-deep",
        "to-etc",
        "to-hostname",
        "to-other",
        "to-other-secret",
      ]);
      assert.equal(top.entries.find((e) => e.name === "to-etc")?.is_symlink, true);
      assert.equal(expectOk<Listing>(await list("sub")).path, `${data}/sub`);
      assert.equal(await readAll("file.txt"), "inside");
      assert.equal(await readAll("sub/../file.txt"), "inside");
      assert.equal(await readAll("./sub/deep.txt"), "deep");
      assert.equal(await readAll(`${data}/sub/deep.txt`), "deep");
      // A symlink that stays inside the prefix is followed.
      assert.equal(await readAll("to-deep"), "deep");
    });

    await t.step('"../" escapes', async () => {
      for (const p of ["..", "../other", "../other/secret.txt", "sub/../../other/secret.txt"]) {
        expectError(await list(p), "PERMISSION_DENIED", outsidePrefix, "outside_prefix");
        expectError(await open(p), "PERMISSION_DENIED", outsidePrefix, "outside_prefix");
      }
      expectError(
        await open("../../../../../../../etc/passwd"),
        "PERMISSION_DENIED",
        /\/etc\/passwd is outside the token's path_prefix/,
        "outside_prefix",
      );
      expectError(
        await open(`${data}/../other/secret.txt`),
        "PERMISSION_DENIED",
        new RegExp(`path: ${root}/other/secret.txt is outside`),
        "outside_prefix",
      );
    });

    await t.step("absolute paths outside the prefix", async () => {
      for (const p of ["/etc/hostname", "/etc", "/", root, `${root}/other/secret.txt`]) {
        expectError(await open(p), "PERMISSION_DENIED", outsidePrefix, "outside_prefix");
      }
      expectError(await list("/"), "PERMISSION_DENIED", outsidePrefix, "outside_prefix");
    });

    await t.step("the sibling prefix <root>/data-evil is not inside <root>/data", async () => {
      for (const p of [`${root}/data-evil`, `${root}/data-evil/secret.txt`, "../data-evil"]) {
        expectError(await list(p), "PERMISSION_DENIED", outsidePrefix, "outside_prefix");
      }
      expectError(
        await open(`${root}/data-evil/secret.txt`),
        "PERMISSION_DENIED",
        outsidePrefix,
        "outside_prefix",
      );
    });

    await t.step("symlinks inside the prefix that point out of it", async () => {
      const escape = /resolves through a symbolic link to a place outside the token's reach/;
      expectError(await list("to-etc"), "PERMISSION_DENIED", escape, "symlink_escape");
      expectError(await open("to-etc/hostname"), "PERMISSION_DENIED", escape, "symlink_escape");
      expectError(await open("to-etc/passwd"), "PERMISSION_DENIED", escape, "symlink_escape");
      expectError(await open("to-hostname"), "PERMISSION_DENIED", escape, "symlink_escape");
      // To a sibling folder that is inside the export root but not the prefix.
      expectError(await list("to-other"), "PERMISSION_DENIED", escape, "symlink_escape");
      expectError(await open("to-other/secret.txt"), "PERMISSION_DENIED", escape, "symlink_escape");
      expectError(await open("to-other-secret"), "PERMISSION_DENIED", escape, "symlink_escape");
    });

    await t.step("NUL byte in the path (raw JSON \\u0000)", async () => {
      for (const method of ["fs.list", "fs.open"]) {
        const body = `{"v":1,"req_id":"nul","method":"${method}","auth":{"token":"${tok}"},` +
          `"params":{"path":"${data}/file.txt\\u0000/../../../etc/passwd"}}`;
        const { frames } = await rawRequest(node, "fs", body);
        assert.equal(frames.length, 1);
        assert.equal(frames[0].req_id, "nul");
        expectError(frames[0], "INVALID_ARGUMENT", /^path: contains a NUL byte/);
      }
      const rel = `{"v":1,"req_id":"nul2","method":"fs.open","auth":{"token":"${tok}"},` +
        `"params":{"path":"file.txt\\u0000"}}`;
      expectError(
        (await rawRequest(node, "fs", rel)).frames[0],
        "INVALID_ARGUMENT",
        /NUL byte/,
      );
    });

    await t.step("empty and over-long paths", async () => {
      expectError(await list(""), "INVALID_ARGUMENT", /params\.path: must not be empty/);
      expectError(
        await list("a/".repeat(2100)),
        "INVALID_ARGUMENT",
        /params\.path: must be at most 4096 characters/,
      );
    });

    await t.step("a token without a path_prefix is held to the export roots", async () => {
      const wide = (await issue(node, { service: "fs", rights: ["fs.list", "fs.open"] })).token;
      const outsideRoots = new RegExp(`is outside the exported roots \\(${root}\\)`);
      for (
        const p of ["/etc/hostname", "/etc/passwd", `${root}/../..`, "/", "/proc/self/environ"]
      ) {
        expectError(await open(p, wide), "PERMISSION_DENIED", outsideRoots, "outside_prefix");
      }
      expectError(await list("/etc", wide), "PERMISSION_DENIED", outsideRoots, "outside_prefix");
      expectError(
        await open(`${data}/to-hostname`, wide),
        "PERMISSION_DENIED",
        /resolves through a symbolic link/,
        "symlink_escape",
      );
      expectError(
        await open("file.txt", wide),
        "INVALID_ARGUMENT",
        /a relative path needs a token with a path_prefix/,
      );
      // Inside the roots it reaches everything, including the other folders.
      const { handle } = expectOk<{ handle: string }>(
        await open(`${root}/other/secret.txt`, wide),
      );
      assert.match(handle, /^h\d+$/);
    });

    await t.step("a path_prefix outside the export roots reaches nothing", async () => {
      const etc = (await issue(node, { service: "fs", rights: ["fs.open"], path_prefix: "/etc" }))
        .token;
      // The real reason: the roots, named, not the prefix the path lies inside.
      const reason = new RegExp(
        `^path: /etc/hostname is outside the exported roots \\(${root}\\); ` +
          "the token's path_prefix /etc lies outside them too",
      );
      expectError(await open("/etc/hostname", etc), "PERMISSION_DENIED", reason, "outside_prefix");
      expectError(await open("hostname", etc), "PERMISSION_DENIED", /outside/, "outside_prefix");
    });

    await t.step("a path_prefix that runs through a symlink is refused", async () => {
      const linked = (await issue(node, {
        service: "fs",
        rights: ["fs.list"],
        path_prefix: `${root}/data-link`,
      })).token;
      expectError(
        await list(".", linked),
        "PERMISSION_DENIED",
        /runs through a symbolic link; issue it for the real path/,
        "symlinked_prefix",
      );
    });

    await t.step("another capability's handle cannot be read", async () => {
      const { handle } = expectOk<{ handle: string }>(await open("file.txt"));
      const other = (await issue(node, {
        service: "fs",
        rights: ["fs.read", "fs.open"],
        path_prefix: data,
      })).token;
      expectError(
        await node.request("fs", "fs.read", { handle }, other),
        "NOT_FOUND",
        /no open handle .* for this capability/,
      );
      expectError(
        await node.request("fs", "fs.close", { handle }, other),
        "NOT_FOUND",
        /no open handle/,
      );
      // The owner still reads it.
      const r = expectOk<{ data: string }>(await node.request("fs", "fs.read", { handle }, tok));
      assert.equal(r.data, "inside");
    });
  } finally {
    await node.stop();
  }
});

Deno.test("special files inside the prefix never hang fs", async (t) => {
  const node = await startNode();
  const fifo = `${node.exportRoot}/data/pipe`;
  try {
    await Deno.mkdir(`${node.exportRoot}/data/dir`, { recursive: true });
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert(made.success, "mkfifo failed");
    const fsPid = (await svcStatus(node, "fs")).pid;
    const tok = (await issue(node, {
      service: "fs",
      rights: ["fs.list", "fs.open"],
      path_prefix: `${node.exportRoot}/data`,
    })).token;

    await t.step("fs.open on a directory is refused (control)", async () => {
      expectError(
        await node.request("fs", "fs.open", { path: "dir" }, tok),
        "INVALID_ARGUMENT",
        /is a directory; use fs\.list/,
      );
    });

    await t.step("a FIFO is listed, and opening it is refused without blocking fs", async () => {
      const listing = expectOk<Listing>(await node.request("fs", "fs.list", { path: "." }, tok));
      assert(listing.entries.some((e) => e.name === "pipe"));
      const c = await Client.connect(socketPath(node.layout, "fs"));
      const other = await Client.connect(socketPath(node.layout, "fs"));
      try {
        // Sent from one connection; a second one must still be answered meanwhile.
        const opening = c.request("fs.open", { path: "pipe" }, { token: tok, timeoutMs: 2000 })
          .catch((err: Error) => err);
        const health = await other.request("fs.health", undefined, { timeoutMs: 2000 })
          .catch((err: Error) => err);
        assert(!(health instanceof Error), `fs stopped answering: ${health}`);
        assert.equal(expectOk<{ pid: number }>(health).pid, fsPid);
        const r = await opening;
        assert(!(r instanceof Error), `fs.open on a FIFO got no answer: ${r}`);
        expectError(r, "INVALID_ARGUMENT", /not a regular file/);
      } finally {
        // If fs is stuck in open(2) on the FIFO, a writer releases it; the
        // writer gives up by itself after 2 s when no reader is there.
        await new Deno.Command("timeout", {
          args: ["2", "sh", "-c", 'exec 3>"$0"', fifo],
        }).output();
        await c.close();
        await other.close();
      }
    });
  } finally {
    await node.stop();
  }
});

Deno.test("a folder fs has listed, then swapped for a symlink out, is refused at fs.sock", async () => {
  const node = await startNode();
  try {
    // given a folder inside the prefix, listed many times over (its path plain, its names
    // remembered), and a folder outside the prefix with a secret in it
    const data = `${node.exportRoot}/data`;
    await Deno.mkdir(`${data}/box`, { recursive: true });
    await Deno.writeTextFile(`${data}/box/mine.txt`, "mine");
    await Deno.mkdir(`${node.exportRoot}/other`);
    await Deno.writeTextFile(`${node.exportRoot}/other/secret.txt`, "secret");
    const tok = (await issue(node, {
      service: "fs",
      rights: ["fs.list"],
      path_prefix: data,
    })).token;
    for (let i = 0; i < 50; i++) {
      const l = expectOk<Listing>(await node.request("fs", "fs.list", { path: "box" }, tok));
      assert.deepEqual(l.entries.map((e) => e.name), ["mine.txt"]);
    }
    // when the folder is swapped for a symlink to the outside one
    await Deno.rename(`${data}/box`, `${data}/box.old`);
    await Deno.symlink(`${node.exportRoot}/other`, `${data}/box`);
    // then the next listing by the same path is refused, by relative and absolute path
    for (const path of ["box", `${data}/box`]) {
      expectError(
        await node.request("fs", "fs.list", { path }, tok),
        "PERMISSION_DENIED",
        /outside the token's path_prefix|resolves through a symbolic link/,
      );
    }
    // and when it is swapped back, it is served again
    await Deno.remove(`${data}/box`);
    await Deno.rename(`${data}/box.old`, `${data}/box`);
    const back = expectOk<Listing>(await node.request("fs", "fs.list", { path: "box" }, tok));
    assert.deepEqual(back.entries.map((e) => e.name), ["mine.txt"]);
  } finally {
    await node.stop();
  }
});
