/**
 * Cluster mode in the installed form, end to end: `deno task install` of
 * node A into a temp prefix with the cluster settings (options, as an
 * operator or the NixOS build passes them), a real etcd (tests/etcd.ts), the
 * operator's `cluster init` and `join`, and node B
 * started by the development launcher. The launchers carry exactly the grants
 * the permissions module computes for that cluster layout: etcd's host:port
 * and the root key, no proto folder and no grpc-js variables. The
 * installed strata-ctl makes the root (`cluster init`) and endorses A (`cluster
 * join a`, run in the operator's folder); the installed supervisor runs, and
 * its installed strata-ctl and fs honour B's token once the root endorses B
 * (refused before), and B honours A's.
 */

import assert from "node:assert/strict";
import { LAUNCHER_NAMES } from "../../src/runtime/command.ts";
import { CHILD_SERVICES, type Layout, layoutArgs, socketPath } from "../../src/runtime/config.ts";
import { permissionFlags, PROGRAMS } from "../../src/runtime/permissions.ts";
import { Client } from "../../src/server/client.ts";
import { alive, issue, type Node, REPO_ROOT, startNode, tempLayout, waitFor } from "../helpers.ts";
import { haveEtcd, startEtcd } from "../etcd.ts";
import { ctl, listOn } from "../cluster_support.ts";

const decoder = new TextDecoder();

/** The words of a launcher's exec line (the launchers quote nothing these paths need). */
function execWords(script: string): string[] {
  const line = script.split("\n").find((l) => l.startsWith("exec "));
  assert(line, script);
  return line.slice("exec ".length).split(" ");
}

