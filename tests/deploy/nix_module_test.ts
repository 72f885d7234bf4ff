/**
 * The NixOS module and the package evaluate. nixpkgs cannot be fetched here,
 * so nix-instantiate evaluates nix/module.nix and nix/package.nix against
 * tests/fixtures/nix_lib_stand_in.nix (the few `lib` functions they use). The
 * module must refuse bad options, render for normalised paths exactly the
 * unit `deno task unit` renders for the same options, in both forms; the
 * package must fetch exactly deno.lock's tarballs with the lock's hashes and
 * build the compiled form on nixpkgs' denort. Skipped (reported as ignored)
 * without nix-instantiate; .ci/run installs it.
 */

import assert from "node:assert/strict";
import { REPO_ROOT } from "../helpers.ts";

const NIX = new Deno.Command("sh", { args: ["-c", "command -v nix-instantiate"] }).outputSync()
  .success;
const STORE = "/nix/store/00000000000000000000000000000000-strata-0.4.0";
const decoder = new TextDecoder();

async function nixEval(
  fixture: string,
  args: Record<string, string>,
): Promise<{ ok: boolean; value: unknown; err: string }> {
  const out = await new Deno.Command("nix-instantiate", {
    args: [
      "--eval",
      "--strict",
      "--json",
      `${REPO_ROOT}/tests/fixtures/${fixture}`,
      "--arg",
      "repo",
      REPO_ROOT,
      ...Object.entries(args).flatMap(([k, v]) => ["--argstr", k, v]),
    ],
  }).output();
  const text = decoder.decode(out.stdout);
  return {
    ok: out.success,
    value: out.success ? JSON.parse(text) : undefined,
    err: decoder.decode(out.stderr),
  };
}

function moduleUnit(options: Record<string, unknown>) {
  return nixEval("nix_module_eval.nix", { options: JSON.stringify(options) });
}

/** `deno task unit` for the same options, as the operator would run it. */
async function taskUnit(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "unit", ...args],
    cwd: REPO_ROOT,
  }).output();
  assert(out.success, decoder.decode(out.stderr));
  return decoder.decode(out.stdout);
}

function nixTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `${name}${NIX ? "" : " (skipped: no nix-instantiate)"}`, ignore: !NIX, fn });
}

nixTest("NixOS module: the defaults render the unit deno task unit renders", async () => {
  const r = await moduleUnit({});
  assert(r.ok, r.err);
  assert.equal(
    r.value,
    await taskUnit([
      `--bin-dir=${STORE}/bin`,
      `--doc-dir=${STORE}/share/doc/strata`,
      "--fs-roots=",
    ]),
  );
  assert.match(r.value as string, new RegExp(`^ExecStart=${STORE}/bin/strata-supervisor$`, "m"));
});

nixTest("NixOS module: both forms, every option, the same unit as deno task unit", async () => {
  for (const form of ["installed", "compiled"]) {
    const options = {
      form,
      runtimeDir: "/run/strata-a",
      stateDir: "/var/lib/strata/a",
      fsRoots: ["/srv/data", "/srv/media"],
      groupAccess: true,
      user: "svc-strata",
      group: "operators",
      nodeId: "node-7.example",
    };
    const r = await moduleUnit(options);
    assert(r.ok, r.err);
    const unit = await taskUnit([
      `--form=${form}`,
      `--bin-dir=${STORE}/bin`,
      `--doc-dir=${STORE}/share/doc/strata`,
      "--runtime-dir=/run/strata-a",
      "--state-dir=/var/lib/strata/a",
      "--fs-roots=/srv/data:/srv/media",
      "--group-access",
      "--user=svc-strata",
      "--group=operators",
    ]);
    assert.equal(r.value, unit, form);
    const exec = form === "compiled" ? "supervisor" : "strata-supervisor";
    assert.match(unit, new RegExp(`^ExecStart=${STORE}/bin/${exec}$`, "m"));
    assert.match(unit, /^BindReadOnlyPaths=\/srv\/data \/srv\/media$/m);
    assert.match(unit, /^StateDirectory=strata\/a$/m);
  }
});

nixTest("NixOS module: bad options are refused at evaluation, naming the option", async () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ stateDir: "/var/lib/../../etc" }, /stateDir must be an absolute, normalised path/],
    [{ runtimeDir: "/run/strata/" }, /runtimeDir must be an absolute, normalised path/],
    [{ runtimeDir: "/tmp/strata" }, /runtimeDir must be below \/run/],
    [{ stateDir: "/var/lib" }, /stateDir must be an absolute, normalised path|below \/var\/lib/],
    [{ fsRoots: ["srv/data"] }, /fsRoots must be an absolute, normalised path/],
    [{ fsRoots: ["/srv/./data"] }, /fsRoots must be an absolute, normalised path/],
    [{ fsRoots: ["/srv//data"] }, /fsRoots must be an absolute, normalised path/],
    [{ fsRoots: ["/srv/my data"] }, /fsRoots must be an absolute, normalised path/],
    [{ nodeId: "bad id!" }, /nodeId must be 1-63 letters/],
    [{ nodeId: "-x" }, /nodeId must be 1-63 letters/],
    [{ user: "Root;x" }, /user must be a user or group name/],
    [{ form: "docker" }, /form must be installed or compiled/],
  ];
  for (const [options, message] of bad) {
    const r = await moduleUnit(options);
    assert(!r.ok, `accepted ${JSON.stringify(options)}`);
    assert.match(r.err, message, JSON.stringify(options));
  }
});

