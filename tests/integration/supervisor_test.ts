/**
 * The supervisor with real processes: crash recovery, quarantine, the
 * registry coming back, draining stops, and no orphans after SIGKILL.
 */

import assert from "node:assert/strict";
import type { OkResponse } from "../../src/wire/envelope.ts";
import { Client } from "../../src/server/client.ts";
import { programCommand, REPO_ROOT } from "../../src/runtime/command.ts";
import { socketPath } from "../../src/runtime/config.ts";
import { alive, issue, startNode, tempLayout, waitFor } from "../helpers.ts";

interface Svc {
  name: string;
  state: string;
  pid: number | null;
  restarts: number;
  last_exit: { code: number; signal: string | null } | null;
  since: string;
}

async function services(node: Awaited<ReturnType<typeof startNode>>): Promise<Svc[]> {
  const r = await node.request("supervisor", "supervisor.svc.list");
  return (r as OkResponse<{ services: Svc[] }>).result.services;
}

async function svc(node: Awaited<ReturnType<typeof startNode>>, name: string): Promise<Svc> {
  return (await services(node)).find((s) => s.name === name)!;
}

Deno.test("kill -9 of fs: back Healthy with a new pid and restarts + 1", async () => {
  const node = await startNode();
  try {
    const before = await svc(node, "fs");
    assert.equal(before.state, "Healthy");
    Deno.kill(before.pid!, "SIGKILL");
    await waitFor("fs Healthy again", async () => {
      const s = await svc(node, "fs");
      return s.state === "Healthy" && s.pid !== before.pid;
    });
    const after = await svc(node, "fs");
    assert.equal(after.restarts, before.restarts + 1);
    assert.deepEqual(after.last_exit, { code: 137, signal: "SIGKILL" });
    assert(!alive(before.pid!));
    // And it serves again.
    const tok = await issue(node, { service: "fs", actions: ["list"] });
    const r = await node.request("fs", "fs.list", { path: node.exportRoot }, tok.token);
    assert(r.ok, JSON.stringify(r));
    await node.childPids();
  } finally {
    await node.stop();
  }
});

Deno.test("a child that exits at once ends Quarantined; svc.start brings it back", async () => {
  const temp = await tempLayout();
  const flag = `${temp.root}/fs-broken`;
  await Deno.writeTextFile(flag, "");
  // A stand-in fs binary: exits at once while the flag file exists, else runs the real fs.
  const real = programCommand("fs", temp.layout, {
    kind: "dev",
    deno: Deno.execPath(),
    root: REPO_ROOT,
  });
  const wrapper = `${temp.root}/fs-wrapper.sh`;
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  await Deno.writeTextFile(
    wrapper,
    `#!/bin/sh\nif [ -e ${quote(flag)} ]; then echo "fs: broken on purpose" >&2; exit 3; fi\n` +
      `exec ${[real.cmd, ...real.args].map(quote).join(" ")} --supervised\n`,
  );
  await Deno.chmod(wrapper, 0o755);
  const node = await startNode({ temp, overrides: { fs: wrapper }, waitHealthy: false });
  try {
    await waitFor(
      "fs Quarantined",
      async () => (await svc(node, "fs")).state === "Quarantined",
      20_000,
    );
    const q = await svc(node, "fs");
    assert.equal(q.pid, null);
    assert.deepEqual(q.last_exit, { code: 3, signal: null });
    assert.equal(q.restarts, 4, "five starts: the first and four restarts");
    // It stays quarantined: no more restarts. (An absence has no event to wait
    // for: this gives the real supervisor time in which a restart would show.)
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await svc(node, "fs")).state, "Quarantined");

    // svc.start needs the right...
    const denied = await node.request("supervisor", "supervisor.svc.start", { name: "fs" });
    assert.equal(!denied.ok && denied.error.name, "UNAUTHENTICATED");
    // ...and with the fault fixed, the operator's start brings it back.
    await Deno.remove(flag);
    const r = await node.request(
      "supervisor",
      "supervisor.svc.start",
      { name: "fs" },
      node.operatorToken(),
    );
    assert(r.ok, JSON.stringify(r));
    assert.equal((r as OkResponse<Svc>).result.state, "Healthy");
    await node.childPids();
  } finally {
    await node.stop();
    await temp.cleanup();
  }
});

