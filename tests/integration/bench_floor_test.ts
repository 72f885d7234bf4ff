/**
 * The bench's floor (scripts/bench_floor.ts), run as identity and as fs with
 * those services' own permission flags: it must answer the bench's requests
 * for real (identity answers only the operator token it signed, a token it
 * signed opens fs's listing with the folder's real sizes, a forged one does not, a revocation is in the log before its
 * answer and in effect at fs for the next request), or its rates would be no
 * floor at all; and its stand-ins must follow the revocation list, or its
 * memory would be none. With `records` it must keep the protocol's records
 * for real (audit lines, the issued record), and without them none.
 */

import assert from "node:assert/strict";
import { floorCommand, writeFloorOperatorClaims } from "../../scripts/bench_floor_command.ts";
import { Client } from "../../src/server/client.ts";
import type { Layout } from "../../src/runtime/config.ts";
import { alive, tempLayout, waitFor } from "../helpers.ts";

/** Starts the floor's `programs` on `layout` (its dirs made, the operator's claims written). */
async function startFloor(
  layout: Layout,
  programs: readonly ("identity" | "fs" | "registry")[],
  children: Deno.ChildProcess[],
  options: { records?: boolean } = {},
): Promise<void> {
  for (const d of [layout.runtimeDir, layout.stateDir]) await Deno.mkdir(d, { mode: 0o700 });
  await writeFloorOperatorClaims(layout.stateDir);
  for (const program of programs) {
    const c = floorCommand(program, layout, Deno.execPath(), options);
    children.push(
      new Deno.Command(c.cmd, { args: c.args, env: c.env, stdin: "null", stdout: "null" })
        .spawn(),
    );
    await waitFor(`the floor's ${program}`, async () => {
      const probe = await Client.connect(`${layout.runtimeDir}/${program}.sock`, {
        connectTimeoutMs: 200,
      });
      try {
        return (await probe.request(`${program}.health`)).ok;
      } finally {
        await probe.close();
      }
    });
  }
}

/** Stops the floor's processes and closes the clients, then removes the temp dir. */
async function stopFloor(
  children: Deno.ChildProcess[],
  clients: Client[],
  temp: { cleanup(): Promise<void> },
): Promise<void> {
  for (const c of clients) await c.close().catch(() => {});
  for (const child of children) {
    child.kill("SIGTERM");
    await child.status;
  }
  await waitFor("the floor's processes gone", () => children.every((c) => !alive(c.pid)));
  await temp.cleanup();
}

Deno.test("bench floor: issues, lists with real sizes, refuses a forged token, revokes durably", async () => {
  const temp = await tempLayout();
  const { layout, exportRoot } = temp;
  const children: Deno.ChildProcess[] = [];
  const clients: Client[] = [];
  try {
    await Deno.mkdir(`${exportRoot}/list20`);
    for (let i = 0; i < 20; i++) {
      await Deno.writeTextFile(`${exportRoot}/list20/file-${i}.txt`, "x".repeat(i * 10));
    }
    const sock = (s: string) => `${layout.runtimeDir}/${s}.sock`;
    await startFloor(layout, ["identity", "fs", "registry"], children);
    // identity checks its callers too: a token it did not sign gets no answer.
    const stranger = await Client.connect(sock("identity"), { timeoutMs: 2000 });
    clients.push(stranger);
    await assert.rejects(
      stranger.request("identity.issue", { service: "fs", actions: ["list"] }, { token: "floor" }),
    );
    // The operator token it signed at start, of the claims given (every right).
    const operator = (await Deno.readTextFile(`${layout.stateDir}/operator.token`)).trim();
    assert.ok(operator.length > 500, `an operator token of a node's size: ${operator.length}`);
    const id = await Client.connect(sock("identity"));
    clients.push(id);
    const issued = await id.call<{ token: string; cap_id: string }>("identity.issue", {
      service: "fs",
      actions: ["list"],
    }, { token: operator });
    assert.match(issued.token, /^v4\.public\./);

    const fs = await Client.connect(sock("fs"));
    clients.push(fs);
    const listed = await fs.call<{ entries: { name: string; size: number }[] }>("fs.list", {
      path: `${exportRoot}/list20`,
    }, { token: issued.token });
    assert.equal(listed.entries.length, 20);
    assert.equal(listed.entries.find((e) => e.name === "file-7.txt")?.size, 70);

    // A token whose signature is not identity's gets no answer: the floor hangs up.
    const forged = issued.token.slice(0, -4) + (issued.token.endsWith("AAAA") ? "BBBB" : "AAAA");
    const other = await Client.connect(sock("fs"), { timeoutMs: 2000 });
    clients.push(other);
    await assert.rejects(
      other.request("fs.list", { path: `${exportRoot}/list20` }, { token: forged }),
    );

    const revoked = await id.call<{ revoked: boolean }>("identity.revoke", {
      cap_id: issued.cap_id,
    }, { token: operator });
    assert.equal(revoked.revoked, true);
    const log = await Deno.readTextFile(`${layout.stateDir}/revocations.log`);
    assert.ok(log.includes(issued.cap_id));
    const list = await Deno.readTextFile(`${layout.runtimeDir}/revocations`);
    assert.equal(list.trim().split("\n").length, 1);

    // fs judges the next request with the revocation: the revoked token lists nothing.
    const after = await Client.connect(sock("fs"), { timeoutMs: 2000 });
    clients.push(after);
    await assert.rejects(
      after.request("fs.list", { path: `${exportRoot}/list20` }, { token: issued.token }),
    );
    // And a stand-in verifier (registry's) holds the revoked id once its poll has read the line.
    const reg = await Client.connect(sock("registry"));
    clients.push(reg);
    await waitFor(
      "the registry stand-in to hold the revocation",
      async () => (await reg.call<{ revoked: number }>("registry.health")).revoked === 1,
    );
    // The plain floor keeps no records: no audit line, no issued record.
    await new Promise((r) => setTimeout(r, 250));
    for (const f of ["audit.log", "issued.log"]) {
      await assert.rejects(Deno.stat(`${layout.stateDir}/${f}`), Deno.errors.NotFound);
    }
  } finally {
    await stopFloor(children, clients, temp);
  }
});

