/**
 * Renders the systemd unit from nix/strata.service.in.
 *
 *   deno task unit [--bin-dir=/opt/strata/bin] [--runtime-dir=/run/strata]
 *                  [--state-dir=/var/lib/strata] [--fs-roots=/srv/strata]
 *                  [--user=strata] [--group=strata] [--group-access]
 *                  [--doc-dir=/opt/strata] [--out=FILE]
 *
 * Without --out it prints the unit. nix/strata.service is this with the
 * defaults; the NixOS module fills the same template in Nix.
 * @module
 */

import { parseArgs } from "node:util";
import { posix } from "node:path";

/** What the unit is rendered with. */
export interface UnitOptions {
  binDir: string;
  runtimeDir: string;
  stateDir: string;
  fsRoots: string[];
  user: string;
  group: string;
  groupAccess: boolean;
  docDir: string;
}

/** The defaults of a hand install (binaries in /opt/strata/bin). */
export const UNIT_DEFAULTS: UnitOptions = {
  binDir: "/opt/strata/bin",
  runtimeDir: "/run/strata",
  stateDir: "/var/lib/strata",
  fsRoots: ["/srv/strata"],
  user: "strata",
  group: "strata",
  groupAccess: false,
  docDir: "/opt/strata",
};

/** The template's path. */
export const TEMPLATE = new URL("../nix/strata.service.in", import.meta.url);

function under(dir: string, base: string, what: string): string {
  const rel = posix.relative(base, dir);
  if (rel === "" || rel.startsWith("..") || posix.isAbsolute(rel)) {
    throw new Error(`${what} must be below ${base} for systemd to manage it: ${dir}`);
  }
  return rel;
}

/** Fills the template. */
export function renderUnit(template: string, o: UnitOptions): string {
  const values: Record<string, string> = {
    BIN_DIR: o.binDir,
    RUNTIME_DIR: o.runtimeDir,
    RUNTIME_DIRECTORY: under(o.runtimeDir, "/run", "the runtime dir"),
    RUNTIME_DIR_MODE: o.groupAccess ? "0750" : "0700",
    STATE_DIRECTORY: under(o.stateDir, "/var/lib", "the state dir"),
    USER: o.user,
    GROUP: o.group,
    DOC_DIR: o.docDir,
    EXPORT_ROOTS: o.fsRoots.length > 0 ? `BindReadOnlyPaths=${o.fsRoots.join(" ")}` : "",
  };
  return template.replace(/@([A-Z_]+)@/g, (m, key: string) => {
    if (!(key in values)) throw new Error(`template: unknown placeholder ${m}`);
    return values[key];
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "bin-dir": { type: "string", default: UNIT_DEFAULTS.binDir },
      "runtime-dir": { type: "string", default: UNIT_DEFAULTS.runtimeDir },
      "state-dir": { type: "string", default: UNIT_DEFAULTS.stateDir },
      "fs-roots": { type: "string", default: UNIT_DEFAULTS.fsRoots.join(":") },
      user: { type: "string", default: UNIT_DEFAULTS.user },
      group: { type: "string", default: UNIT_DEFAULTS.group },
      "group-access": { type: "boolean", default: false },
      "doc-dir": { type: "string", default: UNIT_DEFAULTS.docDir },
      out: { type: "string" },
    },
  });
  const unit = renderUnit(await Deno.readTextFile(TEMPLATE), {
    binDir: values["bin-dir"],
    runtimeDir: values["runtime-dir"],
    stateDir: values["state-dir"],
    fsRoots: values["fs-roots"].split(":").filter((r) => r !== ""),
    user: values.user,
    group: values.group,
    groupAccess: values["group-access"],
    docDir: values["doc-dir"],
  });
  if (values.out) await Deno.writeTextFile(values.out, unit);
  else console.log(unit.trimEnd());
}