Deno.test("registry killed: resolve works again once it is back, with every service re-registered", async () => {
  const node = await startNode();
  try {
    const reg = await svc(node, "registry");
    const resolve = async () => {
      const c = await Client.connect(socketPath(node.layout, "registry"));
      try {
        return await c.call<{ endpoint: string }>("registry.resolve", { service: "fs" });
      } finally {
        await c.close();
      }
    };
    assert.equal((await resolve()).endpoint, `unix://${socketPath(node.layout, "fs")}`);
    Deno.kill(reg.pid!, "SIGKILL");
    await waitFor("registry Healthy again", async () => {
      const s = await svc(node, "registry");
      return s.state === "Healthy" && s.pid !== reg.pid;
    });
    await waitFor("fs re-registered", async () => (await resolve()).endpoint.endsWith("fs.sock"));
    const list = await (await node.client("registry")).call<{ services: { service: string }[] }>(
      "registry.list",
    );
    assert.deepEqual(list.services.map((s) => s.service), ["fs", "identity", "registry"]);
    await node.childPids();
  } finally {
    await node.stop();
  }
});

Deno.test("svc.stop drains: in-flight reads finish, then fs stops; svc.start brings it back", async () => {
  const node = await startNode();
  try {
    const big = `${node.exportRoot}/big.bin`;
    const data = new Uint8Array(24 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 65536) {
      data.set(crypto.getRandomValues(new Uint8Array(65536)), i);
    }
    await Deno.writeFile(big, data);
    const tok = await issue(node, { service: "fs", actions: ["open", "read"] });
    const fs = await Client.connect(socketPath(node.layout, "fs"));
    try {
      const { handle } = await fs.call<{ handle: string }>("fs.open", { path: big }, {
        token: tok.token,
      });
      const chunk = 767 * 1024;
      let lastRead = 0;
      const reads = Array.from(
        { length: 30 },
        (_, i) =>
          fs.request("fs.read", { handle, offset: i * chunk, size: chunk }, { token: tok.token })
            .finally(() => (lastRead = performance.now())),
      );
      let stoppedAt = 0;
      const stop = node.request(
        "supervisor",
        "supervisor.svc.stop",
        { name: "fs", drain_ms: 10_000 },
        node.operatorToken(),
      ).finally(() => (stoppedAt = performance.now()));
      stop.catch(() => {}); // awaited below; do not let an earlier failed assert orphan it
      const results = await Promise.all(reads);
      for (const r of results) assert(r.ok, `an in-flight read failed: ${JSON.stringify(r)}`);
      const total = results.reduce(
        (a, r) => a + (r as OkResponse<{ bytes_read: number }>).result.bytes_read,
        0,
      );
      assert.equal(total, 30 * chunk);
      const stopped = await stop;
      assert(stopped.ok, JSON.stringify(stopped));
      assert(stoppedAt >= lastRead, "fs stopped before its in-flight reads were answered");
      assert.equal((stopped as OkResponse<Svc>).result.state, "Stopped");
      assert.deepEqual((stopped as OkResponse<Svc>).result.last_exit, { code: 0, signal: null });
    } finally {
      await fs.close();
    }
    const r = await node.request(
      "supervisor",
      "supervisor.svc.start",
      { name: "fs" },
      node.operatorToken(),
    );
    assert.equal((r as OkResponse<Svc>).result.state, "Healthy");
    await node.childPids();
  } finally {
    await node.stop();
  }
});

Deno.test("SIGKILL of the supervisor leaves no Strata process running", async () => {
  const node = await startNode();
  try {
    const pids = await node.childPids();
    assert.equal(pids.length, 3);
    node.process.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor("every child to exit", () => pids.every((p) => !alive(p)), 2000);
    assert(Date.now() - killedAt <= 2000);
  } finally {
    await node.stop();
  }
});

