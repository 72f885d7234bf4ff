/**
 * `deno task start` with a bad layout in its STRATA_* variables: one line naming the setting and
 * its variable, exit 2, before anything is started (it was an uncaught ConfigError with a stack).
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "../helpers.ts";

Deno.test("deno task start: a cluster tcp:// endpoint without STRATA_CLUSTER_CA is one line, exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "strata-launch-" });
  try {
    for (const f of ["root.pub", "b.pem", "b.key"]) await Deno.writeTextFile(`${dir}/${f}`, "x\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "start"],
      cwd: REPO_ROOT,
      env: {
        STRATA_RUNTIME_DIR: `${dir}/run`,
        STRATA_STATE_DIR: `${dir}/state`,
        STRATA_NODE_ID: "b",
        STRATA_CLUSTER: "prod",
        STRATA_ETCD_ENDPOINTS: "http://127.0.0.1:9",
        STRATA_CLUSTER_ROOT: `${dir}/root.pub`,
        STRATA_FS_LISTEN: "tcp://127.0.0.1:9",
        STRATA_TLS_CERT: `${dir}/b.pem`,
        STRATA_TLS_KEY: `${dir}/b.key`,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.equal(stderr.trim().split("\n").length, 1, stderr);
    assert.match(stderr, /^strata: --cluster-ca:/);
    assert.match(stderr, /STRATA_CLUSTER_CA/);
    assert(!stderr.includes("Uncaught"), stderr);
    // Nothing was started: no runtime dir was made.
    assert(!(await Deno.stat(`${dir}/run`).then(() => true, () => false)), "runtime dir made");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the launcher of deno task start and ctl: STRATA_GROUP_ACCESS other than 1 or 0 is refused, not taken for off", async () => {
  const dir = await Deno.makeTempDir({ prefix: "strata-launch-" });
  try {
    // strata-ctl status: the same launcher reads the layout, and a regression cannot start a node.
    for (const value of ["yes", "true", "on"]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["task", "-q", "ctl", "status"],
        cwd: REPO_ROOT,
        env: {
          STRATA_RUNTIME_DIR: `${dir}/run`,
          STRATA_STATE_DIR: `${dir}/state`,
          STRATA_GROUP_ACCESS: value,
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 2, stderr);
      assert.equal(
        stderr,
        `strata: --group-access: must be 1 (on) or 0 (off), not "${value}" (set by STRATA_GROUP_ACCESS)\n`,
      );
      assert(!(await Deno.stat(`${dir}/run`).then(() => true, () => false)), "runtime dir made");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task ctl: its --tls-cert and --tls-key options reach the launcher's layout (and grants), as their variables do", async () => {
  const dir = await Deno.makeTempDir({ prefix: "strata-launch-" });
  try {
    for (const f of ["a.pem", "a.key"]) await Deno.writeTextFile(`${dir}/${f}`, "x\n");
    const out = await new Deno.Command(Deno.execPath(), {
      // The export root is /tmp (the default), so the launcher refuses a key inside it: which
      // it can only do when it reads the option (before, only STRATA_TLS_KEY was read, and
      // strata-ctl was then denied the files it was given).
      args: ["task", "-q", "ctl", "--tls-cert", `${dir}/a.pem`, `--tls-key=${dir}/a.key`, "status"],
      cwd: REPO_ROOT,
      env: { STRATA_RUNTIME_DIR: `${dir}/run`, STRATA_STATE_DIR: `${dir}/state` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.match(stderr, /^strata: --tls-key: .* lies inside the export root/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
