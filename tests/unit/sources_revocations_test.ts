/**
 * Unit tests for src/sources/revocations.ts: the revocation list file in the
 * runtime dir read incrementally (held open, caught up with before each
 * request), its snapshot, all delivered through the change feed.
 */

import assert from "node:assert/strict";
import { newCapId } from "../../src/token/claims.ts";
import { b64url, fromB64url, generateSigningKey, importVerifyKey } from "../../src/token/keys.ts";
import {
  RevocationSet,
  type RevokedEntry,
  signRevocationList,
} from "../../src/token/revocation_set.ts";
import { FileRevocationSource, LIST_REPLACED_LINE } from "../../src/sources/revocations.ts";
import type { KeyLookup } from "../../src/token/key_set.ts";
import { CountingLookup, ISSUER, withTempDir } from "./support.ts";

const SOON = Math.floor(Date.now() / 1000) + 3600;

/** A signed list with `from` replaced by `to` in its payload, its signature kept: a forgery. */
function tamper(signed: string, from: string, to: string): string {
  const [v, purpose, body, footer] = signed.split(".");
  const bytes = fromB64url(body)!;
  const text = new TextDecoder().decode(bytes.subarray(0, bytes.length - 64)).replace(from, to);
  const message = new TextEncoder().encode(text);
  const out = new Uint8Array(message.length + 64);
  out.set(message);
  out.set(bytes.subarray(bytes.length - 64), message.length);
  return `${v}.${purpose}.${b64url(out)}.${footer}`;
}

/** A file source whose feed fills `set`; load() polls and returns the newly revoked ids. */
function fileOf(path: string, keys: KeyLookup) {
  const source = new FileRevocationSource(path, { keys, issuer: ISSUER });
  let target = new RevocationSet();
  let added: string[] = [];
  source.subscribe((entries) => added.push(...target.add(entries)));
  return {
    source,
    async load(set: RevocationSet): Promise<string[]> {
      target = set;
      added = [];
      await source.poll();
      return added;
    },
  };
}

Deno.test("FileRevocationSource: a missing file is nothing revoked yet", async () => {
  await withTempDir(async (dir) => {
    const set = new RevocationSet();
    const keys = new CountingLookup();
    assert.deepEqual(await fileOf(`${dir}/revocations`, keys).load(set), []);
    assert.equal(set.size, 0);
  });
});

Deno.test("FileRevocationSource: loads the list when the file changed, and only then", async () => {
  await withTempDir(async (dir) => {
    // given a revocation file with one entry
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const [a, b] = [newCapId(), newCapId()];
    const write = async (entries: RevokedEntry[]) => {
      Deno.writeTextFileSync(
        `${path}.tmp`,
        (await signRevocationList(key, ISSUER, entries)) + "\n",
      );
      Deno.renameSync(`${path}.tmp`, path);
    };
    await write([{ cap_id: a, exp: SOON }]);
    const file = fileOf(path, keys);
    const set = new RevocationSet();
    // when loaded, then the entry is merged
    assert.deepEqual(await file.load(set), [a]);
    assert.equal(keys.calls, 1);
    // when loaded again without a change, then the file is not verified again
    assert.deepEqual(await file.load(set), []);
    assert.equal(keys.calls, 1);
    // when identity rewrites it with a second entry, then only the new one is reported
    await write([{ cap_id: a, exp: SOON }, { cap_id: b, exp: SOON }]);
    assert.deepEqual(await file.load(set), [b]);
    assert.equal(keys.calls, 2);
    assert.ok(set.has(a) && set.has(b));
  });
});

Deno.test("FileRevocationSource: a line signed by a key not known yet is retried on the next load", async () => {
  await withTempDir(async (dir) => {
    // given a file signed by a key the verifier does not know yet
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup();
    const a = newCapId();
    Deno.writeTextFileSync(
      path,
      (await signRevocationList(key, ISSUER, [{ cap_id: a, exp: SOON }])) + "\n",
    );
    const file = fileOf(path, keys);
    const set = new RevocationSet();
    // when loaded, then nothing is merged (and nothing throws)
    assert.deepEqual(await file.load(set), []);
    assert.equal(set.size, 0);
    // and once the key is known, the same unchanged file loads
    keys.add(await importVerifyKey(key.publicKey));
    assert.deepEqual(await file.load(set), [a]);
  });
});

