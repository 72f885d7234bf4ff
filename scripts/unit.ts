/**
 * Renders the systemd unit from nix/strata.service.in.
 *
 *   (usage: USAGE below; `deno task unit --help` prints it)
 *
 * Without --out it prints the unit. nix/strata.service is this with the
 * defaults; the NixOS module fills the same template in Nix, with the same
 * checks. The form picks what ExecStart runs: the installed form's launcher
 * (`deno task install`, `deno run` with the supervisor's flags) or the
 * compiled form's binary (`deno task compile`). `--network` is for a node
 * that talks TCP (cluster mode's etcd and other nodes, or tcp:// endpoints):
 * it keeps the host's network and AF_INET/AF_INET6, with no IP filter.
 * @module
 */

import { parseArgs } from "node:util";
import { operatorScript } from "./operator_script.ts";

/** How Strata was put on the machine. */
export type UnitForm = "installed" | "compiled";

/** What the unit is rendered with. */
export interface UnitOptions {
  form: UnitForm;
  binDir: string;
  runtimeDir: string;
  stateDir: string;
  fsRoots: string[];
  user: string;
  group: string;
  groupAccess: boolean;
  docDir: string;
  /** The node talks TCP (cluster mode or tcp:// endpoints): no private network. */
  network: boolean;
}

/** The defaults of a hand install (`deno task install --prefix=/opt/strata`). */
export const UNIT_DEFAULTS: UnitOptions = {
  form: "installed",
  binDir: "/opt/strata/bin",
  runtimeDir: "/run/strata",
  stateDir: "/var/lib/strata",
  fsRoots: ["/srv/strata"],
  user: "strata",
  group: "strata",
  groupAccess: false,
  docDir: "/opt/strata/share/doc/strata",
  network: false,
};

/** The template's path. */
export const TEMPLATE = new URL("../nix/strata.service.in", import.meta.url);

/** The supervisor's file name in each form. */
const SUPERVISOR: Readonly<Record<UnitForm, string>> = {
  installed: "strata-supervisor",
  compiled: "supervisor",
};

/**
 * Refuses a path systemd or Deno's flags would misread: it must be absolute
 * and normalised (no ".", "..", "//" or trailing "/") and use only letters,
 * digits and . _ @ + - (no space, comma, quote or % specifier).
 */
export function checkUnitPath(path: string, what: string): string {
  const components = path.split("/").slice(1);
  if (
    !/^(\/[A-Za-z0-9._@+-]+)+$/.test(path) || components.some((c) => c === "." || c === "..")
  ) {
    throw new Error(
      `${what} must be an absolute, normalised path of letters, digits and . _ @ + - ` +
        `(no ., .., // or trailing /): ${JSON.stringify(path)}`,
    );
  }
  return path;
}

function under(dir: string, base: string, what: string): string {
  checkUnitPath(dir, what);
  if (!dir.startsWith(`${base}/`)) {
    throw new Error(`${what} must be below ${base} for systemd to manage it: ${dir}`);
  }
  return dir.slice(base.length + 1);
}

function checkName(name: string, what: string): string {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name)) {
    throw new Error(`${what} must be a user or group name ([a-z_][a-z0-9_-]*): ${name}`);
  }
  return name;
}

/** What a networked unit has instead of IPAddressDeny=any, and why. */
const NO_IP_FILTER =
  "# IPAddressDeny unset: this node dials etcd and other nodes, and they dial its\n" +
  "# tcp:// endpoints (mutual TLS); each program may dial only its exact host:port grants.";

/** Fills the template. */
export function renderUnit(template: string, o: UnitOptions): string {
  if (!Object.hasOwn(SUPERVISOR, o.form)) {
    throw new Error(`form must be installed or compiled: ${o.form}`);
  }
  const values: Record<string, string> = {
    EXEC_START: `${checkUnitPath(o.binDir, "the bin dir")}/${SUPERVISOR[o.form]}`,
    RUNTIME_DIR: o.runtimeDir,
    RUNTIME_DIRECTORY: under(o.runtimeDir, "/run", "the runtime dir"),
    RUNTIME_DIR_MODE: o.groupAccess ? "0750" : "0700",
    STATE_DIRECTORY: under(o.stateDir, "/var/lib", "the state dir"),
    USER: checkName(o.user, "the user"),
    GROUP: checkName(o.group, "the group"),
    DOC_DIR: checkUnitPath(o.docDir, "the doc dir"),
    EXPORT_ROOTS: o.fsRoots.length > 0
      ? `BindReadOnlyPaths=${o.fsRoots.map((r) => checkUnitPath(r, "an fs root")).join(" ")}`
      : "",
    PRIVATE_NETWORK: o.network ? "no" : "yes",
    ADDRESS_FAMILIES: o.network ? "AF_UNIX AF_INET AF_INET6" : "AF_UNIX",
    IP_ADDRESS_DENY: o.network ? NO_IP_FILTER : "IPAddressDeny=any",
  };
  return template.replace(/@([A-Z_]+)@/g, (m, key: string) => {
    if (!(key in values)) throw new Error(`template: unknown placeholder ${m}`);
    return values[key];
  });
}

/** The command line, for --help. */
export const USAGE =
  `deno task unit [--form=installed|compiled] [--bin-dir=/opt/strata/bin] [--runtime-dir=/run/strata]
               [--state-dir=/var/lib/strata] [--fs-roots=/srv/strata]
               [--user=strata] [--group=strata] [--group-access]
               [--doc-dir=/opt/strata/share/doc/strata] [--network] [--out=FILE]`;

if (import.meta.main) {
  operatorScript("unit", USAGE);
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      form: { type: "string", default: UNIT_DEFAULTS.form },
      "bin-dir": { type: "string", default: UNIT_DEFAULTS.binDir },
      "runtime-dir": { type: "string", default: UNIT_DEFAULTS.runtimeDir },
      "state-dir": { type: "string", default: UNIT_DEFAULTS.stateDir },
      "fs-roots": { type: "string", default: UNIT_DEFAULTS.fsRoots.join(":") },
      user: { type: "string", default: UNIT_DEFAULTS.user },
      group: { type: "string", default: UNIT_DEFAULTS.group },
      "group-access": { type: "boolean", default: false },
      "doc-dir": { type: "string", default: UNIT_DEFAULTS.docDir },
      network: { type: "boolean", default: false },
      out: { type: "string" },
    },
  });
  const unit = renderUnit(await Deno.readTextFile(TEMPLATE), {
    form: values.form as UnitForm,
    binDir: values["bin-dir"],
    runtimeDir: values["runtime-dir"],
    stateDir: values["state-dir"],
    fsRoots: values["fs-roots"].split(":").filter((r) => r !== ""),
    user: values.user,
    group: values.group,
    groupAccess: values["group-access"],
    docDir: values["doc-dir"],
    network: values.network,
  });
  if (values.out) await Deno.writeTextFile(values.out, unit);
  else console.log(unit.trimEnd());
}
