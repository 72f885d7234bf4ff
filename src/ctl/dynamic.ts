/**
 * `strata-ctl __complete paths|caps WORD`: the words a shell offers that only
 * the node knows, printed one a line for the completion scripts: remote
 * paths (fs.list with the token the command line would present) and the
 * cap_ids of live capabilities (identity.list). Hidden from help and from
 * completion itself; any failure offers nothing.
 * @module
 */

import { posix } from "../runtime/paths.ts";
import type { CapList, Listing } from "./render.ts";
import type { Command, Context } from "./spec.ts";

/** Most names one completion offers (a shell lists them all). */
const MAX_OFFERS = 500;

/** Remote paths that start with `word`: the entries of its folder; folders end in "/". */
async function remotePaths(ctx: Context, word: string): Promise<string[]> {
  const slash = word.lastIndexOf("/");
  const dir = word.slice(0, slash + 1);
  const listing = await ctx.session.call<Listing>("fs.list", {
    path: dir === "" ? "." : dir,
    limit: 5000,
  });
  const base = dir === "" ? "" : dir;
  return listing.entries
    .map((e) => base + e.name + (e.is_dir ? "/" : ""))
    .filter((p) => p.startsWith(word) && posix.basename(p.replace(/\/$/, "")) !== "")
    .slice(0, MAX_OFFERS);
}

/** cap_ids of live, unrevoked capabilities that start with `word`, newest first. */
async function capIds(ctx: Context, word: string): Promise<string[]> {
  const r = await ctx.session.call<CapList>("identity.list", { revoked: false, limit: 2000 });
  return r.capabilities.map((c) => c.cap_id).filter((id) => id.startsWith(word))
    .slice(0, MAX_OFFERS);
}

/** The hidden command the completion scripts run. */
export const COMPLETE_COMMAND: Command = {
  name: "__complete",
  summary: "(for the completion scripts) remote paths or cap_ids starting with WORD",
  args: [{ name: "KIND" }, { name: "WORD", optional: true }],
  options: [],
  examples: ["strata-ctl __complete paths /srv/da"],
  async run(ctx, input) {
    const [kind, word = ""] = input.args;
    const offers =
      await (kind === "paths"
        ? remotePaths(ctx, word)
        : kind === "caps"
        ? capIds(ctx, word)
        : Promise.resolve([])).catch(() => []);
    return { data: offers, text: offers.length ? offers.join("\n") : undefined };
  },
};
