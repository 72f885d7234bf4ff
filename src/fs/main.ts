/**
 * fs: the process entry. Checks its export roots, then serves fs.sock.
 * @module
 */

import { parseLayoutArgs } from "../runtime/config.ts";
import { logger } from "../runtime/log.ts";
import { runMain, runService } from "../runtime/service.ts";
import { HandleTable } from "./handles.ts";
import { checkRoots, fsMethods } from "./service.ts";

/** How often expired and idle handles are closed. */
const SWEEP_MS = 10_000;

await runMain("fs", async () => {
  const { layout, options } = parseLayoutArgs(Deno.args, { supervised: { type: "boolean" } });
  const roots = checkRoots(layout.fsRoots);
  if (roots.length === 0) {
    logger("fs").warn("no export roots (--fs-roots): every path will be refused");
  }
  const handles = new HandleTable();
  const sweep = setInterval(() => handles.sweep(), SWEEP_MS);
  Deno.unrefTimer(sweep);
  const running = await runService({
    service: "fs",
    layout,
    supervised: options.supervised === true,
    methods: (_trust, audit) => fsMethods({ roots, handles, audit }),
    onStop: () => {
      clearInterval(sweep);
      handles.closeAll();
    },
  });
  running.trust.onRevoked((ids) => handles.revoke(ids));
});