Deno.test("FileRevocationSource: lines appended later are read from where it left off", async () => {
  await withTempDir(async (dir) => {
    // given a file of one line, already read
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const line = async (id: string) =>
      (await signRevocationList(key, ISSUER, [{ cap_id: id, exp: SOON }])) + "\n";
    const [a, b, c] = [newCapId(), newCapId(), newCapId()];
    Deno.writeTextFileSync(path, await line(a));
    const file = fileOf(path, keys);
    const set = new RevocationSet();
    assert.deepEqual(await file.load(set), [a]);
    // when a whole line and half of another are appended
    const third = await line(c);
    Deno.writeTextFileSync(path, (await line(b)) + third.slice(0, 20), { append: true });
    // then only the whole line is merged, verifying nothing twice
    const calls = keys.calls;
    assert.deepEqual(await file.load(set), [b]);
    assert.equal(keys.calls, calls + 1);
    // and the rest of the torn line, once written, is read too
    Deno.writeTextFileSync(path, third.slice(20), { append: true });
    assert.deepEqual(await file.load(set), [c]);
  });
});

Deno.test("FileRevocationSource: lines checked with WebCrypto (a promise each) are delivered whole and in order, across reads", async () => {
  await withTempDir(async (dir) => {
    // given a key that verifies with WebCrypto (as registry's and supervisor's do), and
    // 400 one-entry lines in one file: more than one read's 64 KiB, so a line spans two reads
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey, { webCrypto: true })]);
    const line = async (id: string) =>
      (await signRevocationList(key, ISSUER, [{ cap_id: id, exp: SOON }])) + "\n";
    const ids = Array.from({ length: 400 }, () => newCapId());
    const lines = await Promise.all(ids.map(line));
    assert.ok(lines.join("").length > 64 * 1024);
    Deno.writeTextFileSync(path, lines.join(""));
    const file = fileOf(path, keys);
    const set = new RevocationSet();
    // when caught up, then every entry is delivered, in the file's order
    assert.deepEqual(await file.load(set), ids);
    // and when 300 more lines and half of another are appended, then the whole ones follow
    const more = Array.from({ length: 300 }, () => newCapId());
    const last = newCapId();
    const torn = await line(last);
    Deno.writeTextFileSync(path, (await Promise.all(more.map(line))).join("") + torn.slice(0, 40), {
      append: true,
    });
    assert.deepEqual(await file.load(set), more);
    // and the torn line once its rest is written
    Deno.writeTextFileSync(path, torn.slice(40), { append: true });
    assert.deepEqual(await file.load(set), [last]);
    assert.equal(set.size, 701);
  });
});

Deno.test("FileRevocationSource: a line that can never verify is skipped, not a wall", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const a = newCapId();
    const good = (await signRevocationList(key, ISSUER, [{ cap_id: a, exp: SOON }])) + "\n";
    Deno.writeTextFileSync(path, "v4.public.garbage\n" + good);
    assert.deepEqual(await fileOf(path, keys).load(new RevocationSet()), [a]);
  });
});

Deno.test("FileRevocationSource: the snapshot is the whole file, and leaves the feed where it was", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const [a, b] = [newCapId(), newCapId()];
    const line = async (id: string) =>
      (await signRevocationList(key, ISSUER, [{ cap_id: id, exp: SOON }])) + "\n";
    Deno.writeTextFileSync(path, await line(a));
    const file = fileOf(path, keys);
    assert.deepEqual(await file.load(new RevocationSet()), [a]);
    Deno.writeTextFileSync(path, await line(b), { append: true });
    // the snapshot has both entries
    const all = await file.source.snapshot();
    assert.deepEqual(all.map((e: RevokedEntry) => e.cap_id), [a, b]);
    // and the feed still delivers b, once
    const set = new RevocationSet();
    assert.deepEqual(await file.load(set), [b]);
    assert.deepEqual(await file.load(set), []);
  });
});

