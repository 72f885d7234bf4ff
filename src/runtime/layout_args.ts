/**
 * A program's layout from its command line: the options layoutArgs (in
 * config.ts) writes, parsed with node:util's parseArgs. Apart from config.ts
 * because strata-ctl, which takes its layout its own way, imports config.ts
 * and no `node:` module (see runtime/paths.ts).
 * @module
 */

import { parseArgs } from "node:util";
import {
  checkLayout,
  CHILD_SERVICES,
  clusterSection,
  DEFAULT_LAYOUT,
  type Layout,
} from "./config.ts";

/** The options that carry a layout on a command line. */
const LAYOUT_OPTIONS = {
  "runtime-dir": { type: "string" },
  "state-dir": { type: "string" },
  "node-id": { type: "string" },
  "fs-roots": { type: "string" },
  "group-access": { type: "boolean" },
  ...Object.fromEntries(CHILD_SERVICES.map((s) => [`${s}-listen`, { type: "string" }])),
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-ca": { type: "string" },
  "cluster": { type: "string" },
  "etcd-endpoints": { type: "string" },
  "cluster-root": { type: "string" },
  "cluster-ca": { type: "string" },
  "etcd-proto": { type: "string" },
  "partition-bound-ms": { type: "string" },
  "cluster-peers": { type: "string" },
  "etcd-ca": { type: "string" },
  "etcd-cert": { type: "string" },
  "etcd-key": { type: "string" },
  "etcd-server-name": { type: "string" },
} as const;

/** Other options a program's entry may take, by name: boolean or string. */
export type ExtraOptions = Record<string, { type: "boolean" | "string" }>;

/**
 * Parses the layout options (and `extra` ones) from a program's arguments.
 * Returns the layout and the values of the extra options.
 */
export function parseLayoutArgs(
  args: string[],
  extra: ExtraOptions = {},
): { layout: Layout; options: Record<string, string | boolean | undefined> } {
  const { values } = parseArgs({
    args,
    options: { ...LAYOUT_OPTIONS, ...extra },
    strict: true,
    allowPositionals: false,
  });
  const v = values as Record<string, string | boolean | undefined>;
  const layout = checkLayout({
    runtimeDir: (v["runtime-dir"] as string) ?? DEFAULT_LAYOUT.runtimeDir,
    stateDir: (v["state-dir"] as string) ?? DEFAULT_LAYOUT.stateDir,
    nodeId: (v["node-id"] as string) ?? DEFAULT_LAYOUT.nodeId,
    fsRoots: v["fs-roots"] !== undefined ? (v["fs-roots"] as string).split(":") : [],
    ...(v["group-access"] === true ? { groupAccess: true } : {}),
    listen: Object.fromEntries(
      CHILD_SERVICES.filter((s) => v[`${s}-listen`] !== undefined).map((s) => [
        s,
        v[`${s}-listen`] as string,
      ]),
    ),
    tls: {
      cert: v["tls-cert"] as string | undefined,
      key: v["tls-key"] as string | undefined,
      ca: v["tls-ca"] as string | undefined,
    },
    cluster: clusterSection((name) => v[name] as string | undefined, "option"),
  });
  return { layout, options: v };
}
