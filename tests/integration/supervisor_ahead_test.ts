/**
 * The supervisor starts fs's process ahead of identity, held: it loads its
 * code while identity starts, and reads no key or revocation and binds no
 * socket until identity is Healthy and the supervisor releases it. A held
 * process behind a dependency that will not come up is ended, and one whose
 * supervisor dies exits. Real processes: identity is a wrapper that waits
 * for a file before it runs the real identity.
 */

import assert from "node:assert/strict";
import type { OkResponse } from "../../src/wire/envelope.ts";
import { programCommand, REPO_ROOT } from "../../src/runtime/command.ts";
import { runtimeFiles, socketPath } from "../../src/runtime/config.ts";
import { alive, issue, startNode, type TempLayout, tempLayout, waitFor } from "../helpers.ts";

interface Svc {
  name: string;
  state: string;
  pid: number | null;
  waiting_for?: string[];
}

type Node = Awaited<ReturnType<typeof startNode>>;

async function svc(node: Node, name: string): Promise<Svc> {
  const r = await node.request("supervisor", "supervisor.svc.list");
  return (r as OkResponse<{ services: Svc[] }>).result.services.find((s) => s.name === name)!;
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * A stand-in identity: waits (5 s at most) until `go` exists, then runs the
 * real identity; with `fail`, exits at once instead.
 */
async function identityWrapper(temp: TempLayout, go: string, fail = false): Promise<string> {
  const real = programCommand("identity", temp.layout, {
    kind: "dev",
    deno: Deno.execPath(),
    root: REPO_ROOT,
  });
  const wrapper = `${temp.root}/identity-wrapper.sh`;
  const body = fail
    ? `echo "identity: broken on purpose" >&2; exit 3\n`
    : `i=0\nwhile [ ! -e ${
      quote(go)
    } ]; do\n  i=$((i+1)); [ $i -gt 100 ] && exit 4\n  sleep 0.05\ndone\n` +
      `exec ${[real.cmd, ...real.args].map(quote).join(" ")} --supervised\n`;
  await Deno.writeTextFile(wrapper, `#!/bin/sh\n${body}`);
  await Deno.chmod(wrapper, 0o755);
  return wrapper;
}

/**
 * The files a process has open under `dir` (through ls: Deno refuses
 * /proc/<pid> without -A).
 */
function openUnder(pid: number, dir: string): string[] {
  const out = new Deno.Command("ls", { args: ["-l", `/proc/${pid}/fd`] }).outputSync();
  assert(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).split("\n")
    .map((line) => line.split(" -> ")[1] ?? "")
    .filter((target) => target.startsWith(dir));
}

Deno.test("fs is started ahead of identity, held: no socket and nothing read until identity is Healthy", async () => {
  const temp = await tempLayout();
  const go = `${temp.root}/identity-go`;
  const wrapper = await identityWrapper(temp, go);
  const node = await startNode({ temp, overrides: { identity: wrapper }, waitHealthy: false });
  try {
    await waitFor("fs held", async () => (await svc(node, "fs")).pid !== null, 10_000);
    const held = await svc(node, "fs");
    assert.equal(held.state, "Declared");
    assert.deepEqual(held.waiting_for, ["identity"]);
    assert.equal((await svc(node, "identity")).state, "Starting");
    // Give a process that did not wait time to get as far as its socket.
    await new Promise((r) => setTimeout(r, 1000));
    assert(alive(held.pid!));
    assert.equal((await svc(node, "fs")).state, "Declared");
    assert.throws(() => Deno.lstatSync(socketPath(node.layout, "fs")), Deno.errors.NotFound);
    assert.deepEqual(openUnder(held.pid!, node.layout.runtimeDir), []);
    assert.throws(
      () => Deno.lstatSync(runtimeFiles(node.layout).revocations),
      Deno.errors.NotFound,
    );

    await Deno.writeTextFile(go, "");
    await waitFor("all Healthy", async () => {
      const r = await node.request("supervisor", "supervisor.svc.list");
      return (r as OkResponse<{ services: Svc[] }>).result.services
        .every((s) => s.state === "Healthy");
    }, 20_000);
    // The held process itself was released, not replaced.
    assert.equal((await svc(node, "fs")).pid, held.pid);
    const tok = await issue(node, { service: "fs", actions: ["list"] });
    const r = await node.request("fs", "fs.list", { path: node.exportRoot }, tok.token);
    assert(r.ok, JSON.stringify(r));
  } finally {
    await node.stop();
    await temp.cleanup();
  }
});

Deno.test("identity quarantined: fs's held process is ended and the start settles", async () => {
  const temp = await tempLayout();
  const wrapper = await identityWrapper(temp, "", true);
  const node = await startNode({ temp, overrides: { identity: wrapper }, waitHealthy: false });
  try {
    await waitFor("fs held", async () => (await svc(node, "fs")).pid !== null, 10_000);
    const held = (await svc(node, "fs")).pid!;
    await waitFor(
      "identity Quarantined",
      async () => (await svc(node, "identity")).state === "Quarantined",
      20_000,
    );
    await waitFor("the held fs gone", () => !alive(held), 5000);
    const fs = await svc(node, "fs");
    assert.equal(fs.state, "Declared");
    assert.equal(fs.pid, null);
    // The supervisor saw the start settle (it says so once nothing more can come up).
    await waitFor("the start settled", () => node.output().includes("not everything is healthy"));
  } finally {
    await node.stop();
    await temp.cleanup();
  }
});

Deno.test("SIGKILL of the supervisor: a held fs exits with it", async () => {
  const temp = await tempLayout();
  const go = `${temp.root}/identity-go`;
  const wrapper = await identityWrapper(temp, go);
  const node = await startNode({ temp, overrides: { identity: wrapper }, waitHealthy: false });
  let identityPid: number | null = null;
  try {
    await waitFor("fs held", async () => (await svc(node, "fs")).pid !== null, 10_000);
    const held = (await svc(node, "fs")).pid!;
    identityPid = (await svc(node, "identity")).pid;
    node.process.kill("SIGKILL");
    await waitFor("the held fs gone", () => !alive(held), 5000);
  } finally {
    // The waiting wrapper is not a Strata program: it gives up after 5 s.
    if (identityPid !== null) {
      await waitFor("the identity wrapper gone", () => !alive(identityPid!), 10_000)
        .catch(() => Deno.kill(identityPid!, "SIGKILL"));
    }
    await node.stop();
    await temp.cleanup();
  }
});
