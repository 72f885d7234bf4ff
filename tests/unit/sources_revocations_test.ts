/**
 * Unit tests for src/sources/revocations.ts: the revocation list file in the
 * runtime dir read incrementally, its snapshot, and identity's pushes, all
 * delivered through the change feed.
 */

import assert from "node:assert/strict";
import { newCapId } from "../../src/token/claims.ts";
import { b64url, fromB64url, generateSigningKey, importVerifyKey } from "../../src/token/keys.ts";
import {
  RevocationSet,
  type RevokedEntry,
  signRevocationList,
} from "../../src/token/revocation_set.ts";
import { FileRevocationSource } from "../../src/sources/revocations.ts";
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

Deno.test("FileRevocationSource: a push is delivered to the feed before it resolves; a forged one throws", async () => {
  await withTempDir(async (dir) => {
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const source = new FileRevocationSource(`${dir}/revocations`, { keys, issuer: ISSUER });
    const seen: string[] = [];
    source.subscribe((entries) => seen.push(...entries.map((e) => e.cap_id)));
    const a = newCapId();
    await source.push(await signRevocationList(key, ISSUER, [{ cap_id: a, exp: SOON }]));
    assert.deepEqual(seen, [a]);
    const other = await generateSigningKey();
    const forged = await signRevocationList(other, ISSUER, [{ cap_id: newCapId(), exp: SOON }]);
    await assert.rejects(async () => await source.push(forged));
    assert.deepEqual(seen, [a]);
  });
});

Deno.test("FileRevocationSource: a poll skips the line of a list already pushed, and still checks every other line", async () => {
  await withTempDir(async (dir) => {
    // given a list pushed to the source, which identity also appends to the file
    const path = `${dir}/revocations`;
    const key = await generateSigningKey();
    const keys = new CountingLookup([await importVerifyKey(key.publicKey)]);
    const source = new FileRevocationSource(path, { keys, issuer: ISSUER });
    const seen: string[] = [];
    source.subscribe((entries) => seen.push(...entries.map((e) => e.cap_id)));
    const [a, b, c] = [newCapId(), newCapId(), newCapId()];
    const pushed = await signRevocationList(key, ISSUER, [{ cap_id: a, exp: SOON }]);
    source.push(pushed);
    assert.deepEqual(seen, [a]);
    const lookups = keys.calls;
    // when the file holds that line, a forged one (its payload changed after
    // signing) and a line never pushed
    const later = await signRevocationList(key, ISSUER, [{ cap_id: b, exp: SOON }]);
    const forged = tamper(later, b, c);
    Deno.writeTextFileSync(path, `${pushed}\n${forged}\n${later}\n`);
    await source.poll();
    // then the pushed line is neither verified nor delivered again, the
    // forged one is still refused and the new one delivered
    assert.deepEqual(seen, [a, b]);
    assert.equal(keys.calls - lookups, 2, "only the two lines not pushed are verified");
    // and the pushed line with another payload, same signature, is verified
    // (the signature was met once already) and refused
    Deno.writeTextFileSync(path, `${tamper(pushed, a, c)}\n`, { append: true });
    await source.poll();
    assert.deepEqual(seen, [a, b]);
  });
});
