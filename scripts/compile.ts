/**
 * `deno task compile`: builds bin/supervisor, bin/registry, bin/identity,
 * bin/fs and bin/strata-ctl with `deno compile`, each with the permission
 * flags of src/runtime/permissions.ts and the layout baked in.
 *
 *   (usage: USAGE below; `deno task compile --help` prints it)
 *
 * It type-checks every program once (`deno check`, with the compiler's own
 * heap), then compiles each with --no-check: `deno compile` applies the
 * --v8-flags it bakes into the services (a 64 MB heap) to itself too, which
 * is too small for the type checker on a cold cache.
 *
 * `deno compile` needs the denort runtime: it downloads it from dl.deno.land,
 * or takes the file named by DENORT_BIN. Machines that cannot reach
 * dl.deno.land must set DENORT_BIN (see docs/operations.md, "3. Compiled form").
 * --print only prints the command lines.
 * @module
 */

import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { operatorScript } from "./operator_script.ts";
import { BINARY_NAMES, checkCommand, compileCommand } from "../src/runtime/command.ts";
import {
  checkLayout,
  CHILD_SERVICES,
  DEFAULT_LAYOUT,
  NODE_SETTING_OPTIONS,
  nodeSettings,
} from "../src/runtime/config.ts";
import { binOverrideVar, PROGRAMS } from "../src/runtime/permissions.ts";

/** The command line, for --help. */
export const USAGE = `deno task compile [--runtime-dir=/run/strata] [--state-dir=/var/lib/strata]
                  [--node-id=local] [--fs-roots=/srv/data:/srv/media] [--group-access]
                  [--out=bin] [--bin-dir=<where they will be installed>]
                  [--target=x86_64-unknown-linux-gnu] [--print]
                  [the cluster and transport options of \`deno task install\`, or
                   their STRATA_* variables]`;

operatorScript("compile", USAGE);

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "runtime-dir": { type: "string", default: DEFAULT_LAYOUT.runtimeDir },
    "state-dir": { type: "string", default: DEFAULT_LAYOUT.stateDir },
    "node-id": { type: "string", default: DEFAULT_LAYOUT.nodeId },
    "fs-roots": { type: "string", default: "" },
    "group-access": { type: "boolean", default: false },
    out: { type: "string", default: "bin" },
    "bin-dir": { type: "string" },
    target: { type: "string" },
    print: { type: "boolean", default: false },
    ...Object.fromEntries(NODE_SETTING_OPTIONS.map((o) => [o, { type: "string" as const }])),
    // Accepted and ignored: the etcd client read the etcd3 package's proto files until 2026-12-04.
    "etcd-proto": { type: "string" },
  },
});

const layout = checkLayout({
  runtimeDir: values["runtime-dir"],
  stateDir: values["state-dir"],
  nodeId: values["node-id"],
  fsRoots: values["fs-roots"].split(":"),
  ...(values["group-access"] ? { groupAccess: true } : {}),
  // Transport and cluster settings as options or STRATA_* variables, as for install.
  ...nodeSettings(values, (n) => Deno.env.get(n)),
});
const outDir = resolve(values.out);
const binDir = values["bin-dir"] ? resolve(values["bin-dir"]) : outDir;
const overrides = CHILD_SERVICES.map((s) => Deno.env.get(binOverrideVar(s)))
  .filter((x): x is string => !!x);

if (layout.fsRoots.length === 0 && !values.print) {
  console.error("note: no --fs-roots given: the compiled fs will serve nothing");
}
/** The true cause of a failed `deno compile`, from its error output. */
function compileFailure(stderr: string): string {
  if (/Could not find denort at/.test(stderr)) {
    return `DENORT_BIN names no file (${Deno.env.get("DENORT_BIN")}): point it at a denort runtime`;
  }
  if (/dl\.deno\.land/.test(stderr)) {
    return "deno compile could not download the denort runtime from dl.deno.land:\n" +
      "  DENORT_BIN=/path/to/denort deno task compile …   (see docs/operations.md, 3. Compiled form)";
  }
  if (/out of memory|heap limit/i.test(stderr)) {
    return "deno compile ran out of memory (the compiler itself, not the program)";
  }
  return "deno compile failed; its error is above";
}

const decoder = new TextDecoder();
const check = checkCommand(Deno.execPath(), PROGRAMS);
if (values.print) console.log([check.cmd, ...check.args].join(" "));
else {
  console.log(`type-checking ${PROGRAMS.length} programs`);
  const status = await new Deno.Command(check.cmd, { args: check.args }).spawn().status;
  if (!status.success) {
    console.error("type check failed (see above): nothing was compiled");
    Deno.exit(1);
  }
}
for (const program of PROGRAMS) {
  const { cmd, args } = compileCommand(program, layout, {
    deno: Deno.execPath(),
    outDir,
    binDir,
    overrides,
    target: values.target,
    // strata-ctl's `fs get` may save into the folder it is run from, and only there.
    downloads: ["."],
  });
  if (values.print) {
    console.log([cmd, ...args].join(" "));
    continue;
  }
  console.log(`compiling ${outDir}/${BINARY_NAMES[program]}`);
  const out = await new Deno.Command(cmd, { args, stdout: "inherit", stderr: "piped" }).output();
  const stderr = decoder.decode(out.stderr);
  if (!out.success) {
    await Deno.stderr.write(out.stderr);
    console.error(`${BINARY_NAMES[program]}: ${compileFailure(stderr)}`);
    Deno.exit(1);
  }
}
if (!values.print) console.log(`compiled ${PROGRAMS.length} programs into ${outDir}`);
