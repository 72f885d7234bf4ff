/**
 * Path arithmetic on normalised absolute paths, shared by the layout, the
 * permissions module and the policy's confinement.
 * @module
 */

/** Whether `path` is `prefix` or lies below it (so /tmpfoo is not in /tmp). */
export function isWithin(path: string, prefix: string): boolean {
  if (prefix === "/") return path.startsWith("/");
  return path === prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47);
}
