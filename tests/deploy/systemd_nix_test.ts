/**
 * Deployment files: the systemd unit's exposure and validity, the rendered
 * unit in nix/ matching its template, every .nix file parsing, and the
 * versions agreeing. Tools that are not installed make their test skipped
 * (reported as ignored), never passed; .ci/run installs them.
 */

import assert from "node:assert/strict";
import { renderUnit, TEMPLATE, UNIT_DEFAULTS } from "../../scripts/unit.ts";
import { VERSION } from "../../src/runtime/version.ts";
import { SERVICE_ENV } from "../../src/runtime/command.ts";
import { REPO_ROOT } from "../helpers.ts";

function has(tool: string): boolean {
  return new Deno.Command("sh", { args: ["-c", `command -v ${tool}`] }).outputSync().success;
}

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, { args, cwd: REPO_ROOT }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, text };
}

const SYSTEMD = has("systemd-analyze");
const NIX = has("nix-instantiate");

Deno.test("nix/strata.service is the template rendered with the defaults", async () => {
  const template = await Deno.readTextFile(TEMPLATE);
  assert.equal(
    await Deno.readTextFile(`${REPO_ROOT}/nix/strata.service`),
    renderUnit(template, UNIT_DEFAULTS),
    "run `deno task unit --out=nix/strata.service` after editing nix/strata.service.in",
  );
});

Deno.test("the unit gives the supervisor the malloc and event-loop settings it gives every service", async () => {
  // The compiled supervisor is the unit's ExecStart itself, with only the
  // unit's environment; the services get SERVICE_ENV from it.
  const unit = renderUnit(await Deno.readTextFile(TEMPLATE), {
    ...UNIT_DEFAULTS,
    form: "compiled",
  });
  const env = Object.fromEntries(
    [...unit.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]),
  );
  assert.deepEqual(env, SERVICE_ENV);
});

Deno.test("the rendered unit has no placeholder left and confines fs's roots", async () => {
  const template = await Deno.readTextFile(TEMPLATE);
  const unit = renderUnit(template, {
    ...UNIT_DEFAULTS,
    fsRoots: ["/srv/a", "/srv/b"],
    groupAccess: true,
  });
  assert(!/@[A-Z_]+@/.test(unit));
  assert.match(unit, /^BindReadOnlyPaths=\/srv\/a \/srv\/b$/m);
  assert.match(unit, /^RuntimeDirectoryMode=0750$/m);
  assert.match(unit, /^MemoryDenyWriteExecute=no$/m);
  assert.match(unit, /^RestrictAddressFamilies=AF_UNIX$/m);
  assert.match(unit, /^ProcSubset=pid$/m);
  assert.match(unit, /^PrivateUsers=yes$/m);
  assert.match(unit, /^ExecStart=\/opt\/strata\/bin\/strata-supervisor$/m);
  assert.match(
    renderUnit(template, { ...UNIT_DEFAULTS, form: "compiled" }),
    /^ExecStart=\/opt\/strata\/bin\/supervisor$/m,
  );
  assert.throws(
    () => renderUnit("", { ...UNIT_DEFAULTS, runtimeDir: "/tmp/strata" }),
    /below \/run/,
  );
  // Paths systemd would misread are refused, not rendered.
  for (
    const bad of [
      { stateDir: "/var/lib/../../etc" },
      { runtimeDir: "/run/strata/" },
      { fsRoots: ["srv/data"] },
      { fsRoots: ["/srv//data"] },
      { fsRoots: ["/srv/my data"] },
      { binDir: "/opt/strata/./bin" },
    ]
  ) {
    assert.throws(() => renderUnit(template, { ...UNIT_DEFAULTS, ...bad }), /normalised/);
  }
});

