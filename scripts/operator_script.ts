/**
 * What the operator's scripts (`deno task install`, `compile`, `unit`) share
 * at their command line: `--help` prints the script's usage, and an error
 * that reaches the top (an unknown option, a refused setting) is one line,
 * `<task>: <message>`, with exit status 2 for a bad command line and 1 for
 * anything else, instead of an uncaught error and its stack trace.
 * @module
 */

/** Prints `usage` for --help; turns errors that reach the top into one line. Call it first. */
export function operatorScript(task: string, usage: string): void {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(usage);
    Deno.exit(0);
  }
  const fail = (err: unknown) => {
    console.error(`${task}: ${err instanceof Error ? err.message : String(err)}`);
    // node:util's parseArgs: an unknown option, a missing value, a stray word.
    const code = (err as { code?: unknown })?.code;
    const usageError = typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_");
    if (usageError) console.error(`usage: deno task ${task} --help`);
    Deno.exit(usageError ? 2 : 1);
  };
  globalThis.addEventListener("error", (e) => {
    e.preventDefault();
    fail(e.error);
  });
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    fail(e.reason);
  });
}
