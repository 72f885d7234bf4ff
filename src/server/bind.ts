/**
 * Binds a service's handlers to its declared methods (src/api/): the name,
 * right and params come from the declaration, the work from the handler.
 * A declaration without a handler, or a handler without a declaration, is
 * refused when the service starts.
 * @module
 */

import type { MethodSpec } from "../api/method.ts";
import type { Method, MethodContext } from "./server.ts";

/** A handler for one declared method, with its response cost when it has one. */
export interface Handler<C = unknown> {
  /** Bytes its response may hold for these params (see {@link Method.cost}). */
  // deno-lint-ignore no-explicit-any
  cost?(params: any): number;
  /** Whether the work for these params is heavy (see {@link Method.heavy}). */
  // deno-lint-ignore no-explicit-any
  heavy?(params: any): boolean;
  /** Does the work. */
  // deno-lint-ignore no-explicit-any
  handler(params: any, ctx: MethodContext<C>): unknown | Promise<unknown>;
}

/**
 * The methods a service serves: each declaration in `specs` its service
 * answers itself (not those the server or the service runner answer), with
 * the handler `handlers` has under its name. Throws naming every method
 * declared without a handler or handled without a declaration.
 */
export function bindMethods<C>(
  specs: readonly MethodSpec[],
  handlers: Readonly<Record<string, Handler<C>>>,
): Method<C>[] {
  const own = specs.filter((s) => s.servedBy === undefined);
  const missing = own.filter((s) => !Object.hasOwn(handlers, s.name)).map((s) => s.name);
  const extra = Object.keys(handlers).filter((n) => !own.some((s) => s.name === n));
  if (missing.length > 0 || extra.length > 0) {
    throw new Error(
      [
        missing.length > 0 ? `declared without a handler: ${missing.join(", ")}` : "",
        extra.length > 0
          ? `handled without a declaration in src/api/: ${extra.join(", ")} (declare it there)`
          : "",
      ].filter(Boolean).join("; "),
    );
  }
  return own.map((s) => ({
    name: s.name,
    access: s.access,
    params: s.params,
    cost: handlers[s.name].cost,
    heavy: handlers[s.name].heavy,
    handler: handlers[s.name].handler,
  }));
}
