/**
 * The installed form end to end, outside systemd: `deno task install` into a
 * temp prefix for a temp layout, the launchers carrying exactly each
 * program's flags, the supervisor starting its children through their
 * launchers (its run grant is those three files, not deno), each service
 * running from the bundle install built, and strata-ctl talking to them. (tests/deploy/systemd_boot_test.ts runs the same install
 * under a real systemd.)
 */

import assert from "node:assert/strict";
import { entryOf, LAUNCHER_NAMES, serviceV8Flags } from "../../src/runtime/command.ts";
import { CHILD_SERVICES, layoutArgs } from "../../src/runtime/config.ts";
import { permissionFlags, PROGRAMS } from "../../src/runtime/permissions.ts";
import { VERSION } from "../../src/runtime/version.ts";
import { alive, REPO_ROOT, tempLayout, waitFor } from "../helpers.ts";

const decoder = new TextDecoder();

/** The words of a launcher's exec line (the launchers quote nothing these paths need). */
function execWords(script: string): string[] {
  const line = script.split("\n").find((l) => l.startsWith("exec "));
  assert(line, script);
  return line.slice("exec ".length).split(" ");
}

Deno.test("deno task install: launchers with exactly each program's flags, run for real", async () => {
  const temp = await tempLayout();
  const prefix = `${temp.root}/opt`;
  const bin = `${prefix}/bin`;
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "install", `--prefix=${prefix}`, ...layoutArgs(temp.layout)],
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1" },
    }).output();
    assert(out.success, decoder.decode(out.stdout) + decoder.decode(out.stderr));

    for (const program of PROGRAMS) {
      const words = execWords(await Deno.readTextFile(`${bin}/${LAUNCHER_NAMES[program]}`));
      assert.deepEqual(words.slice(1, 4), ["run", "--cached-only", "--frozen"], program);
      const run = program === "supervisor"
        ? CHILD_SERVICES.map((s) => `${bin}/${LAUNCHER_NAMES[s]}`)
        : undefined;
      const downloads = program === "ctl" ? ["."] : undefined;
      assert.deepEqual(
        words.filter((w) => w.startsWith("--allow-") || w.startsWith("--deny-")),
        permissionFlags(program, temp.layout, { run, downloads }),
        program,
      );
      assert(words.includes(`--v8-flags=${serviceV8Flags(program, true)}`), program);
      assert(!words.some((w) => /^(-A|--allow-all)$/.test(w)), program);
    }
    // Each program says its version (what the install runs each with, to fill V8's code cache).
    for (const program of PROGRAMS.filter((p) => p !== "ctl")) {
      const v = await new Deno.Command(`${bin}/${LAUNCHER_NAMES[program]}`, { args: ["--version"] })
        .output();
      assert.equal(decoder.decode(v.stdout), `${program} ${VERSION}\n`, program);
    }
    // The supervisor may run its children's launchers and nothing else, not deno itself.
    const sup = execWords(await Deno.readTextFile(`${bin}/strata-supervisor`));
    assert.deepEqual(sup.filter((w) => w.startsWith("--allow-run")), [
      `--allow-run=${bin}/strata-registry,${bin}/strata-identity,${bin}/strata-fs`,
    ]);
    assert(sup.includes(`--launchers=${bin}`));
    // The DENO_DIR is read-only once installed.
    const denoDir = await Deno.stat(`${prefix}/lib/strata/deno`);
    assert.equal((denoDir.mode ?? 0) & 0o222, 0, "the DENO_DIR is writable");
    // Every module is transpiled ahead of time: a program run by a user who cannot write the
    // DENO_DIR would otherwise retry storing its transpiled copy for 150 ms at every start.
    const gen = `${prefix}/lib/strata/deno/gen`;
    const transpiled = filesBelow(gen);
    for (const program of PROGRAMS) {
      const js = `${gen}/file${prefix}/lib/strata/app/${entryOf(program)}.js`;
      assert(transpiled.includes(js), `${program}: no ${js}`);
    }

    const child = new Deno.Command(`${bin}/strata-supervisor`, { stdout: "null", stderr: "null" })
      .spawn();
    try {
      await waitFor("every service Healthy", async () => {
        const r = await new Deno.Command(`${bin}/strata-ctl`, { args: ["svc", "list", "--json"] })
          .output();
        const list = JSON.parse(decoder.decode(r.stdout)).services as { state: string }[];
        return list.length === 3 && list.every((s) => s.state === "Healthy");
      }, 20_000);
      const r = await new Deno.Command(`${bin}/strata-ctl`, { args: ["status", "--json"] })
        .output();
      assert.deepEqual(JSON.parse(decoder.decode(r.stdout)).services, { total: 3, healthy: 3 });
      // Each child was started through its launcher: deno run of the installed program.
      const ps = await new Deno.Command("ps", {
        args: ["-o", "args=", "--ppid", String(child.pid)],
      })
        .output();
      const children = decoder.decode(ps.stdout).trim().split("\n");
      assert.equal(children.length, 3, children.join("\n"));
      // from its bundle, which install built beside the modules (scripts/bundle.ts)
      for (const c of children) {
        assert.match(
          c,
          new RegExp(`${prefix}/lib/strata/app/dist/(registry|identity|fs)/main\\.js `),
        );
        assert.match(c, / --no-config /);
      }
      const own = await new Deno.Command("ps", { args: ["-o", "args=", "-p", String(child.pid)] })
        .output();
      assert.match(
        decoder.decode(own.stdout),
        new RegExp(`${prefix}/lib/strata/app/dist/supervisor/main\\.js `),
      );
    } finally {
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0);
      assert(!alive(child.pid));
    }
    // Running every program (as root here, who could write it) transpiled nothing anew.
    assert.deepEqual(filesBelow(gen).filter((f) => !transpiled.includes(f)), []);
  } finally {
    await new Deno.Command("chmod", { args: ["-R", "u+w", temp.root] }).output();
    await temp.cleanup();
  }
});

