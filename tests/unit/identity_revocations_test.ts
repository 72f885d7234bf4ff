/**
 * Unit tests for src/identity/revocations.ts: the durable, append-only
 * revocation log in a temp state dir.
 */

import assert from "node:assert/strict";
import { AS_ROOT } from "../helpers.ts";
import { RevocationLog, type RevocationLogFiles } from "../../src/identity/revocations.ts";
import { newCapId } from "../../src/token/claims.ts";
import { withTempDir } from "./support.ts";

const NOW = Date.now();
const SOON = Math.floor(NOW / 1000) + 3600;

function filesIn(dir: string): RevocationLogFiles {
  return {
    revocationLog: `${dir}/revocations.log`,
    revocationLogTmp: `${dir}/revocations.log.tmp`,
  };
}

/** Opens the log, runs `fn`, and always closes it. */
async function withLog<T>(
  files: RevocationLogFiles,
  fn: (log: RevocationLog) => T | Promise<T>,
  now = NOW,
): Promise<T> {
  const log = RevocationLog.open(files, now);
  try {
    return await fn(log);
  } finally {
    log.close();
  }
}

function lines(files: RevocationLogFiles): unknown[] {
  return Deno.readTextFileSync(files.revocationLog).split("\n").filter((l) => l !== "").map((l) =>
    JSON.parse(l)
  );
}

Deno.test("RevocationLog: an append is durable: a reopened log knows it", async () => {
  await withTempDir(async (dir) => {
    // given a fresh log with one revocation appended
    const files = filesIn(dir);
    const a = newCapId();
    await withLog(files, async (log) => {
      assert.equal(await log.append({ cap_id: a, exp: SOON }, "operator-cap"), true);
      assert.ok(log.set.has(a));
    });
    // when it is reopened (a restart)
    // then the revocation is still there
    await withLog(files, (log) => assert.ok(log.set.has(a)));
    // and the file is one JSON line with when and by whom, mode 0600
    const [line] = lines(files) as { cap_id: string; exp: number; at: string; by: string }[];
    assert.equal(line.cap_id, a);
    assert.equal(line.exp, SOON);
    assert.equal(line.by, "operator-cap");
    assert.ok(!Number.isNaN(Date.parse(line.at)));
    assert.equal(Deno.statSync(files.revocationLog).mode! & 0o777, 0o600);
  });
});

Deno.test("RevocationLog: appending an id already revoked returns false and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const files = filesIn(dir);
    const a = newCapId();
    await withLog(files, async (log) => {
      assert.equal(await log.append({ cap_id: a, exp: SOON }), true);
      assert.equal(await log.append({ cap_id: a, exp: SOON }), false);
    });
    // and after a restart it is still a duplicate
    await withLog(
      files,
      async (log) => assert.equal(await log.append({ cap_id: a, exp: SOON + 5 }), false),
    );
    assert.equal(lines(files).length, 1);
  });
});

Deno.test("RevocationLog: a torn last line is discarded on reopen, and later appends are intact", async () => {
  await withTempDir(async (dir) => {
    // given two revocations and then a crash in the middle of a third append
    const files = filesIn(dir);
    const [a, b, c] = [newCapId(), newCapId(), newCapId()];
    await withLog(files, async (log) => {
      await log.append({ cap_id: a, exp: SOON });
      await log.append({ cap_id: b, exp: SOON });
    });
    Deno.writeTextFileSync(files.revocationLog, `{"cap_id":"${newCapId()}","ex`, { append: true });
    // when reopened
    await withLog(files, async (log) => {
      // then the two whole entries are kept and the torn one is gone
      assert.equal(log.set.size, 2);
      assert.ok(log.set.has(a) && log.set.has(b));
      await log.append({ cap_id: c, exp: SOON });
    });
    // and the file now holds three whole lines
    assert.deepEqual(lines(files).map((l) => (l as { cap_id: string }).cap_id), [a, b, c]);
    await withLog(files, (log) => assert.equal(log.set.size, 3));
  });
});