Deno.test("strata-ctl falls back to the socket convention when the registry is down", async () => {
  const node = await startNode();
  try {
    const stop = await node.request(
      "supervisor",
      "supervisor.svc.stop",
      { name: "registry" },
      node.operatorToken(),
    );
    assert(stop.ok);
    const tok = await issue(node, { service: "fs", actions: ["list"] });
    const { cmd, args } = programCommand("ctl", node.layout, {
      kind: "dev",
      deno: Deno.execPath(),
      root: REPO_ROOT,
    }, { extra: ["-token", tok.token, "fs.list", JSON.stringify({ path: node.exportRoot })] });
    const out = await new Deno.Command(cmd, { args }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(new TextDecoder().decode(out.stdout), /"entries"/);
    await node.childPids();
  } finally {
    await node.stop();
  }
});

Deno.test("concurrent stops drain once; a start during a stop starts the service afresh", async () => {
  const node = await startNode();
  try {
    const op = node.operatorToken();
    const sup = await node.client("supervisor");
    const call = (method: string, name: string) =>
      sup.call<Svc>(`supervisor.svc.${method}`, { name }, { token: op });
    // Two stops at once: one SIGTERM, one clean drain (exit code 0, not 130).
    const [a, b] = await Promise.all([call("stop", "fs"), call("stop", "fs")]);
    assert.equal(a.state, "Stopped");
    assert.equal(b.state, "Stopped");
    assert.deepEqual(a.last_exit, { code: 0, signal: null });
    // A start while a stop is under way waits for it, then starts a new process.
    const before = (await call("start", "fs")).pid;
    const [stopped, started] = await Promise.all([call("stop", "fs"), call("start", "fs")]);
    // The stopped process drained and exited cleanly; the start that waited for it
    // has already begun the next one by the time the stop answers.
    assert.deepEqual(stopped.last_exit, { code: 0, signal: null });
    assert.equal(started.state, "Healthy");
    assert.notEqual(started.pid, before);
    assert.equal((await svc(node, "fs")).state, "Healthy");
    await node.childPids();
  } finally {
    await node.stop();
  }
});

/** Runs one program of Strata on `layout` to its end (at most 20 s); its exit code and output. */
async function runProgram(
  program: "supervisor" | "identity",
  layout: Awaited<ReturnType<typeof startNode>>["layout"],
): Promise<{ code: number; pid: number; output: string }> {
  const exe = Deno.execPath();
  const command = programCommand(program, layout, { kind: "dev", deno: exe, root: REPO_ROOT }, {
    run: program === "supervisor" ? [exe] : undefined,
  });
  const child = new Deno.Command(command.cmd, {
    args: command.args,
    env: command.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return { code: out.code, pid: child.pid, output: text };
  } finally {
    clearTimeout(timer);
  }
}

/** Each file's inode and modification time: whether it was replaced or written. */
function fingerprint(paths: string[]): string[] {
  return paths.map((p) => {
    const st = Deno.statSync(p);
    return `${p} ${st.ino} ${st.mtime?.getTime()} ${st.size}`;
  });
}

Deno.test("a second supervisor on a running node's runtime dir is refused before it starts or writes anything", async () => {
  const node = await startNode();
  try {
    const rt = node.layout.runtimeDir;
    const st = node.layout.stateDir;
    const files = [
      `${rt}/identity.pub`,
      `${rt}/revocations`,
      `${st}/keys.json`,
      `${st}/operator.token`,
    ];
    const before = fingerprint(files);
    const mode = Deno.statSync(rt).mode! & 0o7777;
    const pids = await node.childPids();
    // when the node is started again on the same layout, with the socket group let in
    const second = await runProgram("supervisor", { ...node.layout, groupAccess: true });
    // then it exits 1 naming the running node, having started no child and written nothing,
    // the runtime dir's mode included
    assert.equal(second.code, 1, second.output);
    assert.match(second.output, /another supervisor is running with the runtime dir/);
    assert.deepEqual(fingerprint(files), before);
    assert.equal(Deno.statSync(rt).mode! & 0o7777, mode);
    const audit = Deno.readTextFileSync(`${st}/audit.log`);
    assert(!audit.includes(`"pid":${second.pid}`), "the second supervisor wrote to the audit log");
    const after = await services(node);
    assert(after.every((s) => s.state === "Healthy"));
    assert.deepEqual(after.map((s) => s.pid).sort(), [...pids].sort());
  } finally {
    await node.stop();
  }
});

Deno.test("a second identity on a running node's state dir is refused before it reads or writes anything", async () => {
  const node = await startNode();
  try {
    await issue(node, { service: "fs", rights: ["fs.list"], path_prefix: node.exportRoot });
    const st = node.layout.stateDir;
    const rt = node.layout.runtimeDir;
    const files = [
      `${st}/keys.json`,
      `${st}/operator.token`,
      `${rt}/identity.pub`,
      `${rt}/revocations`,
    ];
    const before = fingerprint(files);
    // when identity is started by hand on the same layout
    const second = await runProgram("identity", node.layout);
    // then it exits 1 naming the running one, and the node's files are as they were
    assert.equal(second.code, 1, second.output);
    assert.match(second.output, /another identity is running with the state dir/);
    assert.deepEqual(fingerprint(files), before);
    assert.equal((await svc(node, "identity")).state, "Healthy");
  } finally {
    await node.stop();
  }
});

Deno.test("the node's locks go with its processes: started again after SIGTERM and after kill -9", async () => {
  const temp = await tempLayout();
  try {
    let node = await startNode({ temp });
    await node.stop();
    // when started again on the same layout after a clean stop
    node = await startNode({ temp });
    try {
      const pids = await node.childPids();
      // and killed -9 (the children exit as they lose the supervisor)
      node.process.kill("SIGKILL");
      await waitFor("every child to exit", () => pids.every((p) => !alive(p)), 5000);
    } finally {
      await node.stop();
    }
    // then it starts again all Healthy
    node = await startNode({ temp });
    try {
      assert((await services(node)).every((s) => s.state === "Healthy"));
    } finally {
      await node.stop();
    }
  } finally {
    await temp.cleanup();
  }
});

Deno.test("a missing export root: fs ends Quarantined, and the start says why in one line", async () => {
  const temp = await tempLayout();
  const missing = `${temp.root}/missing`;
  temp.layout.fsRoots = [missing];
  const node = await startNode({ temp, waitHealthy: false });
  try {
    await waitFor("the start's summary", () => node.output().includes("shows more"), 20_000);
    assert.match(
      node.output(),
      new RegExp(
        `strata: fs's last error: failed to start: fs root ${missing} does not exist: ` +
          `create it, or export another folder .*\\(strata-ctl logs fs shows more\\)`,
      ),
    );
    assert.equal((await svc(node, "fs")).state, "Quarantined");
  } finally {
    await node.stop();
    await temp.cleanup();
  }
});

Deno.test("state files restored as 0644 are the owner's alone again at the next start, with a warning", async () => {
  const temp = await tempLayout();
  try {
    let node = await startNode({ temp });
    await node.stop();
    const st = temp.layout.stateDir;
    // given the signing keys and the operator token put back from a backup as 0644
    for (const f of ["keys.json", "operator.token"]) Deno.chmodSync(`${st}/${f}`, 0o644);
    // when the node starts again
    node = await startNode({ temp });
    try {
      // then both are 0600, and identity said what it changed
      for (const f of ["keys.json", "operator.token"]) {
        assert.equal(Deno.statSync(`${st}/${f}`).mode! & 0o777, 0o600, f);
        assert.match(node.output(), new RegExp(`${st}/${f.replace(".", "\\.")}.*0644`));
      }
    } finally {
      await node.stop();
    }
  } finally {
    await temp.cleanup();
  }
});
