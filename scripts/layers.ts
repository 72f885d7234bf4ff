/**
 * The layer check: reads the import graph of src/ with `deno info --json`,
 * folds it to folders, prints the folder graph, and fails (exit 1) on any
 * import that runs up a layer or between two folders of one layer, and on
 * any cycle between folders. `deno task test` runs it.
 *
 *   deno run --allow-read --allow-write=/tmp --allow-run scripts/layers.ts [--graph]
 *
 * The layers, bottom first (docs/architecture.md draws them):
 *   wire                     frames, envelopes, errors, schemas, budgets: imports nothing of Strata
 *   api                      the method table: each service's methods, declared once (below
 *                            runtime, whose service lists derive from it)
 *   runtime                  config, permissions, paths, clock, log, audit, files, version
 *   token                    PASETO, keys, claims, the verifier, the in-memory revocation set
 *   sources                  where key sets, revocations and registry entries come from (a
 *                            snapshot and a change feed each; files today) and the
 *                            trust they feed
 *   policy                   decisions: authorize, attenuation, constraints, path prefixes
 *   server                   transports (unix, tcp+TLS), the connection loop, limits, the client
 *   identity fs registry supervisor ctl     the services and the CLI
 *   programs                 each src/<program>/main.ts, src/node/ (what every program's main
 *                            shares: signals, the supervisor pipe, running a service), src/mod.ts
 * @module
 */

const LAYERS: readonly (readonly string[])[] = [
  ["wire"],
  ["api"],
  ["runtime"],
  ["token"],
  ["sources"],
  ["policy"],
  ["server"],
  ["identity", "fs", "registry", "supervisor", "ctl"],
  ["programs"],
];

const SRC = new URL("../src/", import.meta.url).pathname;

/** The folder (layer member) a file of src/ belongs to. */
function folderOf(path: string): string {
  const rel = path.slice(SRC.length);
  if (!rel.includes("/") || rel.endsWith("/main.ts") || rel.startsWith("node/")) return "programs";
  return rel.slice(0, rel.indexOf("/"));
}

function rankOf(folder: string): number {
  const i = LAYERS.findIndex((l) => l.includes(folder));
  return i < 0 ? -1 : i;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}${e.name}`;
    if (e.isDirectory) out.push(...filesUnder(`${p}/`));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out.sort();
}

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
}

/** Every src/ file → the src/ files it imports (value and type imports alike). */
function importGraph(): Map<string, Set<string>> {
  const all = Deno.makeTempFileSync({ suffix: ".ts" });
  try {
    Deno.writeTextFileSync(
      all,
      filesUnder(SRC).map((f) => `import "file://${f}";\n`).join(""),
    );
    const out = new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", all],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
    const graph = new Map<string, Set<string>>();
    for (const m of info.modules) {
      if (!m.specifier.startsWith(`file://${SRC}`)) continue;
      const from = m.specifier.slice("file://".length);
      const to = new Set<string>();
      for (const d of m.dependencies ?? []) {
        for (const s of [d.code?.specifier, d.type?.specifier]) {
          if (s?.startsWith(`file://${SRC}`)) to.add(s.slice("file://".length));
        }
      }
      graph.set(from, to);
    }
    return graph;
  } finally {
    Deno.removeSync(all);
  }
}

/** Folder-level edges with the file imports behind each. */
function folderEdges(graph: Map<string, Set<string>>): Map<string, string[]> {
  const edges = new Map<string, string[]>();
  for (const [from, tos] of graph) {
    for (const to of tos) {
      const a = folderOf(from);
      const b = folderOf(to);
      if (a === b) continue;
      const key = `${a} -> ${b}`;
      const list = edges.get(key) ?? [];
      list.push(`${from.slice(SRC.length)} imports ${to.slice(SRC.length)}`);
      edges.set(key, list);
    }
  }
  return edges;
}

/** Folder cycles, each as a path a -> b -> ... -> a. */
function cycles(edges: Map<string, string[]>): string[] {
  const next = new Map<string, string[]>();
  for (const key of edges.keys()) {
    const [a, b] = key.split(" -> ");
    next.set(a, [...(next.get(a) ?? []), b]);
  }
  const found = new Set<string>();
  const visit = (node: string, path: string[]) => {
    for (const n of next.get(node) ?? []) {
      const at = path.indexOf(n);
      if (at >= 0) {
        const loop = [...path.slice(at), n];
        // One spelling per cycle: start at its smallest folder name.
        const body = loop.slice(0, -1);
        const min = body.indexOf([...body].sort()[0]);
        const norm = [...body.slice(min), ...body.slice(0, min)];
        found.add([...norm, norm[0]].join(" -> "));
      } else if (path.length < 12) visit(n, [...path, n]);
    }
  };
  for (const node of next.keys()) visit(node, [node]);
  return [...found].sort();
}

const graph = importGraph();
const edges = folderEdges(graph);
const problems: string[] = [];
for (const [key, files] of edges) {
  const [a, b] = key.split(" -> ");
  const ra = rankOf(a);
  const rb = rankOf(b);
  if (ra < 0 || rb < 0) {
    problems.push(`${key}: ${ra < 0 ? a : b} is in no layer (scripts/layers.ts lists them)`);
  } else if (rb >= ra) {
    problems.push(
      `${key}: ${rb === ra ? "imports a folder of its own layer" : "runs up a layer"} (${files[0]}${
        files.length > 1 ? `, and ${files.length - 1} more` : ""
      })`,
    );
  }
}
for (const c of cycles(edges)) problems.push(`cycle: ${c}`);

if (Deno.args.includes("--graph") || problems.length > 0) {
  console.log("folder imports (file imports behind each):");
  for (const [key, files] of [...edges].sort()) console.log(`  ${key} (${files.length})`);
}
if (problems.length > 0) {
  console.log(`\n${problems.length} layer problem(s):`);
  for (const p of problems) console.log(`  ${p}`);
  Deno.exit(1);
}
console.log(`layers: ${graph.size} modules, ${edges.size} folder imports, all pointing down`);