Deno.test("RevocationLog: a last line that lost only its newline is not merged with the next append", async () => {
  await withTempDir(async (dir) => {
    // given a log whose last entry was written whole except for its trailing newline
    // (a crash between the bytes of one write)
    const files = filesIn(dir);
    const [a, b] = [newCapId(), newCapId()];
    Deno.writeTextFileSync(
      files.revocationLog,
      JSON.stringify({ cap_id: a, exp: SOON, at: new Date(NOW).toISOString() }),
    );
    // when the log is reopened and another revocation appended
    await withLog(files, async (log) => {
      assert.ok(log.set.has(a));
      await log.append({ cap_id: b, exp: SOON });
    });
    // then after another restart both revocations are still known
    await withLog(files, (log) => {
      assert.ok(log.set.has(a), "the earlier revocation was lost");
      assert.ok(log.set.has(b), "the later revocation was lost");
    });
  });
});

Deno.test("RevocationLog: entries whose tokens have expired are pruned on reopen", async () => {
  await withTempDir(async (dir) => {
    // given one entry expiring soon and one expiring much later
    const files = filesIn(dir);
    const [short, long] = [newCapId(), newCapId()];
    const shortExp = Math.floor(NOW / 1000) + 10;
    await withLog(files, async (log) => {
      await log.append({ cap_id: short, exp: shortExp });
      await log.append({ cap_id: long, exp: SOON });
    });
    // when reopened exactly at the short one's expiry, it is still kept
    await withLog(files, (log) => assert.ok(log.set.has(short)), shortExp * 1000);
    // when reopened after it
    await withLog(files, (log) => {
      // then only the live one remains, in memory and in the compacted file
      assert.ok(!log.set.has(short));
      assert.ok(log.set.has(long));
    }, (shortExp + 1) * 1000);
    assert.deepEqual(lines(files).map((l) => (l as { cap_id: string }).cap_id), [long]);
  });
});

Deno.test("RevocationLog: lines that are not revocations are dropped on reopen", async () => {
  await withTempDir(async (dir) => {
    const files = filesIn(dir);
    const a = newCapId();
    Deno.writeTextFileSync(
      files.revocationLog,
      ["null", "[]", '{"cap_id":5,"exp":1}', JSON.stringify({ cap_id: a, exp: SOON }), ""].join(
        "\n",
      ),
    );
    await withLog(files, (log) => {
      assert.equal(log.set.size, 1);
      assert.ok(log.set.has(a));
    });
    assert.equal(lines(files).length, 1);
  });
});

Deno.test({
  name: `RevocationLog: an append cut short by a full disk leaves no half line behind${
    AS_ROOT ? "" : " (skipped: needs root to mount a small tmpfs)"
  }`,
  ignore: !AS_ROOT,
  fn: async () => {
    await withTempDir(async (dir) => {
      // Given a log on a file system with room for only a few lines
      const mnt = `${dir}/small`;
      await Deno.mkdir(mnt);
      const mount = await new Deno.Command("mount", {
        args: ["-t", "tmpfs", "-o", "size=8k", "tmpfs", mnt],
      }).output();
      if (!mount.success) return; // no mount here (e.g. in a container): nothing to show
      try {
        const files = filesIn(mnt);
        const written: string[] = [];
        let failed = false;
        await withLog(files, async (log) => {
          for (let i = 0; i < 200 && !failed; i++) {
            const id = newCapId();
            try {
              await log.append({ cap_id: id, exp: SOON });
              written.push(id);
            } catch {
              failed = true;
            }
          }
        });
        assert(failed, "the disk never filled");
        // When the log is opened again
        // Then every acknowledged revocation is there, and the file ends on a whole line
        await withLog(files, (log) => {
          for (const id of written) assert(log.set.has(id), `lost ${id}`);
        });
        assert(Deno.readTextFileSync(files.revocationLog).endsWith("\n"));
      } finally {
        await new Deno.Command("umount", { args: [mnt] }).output();
      }
    });
  },
});