Deno.test("bench floor with records: an audit line for each issue, open, read and revocation, and the issued record", async () => {
  const temp = await tempLayout();
  const { layout, exportRoot } = temp;
  const children: Deno.ChildProcess[] = [];
  const clients: Client[] = [];
  try {
    await Deno.writeTextFile(`${exportRoot}/a.txt`, "hello floor");
    await startFloor(layout, ["identity", "fs"], children, { records: true });
    const operator = (await Deno.readTextFile(`${layout.stateDir}/operator.token`)).trim();
    const id = await Client.connect(`${layout.runtimeDir}/identity.sock`);
    const fs = await Client.connect(`${layout.runtimeDir}/fs.sock`);
    clients.push(id, fs);
    const issued = await id.call<{ token: string; cap_id: string }>("identity.issue", {
      service: "fs",
      actions: ["open", "read"],
    }, { token: operator });
    const { handle } = await fs.call<{ handle: string }>("fs.open", {
      path: `${exportRoot}/a.txt`,
    }, { token: issued.token });
    const read = await fs.call<{ data: string; bytes_read: number }>("fs.read", {
      handle,
      offset: 0,
      size: 64,
    }, { token: issued.token });
    assert.equal(new TextDecoder().decode(Uint8Array.fromBase64(read.data)), "hello floor");
    await id.call("identity.revoke", { cap_id: issued.cap_id }, { token: operator });
    // Written within 100 ms of each line.
    const lines = async (f: string) => {
      try {
        return (await Deno.readTextFile(`${layout.stateDir}/${f}`)).trim().split("\n")
          .map((l) => JSON.parse(l));
      } catch {
        return [];
      }
    };
    await waitFor("the audit lines", async () => (await lines("audit.log")).length === 4, 5_000);
    const audit = await lines("audit.log");
    const events = new Map(audit.map((e) => [e.event, e]));
    assert.deepEqual([...events.keys()].sort(), [
      "cap.issued",
      "cap.revoked",
      "fs.open",
      "fs.read",
    ]);
    for (const e of audit) {
      assert.equal(e.cap_id, issued.cap_id);
      assert.match(e.ts, /^\d{4}-\d\d-\d\dT/);
    }
    assert.equal(events.get("fs.read").bytes, 11);
    const record = await lines("issued.log");
    assert.equal(record.length, 1);
    assert.equal(record[0].cap_id, issued.cap_id);
    assert.deepEqual(record[0].actions, ["open", "read"]);
  } finally {
    await stopFloor(children, clients, temp);
  }
});
