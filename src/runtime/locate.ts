/**
 * Where a node's folders are when nobody says: the runtime dirs a supervisor
 * may run in (/run/strata, else $XDG_RUNTIME_DIR/strata, else
 * /tmp/strata-$USER) and the state dirs that may hold the operator token,
 * so that the launcher and a program's `Strata.connect()` look in the same
 * places. Environment variables the program may not read count as unset.
 * @module
 */

/** The system runtime dir (a system install, and a developer who may write there). */
export const SYSTEM_RUNTIME_DIR = "/run/strata";

/** The system state dir of an installed node. */
export const SYSTEM_STATE_DIR = "/var/lib/strata";

/** An environment variable, or undefined when unset, empty or not readable by this program. */
export function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The per-user runtime dirs, in the order the supervisor's launcher prefers them. */
export function fallbackRuntimeDirs(): string[] {
  const xdg = readEnv("XDG_RUNTIME_DIR");
  const tmp = `/tmp/strata-${readEnv("USER") ?? "dev"}`;
  return xdg ? [`${xdg}/strata`, tmp] : [tmp];
}

/** The development state dir: $XDG_STATE_HOME/strata, else ~/.local/state/strata. */
export function userStateDir(): string {
  const xdg = readEnv("XDG_STATE_HOME");
  if (xdg) return `${xdg}/strata`;
  const home = readEnv("HOME");
  return home ? `${home}/.local/state/strata` : `/tmp/strata-state-${readEnv("USER") ?? "dev"}`;
}

/** What is at a supervisor socket path: "ok", or why there is none, in a few words. */
export function probeSocket(path: string): string {
  try {
    Deno.statSync(path);
    return "ok";
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
    if (err instanceof Deno.errors.NotCapable) return "not allowed to look";
    return "no supervisor.sock";
  }
}

/**
 * The runtime dir of a running supervisor: STRATA_RUNTIME_DIR when set,
 * else the first of /run/strata and the per-user ones that has a
 * supervisor.sock; `lookedIn` says what each other place had.
 */
export function findRuntimeDir(): { dir?: string; lookedIn: string[] } {
  const explicit = readEnv("STRATA_RUNTIME_DIR");
  if (explicit) return { dir: explicit, lookedIn: [] };
  const lookedIn: string[] = [];
  for (const dir of [SYSTEM_RUNTIME_DIR, ...fallbackRuntimeDirs()]) {
    const found = probeSocket(`${dir}/supervisor.sock`);
    if (found === "ok") return { dir, lookedIn };
    lookedIn.push(`${dir} (${found})`);
  }
  return { lookedIn };
}

/** The state dirs to look in for the operator token: STRATA_STATE_DIR, else the user's, then the system's. */
export function stateDirCandidates(): string[] {
  const explicit = readEnv("STRATA_STATE_DIR");
  return explicit ? [explicit] : [userStateDir(), SYSTEM_STATE_DIR];
}
