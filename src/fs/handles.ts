/**
 * Open file handles, each bound to the capability that opened it: only that
 * capability can read or close it, revoking it (or any ancestor) closes the
 * handle at once, and the handle dies with the token's expiry. Handles are
 * bounded per capability, per delegation tree (a handle counts against every
 * ancestor below the root token, as rate buckets do, so one tree cannot fill
 * the table) and in total, and idle ones are closed.
 * @module
 */

import { closeSync } from "node:fs";
import { notFound, StrataError } from "../wire/errors.ts";
import type { Capability } from "../token/claims.ts";

/** One open file. */
export interface Handle {
  id: string;
  capId: string;
  lineage: readonly string[];
  expMs: number;
  /** The open file descriptor; reads are positional, so a handle has no cursor. */
  fd: number;
  path: string;
  lastUsed: number;
}

/** Limits of a {@link HandleTable}. */
export interface HandleLimits {
  perCapability: number;
  /** Handles one delegated capability and everything delegated from it may hold. */
  perTree: number;
  total: number;
  idleMs: number;
}

/** The limits fs runs with. */
export const DEFAULT_HANDLE_LIMITS: HandleLimits = {
  perCapability: 64,
  perTree: 256,
  total: 4096,
  idleMs: 10 * 60_000,
};

/**
 * The ancestors a handle counts against as a tree: every capability in the
 * lineage but the root token, which is the operator's and so every tree's.
 */
function treeIds(lineage: readonly string[]): readonly string[] {
  return lineage.length > 1 ? lineage.slice(1) : [];
}

/** Every id whose count a handle adds to: its own capability and its tree's. */
function countedIds(lineage: readonly string[]): readonly string[] {
  return lineage.length > 1 ? lineage.slice(1) : lineage;
}

/** The handles of one fs process. */
export class HandleTable {
  #handles = new Map<string, Handle>();
  #perCap = new Map<string, number>();
  #next = 1;
  #limits: HandleLimits;

  constructor(limits: Partial<HandleLimits> = {}) {
    this.#limits = { ...DEFAULT_HANDLE_LIMITS, ...limits };
  }

  /** Open handles. */
  get size(): number {
    return this.#handles.size;
  }

  /** Registers an open file for `cap`; returns its handle id. */
  add(cap: Capability, fd: number, path: string): string {
    const mine = this.#perCap.get(cap.capId) ?? 0;
    const full = mine >= this.#limits.perCapability
      ? `this capability already has ${mine} open handles; close some with fs.close`
      : this.#fullTree(cap) ??
        (this.#handles.size >= this.#limits.total
          ? "fs has too many open handles; retry later"
          : undefined);
    if (full !== undefined) {
      closeSync(fd);
      throw new StrataError("RESOURCE_EXHAUSTED", full);
    }
    const id = `h${this.#next++}`;
    this.#handles.set(id, {
      id,
      capId: cap.capId,
      lineage: cap.lineage,
      expMs: cap.expMs,
      fd,
      path,
      lastUsed: Date.now(),
    });
    for (const id of countedIds(cap.lineage)) {
      this.#perCap.set(id, (this.#perCap.get(id) ?? 0) + 1);
    }
    return id;
  }

  /** Why `cap`'s delegation tree may open no more, or undefined when it may. */
  #fullTree(cap: Capability): string | undefined {
    for (const id of treeIds(cap.lineage)) {
      const n = this.#perCap.get(id) ?? 0;
      if (n >= this.#limits.perTree) {
        return `the delegation tree of capability ${id} already has ${n} open handles, ` +
          `its limit; close some with fs.close or revoke unused children`;
      }
    }
    return undefined;
  }

  /**
   * Returns the handle if `cap` opened it. Another capability's handle and a
   * missing one look the same (NOT_FOUND), so handles cannot be probed.
   */
  get(id: string, cap: Capability): Handle {
    const h = this.#handles.get(id);
    if (!h || h.capId !== cap.capId) {
      throw notFound(
        `handle: no open handle ${id} for this capability; open the file with fs.open`,
      );
    }
    h.lastUsed = Date.now();
    return h;
  }

  /** Closes one handle of `cap`. */
  close(id: string, cap: Capability): void {
    this.#drop(this.get(id, cap));
  }

  #drop(h: Handle): void {
    if (!this.#handles.delete(h.id)) return;
    for (const id of countedIds(h.lineage)) {
      const n = (this.#perCap.get(id) ?? 1) - 1;
      if (n > 0) this.#perCap.set(id, n);
      else this.#perCap.delete(id);
    }
    closeSync(h.fd);
  }

  /** Closes every handle whose capability or an ancestor is in `capIds`. */
  revoke(capIds: Iterable<string>): number {
    const ids = new Set(capIds);
    let closed = 0;
    for (const h of [...this.#handles.values()]) {
      if (h.lineage.some((id) => ids.has(id))) {
        this.#drop(h);
        closed++;
      }
    }
    return closed;
  }

  /** Closes handles whose token expired or that sat idle too long. */
  sweep(now: number = Date.now()): number {
    let closed = 0;
    for (const h of [...this.#handles.values()]) {
      if (h.expMs <= now || now - h.lastUsed > this.#limits.idleMs) {
        this.#drop(h);
        closed++;
      }
    }
    return closed;
  }

  /** Closes everything. */
  closeAll(): void {
    for (const h of [...this.#handles.values()]) this.#drop(h);
  }
}
