/**
 * Secrets are never served, whatever the configuration: with /tmp exported
 * (as `deno task start` does) and Strata's runtime dir (the fallback
 * /tmp/strata-$USER) and, in the second layout, its state dir under /tmp, a
 * token with fs rights on /tmp gets nothing from either folder: not by
 * absolute path, relative path, "..", a symlink planted in the export root,
 * nor with a path_prefix inside the state dir. The stolen-operator-token
 * attack of issue 10 is the first case. fs warns once at start-up.
 */

import assert from "node:assert/strict";
import { runtimeFiles, socketPath, stateFiles } from "../../src/runtime/config.ts";
import { devTmpLayout, issue, startNode } from "../helpers.ts";
import { expectError, expectOk } from "./support.ts";

for (const stateUnderTmp of [false, true]) {
  const name = stateUnderTmp
    ? "/tmp exported with the state dir and the runtime dir under it"
    : "the default development layout (/tmp exported, runtime dir /tmp/strata-$USER)";
  Deno.test(`private dirs: ${name}: nothing of Strata's own is served`, async (t) => {
    const temp = await devTmpLayout(stateUnderTmp);
    const node = await startNode({ temp });
    try {
      const st = stateFiles(node.layout);
      const rt = runtimeFiles(node.layout);
      const { stateDir, runtimeDir } = node.layout;
      const pub = `${temp.root}/pub`;
      await Deno.mkdir(pub);
      await Deno.writeTextFile(`${pub}/hello.txt`, "hello");
      await Deno.symlink(stateDir, `${pub}/to-state`);
      await Deno.symlink(st.keys, `${pub}/to-keys`);
      await Deno.symlink(st.operatorToken, `${pub}/to-operator`);
      await Deno.symlink(runtimeDir, `${pub}/to-runtime`);
      await Deno.symlink(rt.identityPub, `${pub}/to-pub`);
      // What the attacker holds: a token with fs open/read/list on the whole root.
      const tmp = (await issue(node, {
        service: "fs",
        rights: ["fs.list", "fs.open", "fs.read"],
        path_prefix: "/tmp",
      })).token;
      const open = (path: string, token = tmp) => node.request("fs", "fs.open", { path }, token);
      const list = (path: string, token = tmp) => node.request("fs", "fs.list", { path }, token);
      const secrets = [st.operatorToken, st.keys, st.revocationLog, st.audit];
      const runtime = [
        rt.identityPub,
        rt.revocations,
        socketPath(node.layout, "fs"),
        socketPath(node.layout, "identity"),
      ];

      await t.step("the secrets exist, and the root around them is served", async () => {
        for (const f of [...secrets, ...runtime]) await Deno.lstat(f);
        const { handle } = expectOk<{ handle: string }>(await open(`${pub}/hello.txt`));
        const r = expectOk<{ data: string }>(
          await node.request("fs", "fs.read", { handle }, tmp),
        );
        assert.equal(r.data, "hello");
        expectOk(await list("/tmp"));
      });

      await t.step("the runtime dir: refused by path, listing and '..'", async () => {
        for (const p of [...runtime, runtimeDir, `${pub}/../../${runtimeDir.slice(5)}/fs.sock`]) {
          expectError(await open(p), "PERMISSION_DENIED", /Strata's own folders/, "strata_private");
        }
        expectError(await list(runtimeDir), "PERMISSION_DENIED", /^path: /, "strata_private");
      });

      await t.step("the state dir: operator.token, keys.json and the rest", async () => {
        for (const p of secrets) {
          // Under /tmp the policy refuses it by name; elsewhere it is outside the roots.
          const reason = stateUnderTmp ? "strata_private" : "outside_prefix";
          expectError(await open(p), "PERMISSION_DENIED", /^path: /, reason);
        }
        expectError(
          await list(stateDir),
          "PERMISSION_DENIED",
          /^path: /,
          stateUnderTmp ? "strata_private" : "outside_prefix",
        );
      });

      await t.step("symlinks planted in the export root lead nowhere", async () => {
        for (const p of ["to-keys", "to-operator", "to-state/keys.json", "to-pub"]) {
          const reason = stateUnderTmp || p === "to-pub" ? "strata_private" : "symlink_escape";
          expectError(await open(`${pub}/${p}`), "PERMISSION_DENIED", /^path: /, reason);
        }
        for (const p of ["to-runtime", "to-state"]) {
          const reason = stateUnderTmp || p === "to-runtime" ? "strata_private" : "symlink_escape";
          expectError(await list(`${pub}/${p}`), "PERMISSION_DENIED", /^path: /, reason);
        }
      });

      await t.step("relative paths from a prefix, and a prefix inside the folders", async () => {
        const inPub = (await issue(node, {
          service: "fs",
          rights: ["fs.list", "fs.open"],
          path_prefix: pub,
        })).token;
        expectError(await open("to-keys", inPub), "PERMISSION_DENIED", /^path: /);
        expectError(
          await open("../../" + runtimeDir.slice(5) + "/identity.pub", inPub),
          "PERMISSION_DENIED",
        );
        for (const dir of stateUnderTmp ? [stateDir, runtimeDir] : [runtimeDir]) {
          const inside = (await issue(node, {
            service: "fs",
            rights: ["fs.list", "fs.open"],
            path_prefix: dir,
          })).token;
          expectError(await list(".", inside), "PERMISSION_DENIED", /^path: /, "strata_private");
          for (const f of ["keys.json", "operator.token", "identity.pub", "fs.sock"]) {
            expectError(await open(f, inside), "PERMISSION_DENIED", /^path: /, "strata_private");
          }
        }
      });

      await t.step("the operator token itself cannot read them through fs", async () => {
        const op = node.operatorToken();
        expectError(await open(rt.identityPub, op), "PERMISSION_DENIED", /^path: /);
        expectError(await open(st.keys, op), "PERMISSION_DENIED", /^path: /);
      });

      await t.step("fs warned once, at start-up, naming the folders", () => {
        const lines = node.output().split("\n").filter((l) =>
          l.includes("export roots overlap Strata's own folders")
        );
        assert.equal(lines.length, 1, node.output());
        assert.match(lines[0], new RegExp(`/tmp contains the runtime dir ${runtimeDir}`));
        assert.equal(
          lines[0].includes(`contains the state dir ${stateDir}`),
          stateUnderTmp,
          lines[0],
        );
      });
    } finally {
      await node.stop();
      await temp.cleanup();
    }
  });
}
