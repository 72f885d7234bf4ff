/**
 * Bad input never kills a service: garbage, oversize and half frames at
 * every socket, then a good request still gets its answer.
 */

import assert from "node:assert/strict";
import { socketPath } from "../../src/runtime/config.ts";
import { Client } from "../../src/server/client.ts";
import { decodeFrames, rawExchange, rawFrame, startNode } from "../helpers.ts";

const SERVICES = ["supervisor", "registry", "identity", "fs"] as const;

type Err = { ok: false; req_id: string; error: { code: number; name: string; message: string } };

Deno.test("bad input at every socket: clear errors, no crash, no hang", async (t) => {
  const node = await startNode();
  try {
    const pidsBefore = await node.childPids();
    for (const svc of SERVICES) {
      const path = socketPath(node.layout, svc);
      await t.step(`${svc}: oversize length is refused before the body is read`, async () => {
        const r = await rawExchange(path, rawFrame("", 0xffffffff), { quietMs: 2000 });
        const [res] = decodeFrames(r.data) as Err[];
        assert.equal(res.error.name, "INVALID_ARGUMENT");
        assert.match(res.error.message, /limit/);
        assert(r.closed, "connection should be closed");
      });
      await t.step(`${svc}: garbage bytes`, async () => {
        const junk = crypto.getRandomValues(new Uint8Array(3000));
        junk.set([0, 0, 0, 10]); // a small length, then noise as the body
        const r = await rawExchange(path, junk, { quietMs: 300 });
        const frames = decodeFrames(r.data) as Err[];
        assert(frames.length >= 1);
        assert.equal(frames[0].error.name, "INVALID_ARGUMENT");
      });
      await t.step(`${svc}: half a frame, then hang up`, async () => {
        const f = rawFrame('{"v":1,"req_id":"x","method":"fs.list"}');
        await rawExchange(path, f.subarray(0, 9), { quietMs: 50, closeWrite: true });
      });
      await t.step(`${svc}: envelope errors name the field`, async () => {
        const cases: [string, RegExp][] = [
          ["not json at all", /not valid JSON/],
          ["[1,2,3]", /JSON object/],
          ['{"v":2,"req_id":"a","method":"x.y"}', /^v: /],
          ['{"v":1,"method":"x.y"}', /^req_id: /],
          ['{"v":1,"req_id":"a","method":"nodot"}', /^method: /],
          [`{"v":1,"req_id":"a","method":"${svc}.nope"}`, /unknown method/],
          [`{"v":1,"req_id":"a","method":"${svc}.health","params":[1]}`, /^params: /],
          [`{"v":1,"req_id":"a","method":"${svc}.health","params":{"x":1}}`, /params\.x/],
        ];
        const bytes = cases.map(([body]) => rawFrame(body));
        const all = new Uint8Array(bytes.reduce((a, b) => a + b.length, 0));
        let off = 0;
        for (const b of bytes) {
          all.set(b, off);
          off += b.length;
        }
        // Several frames in one write: each gets its own answer.
        const r = await rawExchange(path, all, { quietMs: 500 });
        const frames = decodeFrames(r.data) as Err[];
        assert.equal(frames.length, cases.length, JSON.stringify(frames));
        // Answers come in order here: every handler is synchronous.
        for (const [i, [, re]] of cases.entries()) {
          assert.equal(frames[i].error.code, 1, JSON.stringify(frames[i]));
          assert.match(frames[i].error.message, re);
        }
      });
      await t.step(`${svc}: still answers a good request`, async () => {
        const c = await Client.connect(path);
        try {
          const res = await c.call<{ status: string }>(`${svc}.health`);
          assert.equal(res.status, "ok");
        } finally {
          await c.close();
        }
      });
    }
    assert.deepEqual(await node.childPids(), pidsBefore, "no service restarted");
  } finally {
    await node.stop();
  }
});
