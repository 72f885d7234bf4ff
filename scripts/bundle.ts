/**
 * The services as bundles: each one JavaScript file, its modules and npm
 * packages inside (see bundleCommand in src/runtime/command.ts). The
 * installed form runs them (`deno task install`), and so does the bench's
 * own subject. A bundle loads no module graph, no npm resolution and no
 * TypeScript emit, and holds its code once, minified: the four services
 * hold less memory so (docs/performance.md).
 * @module
 */

import { bundleCommand } from "../src/runtime/command.ts";
import { CHILD_SERVICES } from "../src/runtime/config.ts";

/** The programs that run bundled: the services (strata-ctl runs from its modules). */
export const BUNDLED_PROGRAMS = ["supervisor", ...CHILD_SERVICES] as const;

/**
 * Writes the bundle of every service of the checkout at `root` under
 * `outRoot` (dist/<program>/main.js) with `deno`, in `env` (DENO_DIR: where
 * the npm packages and esbuild are cached, or fetched to); throws with
 * `deno bundle`'s own message.
 */
export async function bundleServices(
  deno: string,
  root: string,
  outRoot: string,
  env?: Record<string, string>,
): Promise<void> {
  const bundle = async (program: typeof BUNDLED_PROGRAMS[number]) => {
    const { cmd, args } = bundleCommand(deno, program, root, outRoot);
    const out = await new Deno.Command(cmd, { args, env, stdout: "null", stderr: "piped" })
      .output();
    if (!out.success) {
      throw new Error(
        `deno bundle of ${program} failed: ${new TextDecoder().decode(out.stderr).trim()}`,
      );
    }
  };
  // The first alone: a `deno bundle` that finds no esbuild in the DENO_DIR fetches it, and
  // several fetching at once race to copy it into place ("failed to copy esbuild binary ...
  // No such file or directory" in two of three tries with a fresh DENO_DIR).
  const [first, ...rest] = BUNDLED_PROGRAMS;
  await bundle(first);
  await Promise.all(rest.map(bundle));
}
