/**
 * Unit tests for src/sources/key_set.ts: the key set read from identity.pub,
 * reloaded when it changes, and the lookup over it (an unknown key id waits
 * for one re-read that began after it).
 */

import assert from "node:assert/strict";
import { rfc3339 } from "../../src/token/claims.ts";
import type { KeySetDocument } from "../../src/token/key_set.ts";
import { generateSigningKey, publicPaserk, type SigningKey } from "../../src/token/keys.ts";
import { FileKeySetSource, KeySetLookup } from "../../src/sources/key_set.ts";
import { withTempDir } from "./support.ts";

/** The file source and the lookup over it, as Trust builds them. */
function publishedKeys(path: string, options: { onChange?: () => void } = {}): KeySetLookup {
  const source = new FileKeySetSource(path);
  if (options.onChange) source.subscribe(options.onChange);
  return new KeySetLookup(source);
}

function entry(key: SigningKey, notAfter?: number) {
  return {
    kid: key.kid,
    public: publicPaserk(key.publicKey),
    created: "2030-01-01T00:00:00Z",
    ...(notAfter !== undefined ? { not_after: rfc3339(notAfter) } : {}),
  };
}

function doc(keys: ReturnType<typeof entry>[]): KeySetDocument {
  return { v: 1, issuer: "identity@unit", active: keys[0]?.kid ?? "", keys };
}

function publish(path: string, document: unknown): void {
  Deno.writeTextFileSync(path + ".tmp", JSON.stringify(document));
  Deno.renameSync(path + ".tmp", path);
}

Deno.test("FileKeySetSource + KeySetLookup: a missing identity.pub means no keys yet, not an error", async () => {
  await withTempDir(async (dir) => {
    // given a path with no file
    const keys = publishedKeys(`${dir}/identity.pub`);
    // when asked for a key, then it is simply unknown
    assert.equal(await keys.get("k4.pid.nothing"), undefined);
    await keys.refresh();
    assert.deepEqual(keys.kids, []);
  });
});

Deno.test("FileKeySetSource + KeySetLookup: reloads when identity.pub changes, and only then", async () => {
  await withTempDir(async (dir) => {
    // given a published key set with key A
    const path = `${dir}/identity.pub`;
    const [a, b] = await Promise.all([generateSigningKey(), generateSigningKey()]);
    let changes = 0;
    const keys = publishedKeys(path, { onChange: () => changes++ });
    publish(path, doc([entry(a)]));
    // when A is looked up, then it is loaded
    assert.equal((await keys.get(a.kid))?.kid, a.kid);
    assert.equal(changes, 1);
    // and an unchanged file is not re-imported (no change reported)
    await keys.refresh();
    assert.equal(changes, 1);
    // when identity publishes a rotation (B active, A retired)
    publish(path, doc([entry(b), entry(a, Date.now() + 3600_000)]));
    // then a lookup of the new kid reloads and finds it
    assert.equal((await keys.get(b.kid))?.kid, b.kid);
    assert.deepEqual(keys.kids.sort(), [a.kid, b.kid].sort());
    assert.equal(changes, 2);
    // when A is dropped from the set
    publish(path, doc([entry(b)]));
    await keys.refresh();
    // then A no longer verifies
    assert.equal(await keys.get(a.kid), undefined);
    assert.deepEqual(keys.kids, [b.kid]);
    assert.equal(changes, 3);
  });
});

Deno.test("FileKeySetSource + KeySetLookup: the file is not re-read while its inode, size and mtime stay the same", async () => {
  await withTempDir(async (dir) => {
    // given a loaded key set holding A
    const path = `${dir}/identity.pub`;
    const [a, b] = await Promise.all([generateSigningKey(), generateSigningKey()]);
    const keys = publishedKeys(path);
    publish(path, doc([entry(a)]));
    await keys.refresh();
    const before = Deno.statSync(path);
    // when the file is overwritten in place with B (same length) and its mtime put back
    Deno.writeTextFileSync(path, JSON.stringify(doc([entry(b)])));
    Deno.utimeSync(path, before.atime!, before.mtime!);
    assert.equal(Deno.statSync(path).size, before.size);
    await keys.refresh();
    // then the loaded set is unchanged: the file was not read again
    assert.deepEqual(keys.kids, [a.kid]);
    // and once the mtime moves, the new content is loaded
    Deno.utimeSync(path, before.atime!, new Date(before.mtime!.getTime() + 5000));
    await keys.refresh();
    assert.deepEqual(keys.kids, [b.kid]);
  });
});

Deno.test("FileKeySetSource + KeySetLookup: a key published just before a lookup is found, however recent the last check", async () => {
  await withTempDir(async (dir) => {
    // given a key set checked a moment ago (empty), and a check still running
    const path = `${dir}/identity.pub`;
    const a = await generateSigningKey();
    const keys = publishedKeys(path);
    publish(path, doc([]));
    await keys.refresh();
    const running = keys.refresh();
    // when A is published and looked up right away, many times at once
    publish(path, doc([entry(a)]));
    const found = await Promise.all(Array.from({ length: 20 }, () => keys.get(a.kid)));
    await running;
    // then every lookup finds it (they waited for a check that began after them)
    assert.ok(found.every((k) => k?.kid === a.kid));
  });
});

Deno.test("FileKeySetSource + KeySetLookup: a file that appears after a miss is found on the next lookup", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/identity.pub`;
    const a = await generateSigningKey();
    const keys = publishedKeys(path);
    assert.equal(await keys.get(a.kid), undefined);
    publish(path, doc([entry(a)]));
    assert.equal((await keys.get(a.kid))?.kid, a.kid);
  });
});