Deno.test({
  name: "deno task install in cluster mode: exact grants, tokens across nodes",
  ignore: !haveEtcd(),
  async fn() {
    const etcd = await startEtcd(1);
    const op = await Deno.makeTempDir({ dir: "/tmp", prefix: "strata-op-" });
    const tempA = await tempLayout();
    const tempB = await tempLayout();
    const prefix = `${tempA.root}/opt`;
    const bin = `${prefix}/bin`;
    const cluster = { name: "inst", etcd: etcd.endpoints, root: `${op}/root.pub` };
    // What the installed programs run with, and what the operator's (development) strata-ctl uses.
    const layoutA: Layout = { ...tempA.layout, nodeId: "a", cluster };
    tempB.layout = { ...tempB.layout, nodeId: "b", cluster };
    let supervisor: Deno.ChildProcess | undefined;
    let b: Node | undefined;
    try {
      // Settings as options (a unit of before 2026-12-04 may still set STRATA_ETCD_PROTO).
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "task",
          "--quiet",
          "install",
          `--prefix=${prefix}`,
          ...layoutArgs({ ...layoutA, cluster }),
        ],
        cwd: REPO_ROOT,
        env: { NO_COLOR: "1", STRATA_ETCD_PROTO: "/nonexistent/proto" },
      }).output();
      assert(out.success, decoder.decode(out.stdout) + decoder.decode(out.stderr));
      const installedCtl = async (
        args: string[],
        options: { token?: string; cwd?: string } = {},
      ) => {
        const r = await new Deno.Command(`${bin}/strata-ctl`, {
          args: [...args, "--json"],
          env: options.token ? { STRATA_TOKEN: options.token } : {},
          ...(options.cwd ? { cwd: options.cwd } : {}),
        }).output();
        return { code: r.code, stdout: decoder.decode(r.stdout), stderr: decoder.decode(r.stderr) };
      };
      // The operator's root of trust, made by the installed strata-ctl in its cluster folder.
      const init = await installedCtl(["cluster", "init"], { cwd: op });
      assert.equal(init.code, 0, init.stderr);
      assert.match(JSON.parse(init.stdout).root_kid, /^k4\.pid\./);
      // Its `cluster` commands alone get that folder (".") and openssl.
      const ctlScript = await Deno.readTextFile(`${bin}/strata-ctl`);
      const clusterLine = ctlScript.split("\n").find((l) =>
        l.startsWith(`[ "$1" = cluster ] && exec `)
      );
      assert(clusterLine, ctlScript);
      assert.deepEqual(
        clusterLine.split(" ").filter((w) => w.startsWith("--allow-") || w.startsWith("--deny-")),
        permissionFlags("ctl", layoutA, { downloads: ["."], clusterDir: "." }),
      );
      assert(clusterLine.includes("--allow-run=/usr/bin/openssl"));
      assert(!execWords(ctlScript).some((w) => w.startsWith("--allow-run")));

      for (const program of PROGRAMS) {
        const script = await Deno.readTextFile(`${bin}/${LAUNCHER_NAMES[program]}`);
        const words = execWords(script);
        const run = program === "supervisor"
          ? CHILD_SERVICES.map((s) => `${bin}/${LAUNCHER_NAMES[s]}`)
          : undefined;
        const downloads = program === "ctl" ? ["."] : undefined;
        const flags = words.filter((w) => w.startsWith("--allow-") || w.startsWith("--deny-"));
        assert.deepEqual(flags, permissionFlags(program, layoutA, { run, downloads }), program);
        // etcd's exact host:port and the root key; no grpc-js variables, no proto folder.
        const port = new URL(etcd.endpoints[0]).host;
        assert(flags.some((f) => f.startsWith("--allow-net=") && f.includes(port)), program);
        assert(!flags.some((f) => f.startsWith("--allow-env=") && f.includes("GRPC")), program);
        const read = flags.find((f) => f.startsWith("--allow-read="))!.split("=")[1].split(",");
        assert(read.includes(`${op}/root.pub`), program);
        assert(!script.includes("proto"), `${program}: ${script}`);
        assert(words.includes(`--cluster=inst`));
        assert(!words.some((w) => /^(-A|--allow-all|--allow-net|--allow-read)$/.test(w)));
      }

      supervisor = new Deno.Command(`${bin}/strata-supervisor`, {
        stdout: "null",
        stderr: "null",
      }).spawn();
      await waitFor("A's services Healthy", async () => {
        const r = await installedCtl(["svc", "list"]);
        const list = JSON.parse(r.stdout || "{}").services as { state: string }[] | undefined;
        return list?.length === 3 && list.every((s) => s.state === "Healthy");
      }, 30_000);
      // Each child runs through its launcher: the installed program, bundled (cluster mode's
      // etcd sources inside its one file).
      const ps = await new Deno.Command("ps", {
        args: ["-o", "args=", "--ppid", String(supervisor.pid)],
      }).output();
      const children = decoder.decode(ps.stdout).trim().split("\n");
      assert.equal(children.length, 3, children.join("\n"));
      for (const c of children) {
        assert.match(
          c,
          new RegExp(`${prefix}/lib/strata/app/dist/(registry|identity|fs)/main\\.js `),
        );
      }

      b = await startNode({ temp: tempB });
      await Deno.writeTextFile(`${tempA.exportRoot}/on-a.txt`, "a");
      const tokB = (await issue(b, { service: "fs", actions: ["list"] })).token;
      // B is not endorsed yet: A's installed fs does not know its key.
      const before = await installedCtl(["fs", "ls", tempA.exportRoot], { token: tokB });
      assert.notEqual(before.code, 0, before.stdout);
      assert.match(before.stderr + before.stdout, /unknown_key/);

      // The operator endorses both nodes (join asks each node's identity for its keys).
      const joined = await installedCtl(["cluster", "join", "a"], { cwd: op });
      assert.equal(joined.code, 0, joined.stderr);
      assert.equal(JSON.parse(joined.stdout).issuer, "identity@a");
      await ctl(b.layout, op, ["cluster", "join", "b", "--dir", op]);

      // B's token on A's installed node: honoured (through the installed strata-ctl and fs).
      await waitFor("A to honour B's token", async () => {
        const r = await installedCtl(["fs", "ls", tempA.exportRoot], { token: tokB });
        return r.code === 0 && r.stdout.includes("on-a.txt");
      }, 10_000);
      // A's token (minted by the installed identity) on B: honoured.
      const client = await Client.connect(socketPath(layoutA, "identity"));
      try {
        const opToken = Deno.readTextFileSync(`${tempA.layout.stateDir}/operator.token`).trim();
        const r = await client.request("identity.issue", { service: "fs", actions: ["list"] }, {
          token: opToken,
        });
        assert(r.ok, JSON.stringify(r));
        const tokA = (r.result as { token: string }).token;
        const onB = await listOn(b, tokA);
        assert(onB.ok, JSON.stringify(onB));
      } finally {
        await client.close();
      }
    } finally {
      await b?.stop().catch(() => {});
      if (supervisor) {
        supervisor.kill("SIGTERM");
        await supervisor.status;
        await waitFor("A's supervisor to exit", () => !alive(supervisor!.pid), 5000);
      }
      await etcd.stop();
      await Deno.remove(op, { recursive: true }).catch(() => {});
      await new Deno.Command("chmod", { args: ["-R", "u+w", tempA.root] }).output();
      await tempA.cleanup();
      await tempB.cleanup();
    }
  },
});