Deno.test("deno task install --deps: only the packages deno.lock pins come from that DENO_DIR", async () => {
  const temp = await tempLayout();
  const prefix = `${temp.root}/opt`;
  const deps = `${temp.root}/deps`;
  const install = (from: string, env: Record<string, string> = {}) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "--quiet",
        "install",
        `--prefix=${prefix}`,
        `--deps=${from}`,
        ...layoutArgs(temp.layout),
      ],
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1", ...env },
    }).output();
  try {
    // given a developer's DENO_DIR: the locked packages in its npm cache, beside the transpiled
    // code of another project, V8's code cache and a package the lock does not name
    const info = JSON.parse(decoder.decode(
      (await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], cwd: REPO_ROOT })
        .output())
        .stdout,
    ));
    const lock = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.lock`));
    const locked = Object.keys(lock.npm).map((k) => /^(@?[^@]+)@(.+)$/.exec(k)!.slice(1));
    for (const [name, version] of locked) {
      const dir = `npm/registry.npmjs.org/${name}/${version}`;
      await Deno.mkdir(`${deps}/${dir}`, { recursive: true });
      await new Deno.Command("cp", {
        args: ["-r", `${info.npmCache}/registry.npmjs.org/${name}/${version}/.`, `${deps}/${dir}`],
      }).output();
    }
    const decoys = [
      "gen/file/home/someone/private/app.ts.js",
      "v8_code_cache_v2",
      "npm/registry.npmjs.org/not-locked/1.0.0/package.json",
    ];
    for (const d of decoys) {
      await Deno.mkdir(`${deps}/${d.slice(0, d.lastIndexOf("/"))}`, { recursive: true }).catch(
        () => {},
      );
      await Deno.writeTextFile(`${deps}/${d}`, "secret");
    }

    // when it is installed from them
    const out = await install(deps);
    assert(out.success, decoder.decode(out.stdout) + decoder.decode(out.stderr));

    // then the installed DENO_DIR holds every locked package and none of the rest
    const denoDir = `${prefix}/lib/strata/deno`;
    for (const [name, version] of locked) {
      assert(
        Deno.statSync(`${denoDir}/npm/registry.npmjs.org/${name}/${version}/package.json`).isFile,
        name,
      );
    }
    const installed = filesBelow(denoDir);
    assert(
      !installed.some((f) => f.includes("/not-locked/") || f.includes("/home/someone/")),
      installed.join("\n"),
    );
    assert(
      !installed.some((f) =>
        f.endsWith("v8_code_cache_v2") && Deno.readTextFileSync(f) === "secret"
      ),
    );
    // and the programs run from it
    const v = await new Deno.Command(`${prefix}/bin/${LAUNCHER_NAMES.fs}`, { args: ["--version"] })
      .output();
    assert.equal(decoder.decode(v.stdout), `fs ${VERSION}\n`, decoder.decode(v.stderr));

    // and offline (as in a Nix build), with no esbuild in that DENO_DIR to bundle with, the
    // services run from their modules instead, and say so
    await Deno.remove(`${deps}/dl`, { recursive: true }).catch(() => {});
    const offline = await install(deps, {
      HTTPS_PROXY: "http://127.0.0.1:9",
      HTTP_PROXY: "http://127.0.0.1:9",
    });
    assert(offline.success, decoder.decode(offline.stdout) + decoder.decode(offline.stderr));
    assert.match(decoder.decode(offline.stderr), /note: the services will run from their modules/);
    assert.throws(() => Deno.statSync(`${prefix}/lib/strata/app/dist`), Deno.errors.NotFound);
    const fsWords = execWords(await Deno.readTextFile(`${prefix}/bin/${LAUNCHER_NAMES.fs}`));
    assert(fsWords.includes(`${prefix}/lib/strata/app/src/fs/main.ts`), fsWords.join(" "));
    assert(fsWords.includes(`--v8-flags=${serviceV8Flags("fs")}`), fsWords.join(" "));
    const sup = execWords(await Deno.readTextFile(`${prefix}/bin/${LAUNCHER_NAMES.supervisor}`));
    assert(sup.includes(`--v8-flags=${serviceV8Flags("supervisor")}`), sup.join(" "));
    const again = await new Deno.Command(`${prefix}/bin/${LAUNCHER_NAMES.fs}`, {
      args: ["--version"],
    }).output();
    assert.equal(decoder.decode(again.stdout), `fs ${VERSION}\n`, decoder.decode(again.stderr));

    // and a DENO_DIR without one of the locked packages is refused by name
    const [name, version] = locked[0];
    await Deno.remove(`${deps}/npm/registry.npmjs.org/${name}/${version}`, { recursive: true });
    const refused = await install(deps);
    assert(!refused.success);
    assert.match(decoder.decode(refused.stderr), new RegExp(`has no ${name}@${version}`));
  } finally {
    await new Deno.Command("chmod", { args: ["-R", "u+w", temp.root] }).output();
    await temp.cleanup();
  }
});

/** Every file below `dir`, by path. */
function filesBelow(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...filesBelow(path));
    else out.push(path);
  }
  return out;
}