Deno.test("FileRevocationSource: catchUp delivers the lines appended since, before it returns, without a promise", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const source = new FileRevocationSource(path, { keys, issuer: ISSUER });
    const seen: string[] = [];
    source.subscribe((entries) => seen.push(...[...entries].map((e) => e.cap_id)));
    try {
      // no file yet: nothing revoked, no error
      assert.equal(source.catchUp(), undefined);
      const [a, b, c] = [newCapId(), newCapId(), newCapId()];
      Deno.writeTextFileSync(
        path,
        `${await signRevocationList(key, ISSUER, [{ cap_id: a, exp: SOON }])}\n`,
      );
      assert.equal(source.catchUp(), undefined);
      assert.deepEqual(seen, [a]);
      // nothing new: nothing verified again
      const lookups = keys.calls;
      assert.equal(source.catchUp(), undefined);
      assert.equal(keys.calls, lookups);
      // a line being appended (no newline yet) waits for its end
      const second = await signRevocationList(key, ISSUER, [{ cap_id: b, exp: SOON }]);
      Deno.writeTextFileSync(path, second.slice(0, 50), { append: true });
      source.catchUp();
      assert.deepEqual(seen, [a]);
      Deno.writeTextFileSync(path, `${second.slice(50)}\n`, { append: true });
      source.catchUp();
      assert.deepEqual(seen, [a, b]);
      // a forged line (payload changed after signing) is skipped, the next one read
      const forged = tamper(second, b, c);
      const third = await signRevocationList(key, ISSUER, [{ cap_id: c, exp: SOON }]);
      Deno.writeTextFileSync(path, `${forged}\n${third}\n`, { append: true });
      source.catchUp();
      assert.deepEqual(seen, [a, b, c]);
    } finally {
      source.close();
    }
  });
});

Deno.test("FileRevocationSource: after the replaced-line it reads the file the path names now, whole", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const source = new FileRevocationSource(path, { keys, issuer: ISSUER });
    const seen: string[] = [];
    source.subscribe((entries) => seen.push(...[...entries].map((e) => e.cap_id)));
    const list = (id: string) => signRevocationList(key, ISSUER, [{ cap_id: id, exp: SOON }]);
    try {
      const [a, b, c, d] = [newCapId(), newCapId(), newCapId(), newCapId()];
      Deno.writeTextFileSync(path, `${await list(a)}\n`);
      source.catchUp();
      // identity's way: the replaced-line, then a new file renamed over the path
      Deno.writeTextFileSync(path, `${LIST_REPLACED_LINE}\n`, { append: true });
      Deno.writeTextFileSync(`${path}.tmp`, `${await list(a)}\n${await list(b)}\n`);
      Deno.renameSync(`${path}.tmp`, path);
      source.catchUp();
      assert.deepEqual(seen, [a, a, b]);
      // and lines appended to the new file after that
      Deno.writeTextFileSync(path, `${await list(c)}\n`, { append: true });
      source.catchUp();
      assert.deepEqual(seen.slice(3), [c]);
      // identity stopped between the replaced-line and the rename: the same
      // file is read on, and the path looked at until it names another
      Deno.writeTextFileSync(path, `${LIST_REPLACED_LINE}\n`, { append: true });
      source.catchUp();
      Deno.writeTextFileSync(path, `${await list(d)}\n`, { append: true });
      source.catchUp();
      assert.deepEqual(seen.slice(3), [c, d]);
    } finally {
      source.close();
    }
  });
});

Deno.test("FileRevocationSource: a line signed by a key not loaded yet is verified once the key is looked up", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const verify = await importVerifyKey(key.publicKey);
    // a lookup that finds the key only by reading it again (a promise)
    const keys: KeyLookup = {
      get: (kid) => Promise.resolve(kid === verify.kid ? verify : undefined),
    };
    const source = new FileRevocationSource(path, { keys, issuer: ISSUER });
    const seen: string[] = [];
    source.subscribe((entries) => seen.push(...[...entries].map((e) => e.cap_id)));
    try {
      const [a, b] = [newCapId(), newCapId()];
      const lines = await Promise.all(
        [a, b].map((id) => signRevocationList(key, ISSUER, [{ cap_id: id, exp: SOON }])),
      );
      Deno.writeTextFileSync(path, lines.join("\n") + "\n");
      const caught = source.catchUp();
      assert.ok(caught instanceof Promise);
      // a second catch-up meanwhile waits for the same lines
      const again = source.catchUp();
      await caught;
      await again;
      assert.deepEqual(seen, [a, b]);
    } finally {
      source.close();
    }
  });
});