Deno.test("RevocationLog.appendAll: a batch is recorded at once, skipping ids already revoked or repeated", async () => {
  await withTempDir(async (dir) => {
    // given a log that knows a
    const files = filesIn(dir);
    const [a, b, c] = [newCapId(), newCapId(), newCapId()];
    await withLog(files, async (log) => {
      await log.append({ cap_id: a, exp: SOON });
      // when a batch names a again, b twice and c
      const fresh = await log.appendAll([
        { entry: { cap_id: a, exp: SOON } },
        { entry: { cap_id: b, exp: SOON }, by: "x" },
        { entry: { cap_id: b, exp: SOON }, by: "x" },
        { entry: { cap_id: c, exp: SOON }, by: "x" },
      ]);
      // then b and c are recorded, once each, and counted for their revoker
      assert.deepEqual(fresh.map((e) => e.cap_id), [b, c]);
      assert.equal(log.countBy("x"), 2);
    });
    assert.deepEqual(lines(files).map((l) => (l as { cap_id: string }).cap_id), [a, b, c]);
    await withLog(files, (log) => assert.equal(log.set.size, 3));
  });
});

Deno.test("RevocationLog.appendAll: beside runs with the batch written, also when nothing is new; when it throws, the batch is durable but not in the set", async () => {
  await withTempDir(async (dir) => {
    const files = filesIn(dir);
    const [a, b] = [newCapId(), newCapId()];
    await withLog(files, async (log) => {
      // given a batch whose caller's own part (the list line) runs beside the fsync
      let logAtBeside = "";
      await log.appendAll([{ entry: { cap_id: a, exp: SOON } }], {
        beside: () => (logAtBeside = Deno.readTextFileSync(files.revocationLog)),
      });
      // then the log's line was written before it ran
      assert.match(logAtBeside, new RegExp(a));
      // and it runs for a batch with nothing new too (the list still needs its line)
      let ran = false;
      assert.deepEqual(
        await log.appendAll([{ entry: { cap_id: a, exp: SOON } }], { beside: () => (ran = true) }),
        [],
      );
      assert.equal(ran, true);
      // when it throws, appendAll fails with its error and the set does not have the entry
      await assert.rejects(
        log.appendAll([{ entry: { cap_id: b, exp: SOON }, by: "x" }], {
          beside: () => {
            throw new Error("list file full");
          },
        }),
        /list file full/,
      );
      assert.equal(log.set.has(b), false);
      assert.equal(log.countBy("x"), 0);
    });
    // and the log has it: identity's next start holds it revoked (the safe side)
    await withLog(files, (log) => assert.equal(log.set.has(b), true));
  });
});

