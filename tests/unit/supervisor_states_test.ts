/**
 * Unit tests for src/supervisor/states.ts: the one table of allowed service
 * state transitions.
 */

import assert from "node:assert/strict";
import { assertTransition, type State, TRANSITIONS } from "../../src/supervisor/states.ts";

const STATES: State[] = [
  "Declared",
  "Starting",
  "Healthy",
  "Crashed",
  "Restarting",
  "Stopped",
  "Quarantined",
];

Deno.test("TRANSITIONS: every state has an entry, and every target is a state", () => {
  assert.deepEqual(Object.keys(TRANSITIONS).sort(), [...STATES].sort());
  for (const targets of Object.values(TRANSITIONS)) {
    for (const t of targets) assert.ok(STATES.includes(t), t);
  }
});

Deno.test("assertTransition: Stopped → Healthy is illegal (a service must start first)", () => {
  assert.throws(
    () => assertTransition("Stopped", "Healthy"),
    /illegal service state transition Stopped → Healthy/,
  );
});

Deno.test("assertTransition: Healthy → Restarting is illegal (it must crash first)", () => {
  assert.throws(() => assertTransition("Healthy", "Restarting"), /Healthy → Restarting/);
});

Deno.test("assertTransition: other illegal moves throw", () => {
  const illegal: [State, State][] = [
    ["Declared", "Healthy"],
    ["Starting", "Restarting"],
    ["Crashed", "Healthy"],
    ["Quarantined", "Restarting"],
    ["Restarting", "Healthy"],
    ["Healthy", "Healthy"],
    ["Stopped", "Stopped"],
  ];
  for (const [from, to] of illegal) {
    assert.throws(() => assertTransition(from, to), `${from} → ${to}`);
  }
});

Deno.test("assertTransition: the life of a service passes through allowed moves only", () => {
  const path: State[] = [
    "Declared",
    "Starting",
    "Healthy",
    "Crashed",
    "Restarting",
    "Starting",
    "Crashed",
    "Quarantined",
    "Starting",
    "Healthy",
    "Stopped",
    "Starting",
  ];
  for (let i = 1; i < path.length; i++) assertTransition(path[i - 1], path[i]);
});

Deno.test("assertTransition: accepts exactly the table's moves", () => {
  for (const from of STATES) {
    for (const to of STATES) {
      const allowed = TRANSITIONS[from].includes(to);
      if (allowed) assertTransition(from, to);
      else assert.throws(() => assertTransition(from, to), `${from} → ${to}`);
    }
  }
  // Quarantined is only entered from Crashed; every state can be stopped except Stopped itself
  assert.deepEqual(STATES.filter((s) => TRANSITIONS[s].includes("Quarantined")), ["Crashed"]);
  assert.deepEqual(STATES.filter((s) => !TRANSITIONS[s].includes("Stopped")), ["Stopped"]);
});
