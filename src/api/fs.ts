/**
 * fs's methods, declared once: lists directories and reads files under its
 * export roots for holders of a token with the matching right.
 * @module
 */

import { healthSpec, type MethodSpec } from "./method.ts";

/**
 * The largest fs.read: its base64 (4/3 of it) plus the envelope always fits a
 * 1 MiB frame.
 */
export const MAX_READ = 767 * 1024;

const PATH = { type: "string", minLength: 1, maxLength: 4096 } as const;
const HANDLE = { type: "string", minLength: 1, maxLength: 32 } as const;

/** Every method fs answers. */
export const FS_METHODS: readonly MethodSpec[] = [
  healthSpec("fs"),
  {
    name: "fs.list",
    access: { right: "fs.list" },
    params: { path: PATH, limit: { type: "integer", default: 1000, min: 1, max: 5000 } },
    summary: "list a directory",
    example: { path: "/tmp" },
  },
  {
    name: "fs.open",
    access: { right: "fs.open" },
    params: { path: PATH },
    summary: "open a file for reading; returns a handle",
    example: { path: "/tmp/test.txt" },
  },
  {
    name: "fs.read",
    access: { right: "fs.read" },
    params: {
      handle: HANDLE,
      offset: { type: "integer", default: 0, min: 0, max: Number.MAX_SAFE_INTEGER },
      size: { type: "integer", default: 4096, min: 1, max: MAX_READ },
    },
    summary: "read from a handle",
    example: { handle: "h1", offset: 0, size: 4096 },
  },
  {
    // Public: root paths are configuration, not secrets, and `strata-ctl
    // token issue` must check a prefix with whatever token it holds
    // (identity.issue is not an fs right). Only socket users can ask.
    name: "fs.roots",
    access: "public",
    params: {},
    summary: "the export roots fs serves",
  },
  {
    name: "fs.close",
    access: { right: "fs.open" },
    params: { handle: HANDLE },
    summary: "close a handle",
    example: { handle: "h1" },
  },
];