Deno.test("RevocationLog.appendAll: each line is the JSON of its entry, time, revoker and tree, and quotas count each tree once", async () => {
  await withTempDir(async (dir) => {
    // given a batch from several callers: none, a root caller, two delegated
    // ones (one tree repeating its caller), and a caller id that needs escaping
    const files = filesIn(dir);
    const ids = Array.from({ length: 6 }, () => newCapId());
    const items = [
      { entry: { cap_id: ids[0], exp: SOON } },
      { entry: { cap_id: ids[1], exp: SOON }, by: "op", byTree: ["op"] },
      { entry: { cap_id: ids[2], exp: SOON + 1 }, by: "op", byTree: ["op"] },
      { entry: { cap_id: ids[3], exp: SOON }, by: "d2", byTree: ["d1", "d2"] },
      { entry: { cap_id: ids[4], exp: SOON }, by: "d2", byTree: ["d1", "d2", "d1"] },
      { entry: { cap_id: ids[5], exp: SOON }, by: 'q"\\\n', byTree: [] },
    ];
    await withLog(files, async (log) => {
      await log.appendAll(items);
      // then every line parses to the same object a plain JSON.stringify made,
      // field by field and in the same order
      const got = lines(files) as Record<string, unknown>[];
      assert.equal(got.length, items.length);
      got.forEach((line, i) => {
        const { entry, by, byTree } = items[i];
        const want = {
          ...entry,
          at: line.at,
          ...(by ? { by } : {}),
          // (a tree of the caller alone counts as none, and is left out)
          ...(by && byTree && byTree.some((id) => id !== by) ? { by_tree: byTree } : {}),
        };
        assert.equal(JSON.stringify(line), JSON.stringify(want));
        assert.match(String(line.at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      });
      // and each revocation counts once for its caller and each other id of its tree
      assert.equal(log.countBy("op"), 2);
      assert.equal(log.countBy("d1"), 2);
      assert.equal(log.countBy("d2"), 2);
      assert.equal(log.countBy('q"\\\n'), 1);
    });
    // and a reopened log counts the same
    await withLog(files, (log) => {
      assert.equal(log.countBy("d1"), 2);
      assert.equal(log.countBy("op"), 2);
    });
  });
});

Deno.test("RevocationLog.trustSource: identity's own trust is fed by the log, never by reading a file", async () => {
  await withTempDir(async (dir) => {
    const files = filesIn(dir);
    const a = newCapId();
    await withLog(files, async (log) => {
      await log.append({ cap_id: a, exp: SOON });
      const source = log.trustSource();
      const fed: unknown[] = [];
      source.subscribe((e) => fed.push(e));
      // a poll delivers nothing (the set has every entry already), the snapshot is the set
      await source.poll();
      assert.deepEqual(fed, []);
      assert.deepEqual(await source.snapshot(), [{ cap_id: a, exp: SOON }]);
      // and a catch-up reads nothing either
      assert.equal(source.catchUp(), undefined);
      assert.deepEqual(fed, []);
    });
  });
});

Deno.test("RevocationLog: a long log replays every live line, counts each revoker, and is rewritten with exactly the lines kept", async () => {
  await withTempDir(async (dir) => {
    // given 2,500 lines (more than a replay batch), of them every 7th expired, every 11th torn,
    // and callers a, b (under tree t) and none, in the forms appendAll writes
    const files = filesIn(dir);
    const [a, b, t] = [newCapId(), newCapId(), newCapId()];
    const at = new Date(NOW).toISOString();
    const text: string[] = [];
    const live: string[] = [];
    const keptLines: string[] = [];
    const counts = { a: 0, b: 0, t: 0 };
    for (let i = 0; i < 2500; i++) {
      const id = newCapId();
      const exp = i % 7 === 0 ? Math.floor(NOW / 1000) - 5 : SOON + i;
      const by = i % 3 === 0 ? undefined : i % 3 === 1 ? a : b;
      const line = JSON.stringify({
        cap_id: id,
        exp,
        at,
        ...(by ? { by } : {}),
        ...(by === b ? { by_tree: [t, b] } : {}),
      });
      if (i % 11 === 0) {
        text.push(line.slice(0, 40)); // torn
        continue;
      }
      text.push(line);
      if (i % 7 === 0) continue;
      live.push(id);
      keptLines.push(line);
      if (by === a) counts.a++;
      if (by === b) counts.b++, counts.t++;
    }
    Deno.writeTextFileSync(files.revocationLog, text.join("\n") + "\n");
    // when reopened
    await withLog(files, (log) => {
      // then exactly the live entries are held, and each revoker's count is its live lines
      assert.equal(log.set.size, live.length);
      assert.ok(live.every((id) => log.set.has(id)));
      assert.equal(log.countBy(a), counts.a);
      assert.equal(log.countBy(b), counts.b);
      assert.equal(log.countBy(t), counts.t);
    });
    // and the file holds the kept lines as they were, in order
    assert.equal(Deno.readTextFileSync(files.revocationLog), keptLines.join("\n") + "\n");
  });
});

/**
 * The replay as it was before lines were read from their bytes: JSON.parse of
 * every line, the same checks, the same counts and the same rewrite.
 */
function replayByJson(text: string, now: number) {
  const held = new Map<string, number>();
  const counts = new Map<string, number>();
  const count = (by: string, tree: readonly string[] = []) => {
    counts.set(by, (counts.get(by) ?? 0) + 1);
    for (let i = 0; i < tree.length; i++) {
      const id = tree[i];
      if (id === by || tree.indexOf(id) < i) continue;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  };
  const kept: string[] = [];
  let dropped = 0;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    try {
      const e = JSON.parse(line);
      if (typeof e.cap_id === "string" && Number.isSafeInteger(e.exp) && e.exp * 1000 >= now) {
        held.set(e.cap_id, Math.max(e.exp, held.get(e.cap_id) ?? 0));
        if (e.by) count(e.by, e.by_tree);
        kept.push(line);
        continue;
      }
    } catch { /* torn */ }
    dropped++;
  }
  const rewritten = dropped > 0 || (text !== "" && !text.endsWith("\n"));
  return { held, counts, file: rewritten ? kept.map((l) => l + "\n").join("") : text };
}

Deno.test("RevocationLog: lines read from their bytes give what JSON.parse of each line gives, in every spelling", async () => {
  // given lines in appendAll's form and in many others (spaces, escapes, odd ids and numbers,
  // tails with other members, duplicates, torn lines), mixed at random over several files
  const [a, b, t] = [newCapId(), newCapId(), newCapId()];
  const at = `"${new Date(NOW).toISOString()}"`;
  const live = SOON;
  const past = Math.floor(NOW / 1000) - 5;
  const id = newCapId();
  const forms: ((id: string) => string)[] = [
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at}}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${b}","by_tree":["${t}","${b}"]}`,
    (i) =>
      `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${b}","by_tree":["${t}","${t}","${b}"]}`,
    (i) => `{"cap_id":"${i}","exp":${past},"at":${at},"by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":"x\\"y","by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":"\\","by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":"\\\\","by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":"\t","by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":"é","by":"${a}"}`,
    (i) => `{"cap_id":"${i}", "exp":${live},"at":${at},"by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${live}.0,"at":${at},"by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${live}e0,"at":${at},"by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":0${live},"at":${at},"by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":-${live},"at":${at},"by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":12345678901234567890,"at":${at}}`,
    (i) => `{"cap_id":"${i.toUpperCase()}","exp":${live},"at":${at},"by":"${a}"}`,
    (i) => `{"cap_id":"${i.slice(1)}","exp":${live},"at":${at},"by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","cap_id":"${id}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","exp":${past}}`,
    (i) => `{"cap_id":"${i}","exp":${past},"at":${at},"by":"${a}","exp":${live}}`,
    (i) => `{"cap_id":"${i}","exp":${past},"at":${at},"by":"${a}","\\u0065xp":${live}}`,
    (i) => `{"cap_id":"${i}","exp":${past},"at":${at},"by":"${newCapId()}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${newCapId()}","by_tree":["${t}"]}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","by_tree":[]}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","by_tree":["${t}",]}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","by_tree":["${t}""${a}"]}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","by_tree":["${t}";"${a}"]}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","by_tree":["${t}"]}}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","by_tree":["${t}"]x}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"\\u0061${a.slice(0, 26)}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at}}}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at}}x`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a.toUpperCase()}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","by":"${b}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","x":1}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at} }`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at}} `,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by_tree":["${t}"]}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":7}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}","by_tree":"${t}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}"}}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}"]`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"__proto__":{"by":"${a}"}}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":12}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}"}\r`,
    () => `{"cap_id":"${id}","exp":${live + 60},"at":${at},"by":"${a}"}`,
    () => "",
    () => "not json",
    (i) => `\ufeff{"cap_id":"${i}","exp":${live},"at":${at},"by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${live},"at":${at}\ufeff,"by":"${a}"}`,
    (i) => `{"cap_id":"${i}","exp":${past},"at":${at},"by":"${a}","by_tree":null}`,
    (i) => `{"cap_id":"${i}","exp":${past},"at":${at},"by":"${a}","by_tree":{"length":2}}`,
  ];
  let seed = 7;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
  await withTempDir(async (dir) => {
    const files = filesIn(dir);
    for (let round = 0; round < 40; round++) {
      const text: string[] = [];
      for (let i = 0, n = rand(400); i < n; i++) {
        const line = forms[rand(forms.length)](newCapId());
        // Now and then a torn line (a crash mid-append), or one form many times in a row.
        text.push(rand(15) === 0 ? line.slice(0, rand(line.length)) : line);
        if (rand(10) === 0) {
          const form = forms[rand(forms.length)];
          for (let k = rand(30); k > 0; k--) text.push(form(newCapId()));
        }
      }
      const body = text.join("\n") + (rand(4) === 0 ? "" : "\n");
      Deno.writeTextFileSync(files.revocationLog, body);
      const want = replayByJson(body, NOW);
      // when replayed
      await withLog(files, (log) => {
        // then it holds, counts and rewrites exactly what JSON.parse of each line gave
        const held = new Map(log.set.entries().map((e) => [e.cap_id, e.exp]));
        assert.deepEqual(held, want.held, `round ${round}`);
        for (const by of new Set([a, b, t, "7", ...want.counts.keys()])) {
          assert.equal(log.countBy(by), want.counts.get(by) ?? 0, `round ${round}, ${by}`);
        }
      });
      assert.equal(Deno.readTextFileSync(files.revocationLog), want.file, `round ${round}`);
    }
  });
});