nixTest(
  "Nix package: fetches exactly deno.lock's tarballs, pinned by the lock's hashes",
  async () => {
    const lock = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.lock`));
    const expected = Object.entries(lock.npm as Record<string, { integrity: string }>).map(
      ([key, entry]) => {
        const at = key.lastIndexOf("@");
        const name = key.slice(0, at);
        const version = key.slice(at + 1);
        return {
          name,
          version,
          url: `https://registry.npmjs.org/${name}/-/${name.split("/").at(-1)}-${version}.tgz`,
          hash: entry.integrity,
        };
      },
    ).sort((a, b) => a.name.localeCompare(b.name));
    const r = await nixEval("nix_package_eval.nix", { form: "installed" });
    assert(r.ok, r.err);
    const got = (r.value as { tarballs: typeof expected }).tarballs
      .sort((a, b) => a.name.localeCompare(b.name));
    assert.deepEqual(got, expected);
    for (const t of got) assert.match(t.hash, /^sha512-/);
  },
);

nixTest(
  "Nix package: the compiled form uses nixpkgs' denort, the installed form none",
  async () => {
    const compiled = await nixEval("nix_package_eval.nix", { form: "compiled" });
    assert(compiled.ok, compiled.err);
    const c = compiled.value as { buildPhase: string; mainProgram: string };
    assert.match(c.buildPhase, /DENORT_BIN=\/nix\/store\/stand-in-denort\/bin\/denort/);
    assert.match(c.buildPhase, /scripts\/compile\.ts/);
    assert.equal(c.mainProgram, "supervisor");
    const installed = await nixEval("nix_package_eval.nix", { form: "installed" });
    assert(installed.ok, installed.err);
    const i = installed.value as { buildPhase: string; mainProgram: string };
    assert.doesNotMatch(i.buildPhase, /DENORT/);
    assert.match(
      i.buildPhase,
      /scripts\/install\.ts[\s\S]*--deno=\/nix\/store\/stand-in-deno\/bin\/deno/,
    );
    assert.equal(i.mainProgram, "strata-supervisor");
  },
);

nixTest("NixOS module: cluster options build a cluster node and keep its network", async () => {
  const cluster = {
    name: "prod",
    etcdEndpoints: "http://10.0.0.1:2379,http://10.0.0.2:2379",
    root: "/etc/strata/root.pub",
    ca: "/etc/strata/ca.pem",
    fsListen: "tcp://10.0.0.1:7402",
    tlsCert: "/etc/strata/node.pem",
    tlsKey: "/etc/strata/node.key",
  };
  const r = await moduleUnit({ cluster });
  assert(r.ok, r.err);
  const unit = await taskUnit([
    `--bin-dir=${STORE}/bin`,
    `--doc-dir=${STORE}/share/doc/strata`,
    "--fs-roots=",
    "--network",
  ]);
  assert.equal(r.value, unit);
  assert.match(unit, /^PrivateNetwork=no$/m);
  assert.match(unit, /^RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6$/m);
  assert.doesNotMatch(unit, /^IPAddressDeny=/m);
  // A single node keeps the private network.
  assert.match(await taskUnit([]), /^PrivateNetwork=yes$/m);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...cluster, etcdEndpionts: "x" }, /cluster\.etcdEndpionts is not a cluster setting/],
    [{ name: "prod", root: "/etc/strata/root.pub" }, /cluster mode needs cluster\.etcdEndpoints/],
    [{ ...cluster, root: "/etc/../root.pub" }, /cluster\.root must be an absolute, normalised/],
    [{ ...cluster, name: "a b" }, /cluster\.name must be letters, digits/],
  ];
  for (const [c, message] of bad) {
    const b = await moduleUnit({ cluster: c });
    assert(!b.ok, `accepted ${JSON.stringify(c)}`);
    assert.match(b.err, message, JSON.stringify(c));
  }
});

nixTest(
  "Nix package: cluster settings reach deno task install and compile as options",
  async () => {
    const settings = {
      cluster: "prod",
      "etcd-endpoints": "http://10.0.0.1:2379",
      "cluster-root": "/etc/strata/root.pub",
    };
    for (const form of ["installed", "compiled"]) {
      const r = await nixEval("nix_package_eval.nix", { form, settings: JSON.stringify(settings) });
      assert(r.ok, r.err);
      const build = (r.value as { buildPhase: string }).buildPhase;
      for (const [k, v] of Object.entries(settings)) assert(build.includes(` --${k}=${v}`), build);
    }
  },
);
