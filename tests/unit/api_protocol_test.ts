/**
 * api/protocol.md against the method table: the methods it lists (with the
 * right each needs) and the rights of each service must be the table's, so
 * the document cannot drift from the code.
 * @module
 */

import assert from "node:assert/strict";
import { METHODS, SERVICE_RIGHTS, SERVICES } from "../../src/api/mod.ts";

const DOC = Deno.readTextFileSync(new URL("../../api/protocol.md", import.meta.url));

/** The lines of a section, from its heading to the next heading of its level or above. */
function section(doc: string, heading: string): string[] {
  const lines = doc.split("\n");
  const at = lines.indexOf(heading);
  assert.ok(at >= 0, `api/protocol.md has no heading "${heading}"`);
  const level = heading.indexOf(" ");
  const end = lines.findIndex((l, i) => i > at && /^#+ /.test(l) && l.indexOf(" ") <= level);
  return lines.slice(at + 1, end < 0 ? undefined : end);
}

/** Table rows of `lines` (not the header or the rule) as cells. */
function rows(lines: string[]): string[][] {
  return lines.filter((l) => l.startsWith("| ") && !/^\| -/.test(l))
    .map((l) => l.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim()));
}

/** Every method protocol.md lists, with the right it says it needs ("public" for none). */
function documentedMethods(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [cell] of rows(section(DOC, "## Methods"))) {
    const m = /^`([a-z_.]+)`(.*)$/.exec(cell);
    if (!m) continue; // a header row
    const [, name, rest] = m;
    const needs = /\(needs `([a-z_.]+)`\)/.exec(rest);
    out.set(name, needs ? needs[1] : /(^|\s)\*(\s|$)/.test(rest) ? name : "public");
  }
  // "Every service also answers `<service>.health`" (public).
  assert.match(
    section(DOC, "## Methods").join("\n"),
    /Every service also answers `<service>\.health`/,
  );
  for (const s of SERVICES) out.set(`${s}.health`, "public");
  return out;
}

/** Each service's rights as the "Rights" table lists them. */
function documentedRights(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [service, rights] of rows(section(DOC, "### Rights"))) {
    if (service === "service") continue;
    out.set(service, [...rights.matchAll(/`([a-z_.]+)`/g)].map((m) => m[1]).sort());
  }
  return out;
}

Deno.test("api/protocol.md lists exactly the table's methods, each with the right it needs", () => {
  const doc = documentedMethods();
  const table = new Map(
    METHODS.map((m) => [m.name, m.access === "public" ? "public" : m.access.right]),
  );
  const missing = [...table.keys()].filter((n) => !doc.has(n));
  const extra = [...doc.keys()].filter((n) => !table.has(n));
  assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, "method names");
  for (const [name, right] of table) assert.equal(doc.get(name), right, `${name}: its right`);
});

Deno.test("api/protocol.md's Rights table is the table's rights of each service", () => {
  const doc = documentedRights();
  assert.deepEqual([...doc.keys()].sort(), [...SERVICES].sort());
  for (const s of SERVICES) assert.deepEqual(doc.get(s), [...SERVICE_RIGHTS[s]].sort(), s);
});

Deno.test("the protocol.md parser sees a method missing, added, or with another right", () => {
  // The checks above could not fail if the parser found nothing: it finds every method.
  assert.ok(documentedMethods().size >= METHODS.length);
  assert.equal(documentedMethods().get("fs.close"), "fs.open");
  assert.equal(documentedMethods().get("fs.roots"), "public");
  assert.equal(documentedMethods().get("identity.rotate_key"), "identity.rotate_key");
  assert.equal(documentedRights().get("supervisor")?.length, 5);
});