Deno.test({
  name: `systemd-analyze security rates the unit 0.2 or lower${
    SYSTEMD ? "" : " (skipped: no systemd-analyze)"
  }`,
  ignore: !SYSTEMD,
  fn: async () => {
    const r = await run("systemd-analyze", ["security", "--offline=yes", "nix/strata.service"]);
    const m = /Overall exposure level for strata\.service: (\d+\.\d+)/.exec(r.text);
    assert(m, r.text);
    assert(Number(m[1]) <= 0.2, `exposure ${m[1]}:\n${r.text}`);
    // Every directive the analysis still counts against the unit has its reason in the template.
    const comments = (await Deno.readTextFile(TEMPLATE)).split("\n").filter((l) =>
      l.startsWith("#")
    ).join("\n");
    const open = [...r.text.matchAll(/^✗ ([A-Za-z]+)/gm)].map((x) => x[1]);
    assert(open.length > 0, r.text);
    for (const directive of open) {
      assert(comments.includes(`# ${directive}`), `no reason for ${directive} in the template`);
    }
  },
});

Deno.test({
  name: `systemd-analyze verify reports nothing${SYSTEMD ? "" : " (skipped: no systemd-analyze)"}`,
  ignore: !SYSTEMD,
  fn: async () => {
    // verify checks that ExecStart exists: render the unit with stand-in binaries.
    const dir = await Deno.makeTempDir({ prefix: "strata-unit-" });
    try {
      await Deno.mkdir(`${dir}/bin`);
      for (const b of ["supervisor", "strata-supervisor"]) {
        await Deno.writeTextFile(`${dir}/bin/${b}`, "#!/bin/sh\n", { mode: 0o755 });
      }
      const unit = renderUnit(await Deno.readTextFile(TEMPLATE), {
        ...UNIT_DEFAULTS,
        binDir: `${dir}/bin`,
      });
      await Deno.writeTextFile(`${dir}/strata.service`, unit);
      const r = await run("systemd-analyze", ["verify", `${dir}/strata.service`]);
      assert(r.ok, r.text);
      assert.equal(r.text.trim(), "", r.text);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const nixFiles: string[] = [];
for (const dir of [REPO_ROOT, `${REPO_ROOT}/nix`]) {
  for (const e of Deno.readDirSync(dir)) {
    if (e.isFile && e.name.endsWith(".nix")) nixFiles.push(`${dir}/${e.name}`);
  }
}

Deno.test({
  name: `every .nix file parses (${nixFiles.length} files)${
    NIX ? "" : " (skipped: no nix-instantiate)"
  }`,
  ignore: !NIX,
  fn: async () => {
    assert(nixFiles.length >= 3, "flake.nix, nix/package.nix, nix/module.nix");
    for (const f of nixFiles) {
      const r = await run("nix-instantiate", ["--parse", f]);
      assert(r.ok, `${f}: ${r.text}`);
    }
  },
});

Deno.test("the Nix package's version is the program's", async () => {
  const v = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/nix/version.json`)).version;
  assert.equal(v, VERSION);
});

Deno.test({
  name: `a cluster node's unit (--network): verified, exposure 1.1 or lower, each gap explained${
    SYSTEMD ? "" : " (skipped: no systemd-analyze)"
  }`,
  ignore: !SYSTEMD,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "strata-unit-" });
    try {
      await Deno.mkdir(`${dir}/bin`);
      await Deno.writeTextFile(`${dir}/bin/strata-supervisor`, "#!/bin/sh\n", { mode: 0o755 });
      const unit = renderUnit(await Deno.readTextFile(TEMPLATE), {
        ...UNIT_DEFAULTS,
        binDir: `${dir}/bin`,
        network: true,
      });
      await Deno.writeTextFile(`${dir}/strata.service`, unit);
      const verify = await run("systemd-analyze", ["verify", `${dir}/strata.service`]);
      assert(verify.ok && verify.text.trim() === "", verify.text);
      const r = await run("systemd-analyze", [
        "security",
        "--offline=yes",
        `${dir}/strata.service`,
      ]);
      const m = /Overall exposure level for strata\.service: (\d+\.\d+)/.exec(r.text);
      assert(m, r.text);
      assert(Number(m[1]) <= 1.1, `exposure ${m[1]}:\n${r.text}`);
      const comments = unit.split("\n").filter((l) => l.startsWith("#")).join("\n");
      const open = [...r.text.matchAll(/^✗ ([A-Za-z]+)/gm)].map((x) => x[1]);
      assert(open.includes("PrivateNetwork") && open.includes("IPAddressDeny"), r.text);
      for (const directive of open) {
        assert(comments.includes(`# ${directive}`), `no reason for ${directive} in the unit`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
