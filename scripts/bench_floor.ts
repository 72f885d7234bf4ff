/**
 * The floor of the bench's rates (`deno task bench --floor`): one program,
 * run as identity or as fs with that service's own permission, V8 and
 * environment settings, that answers the bench's requests doing only what
 * no implementation of the operation can skip, and nothing Strata adds
 * (no audit, no caller check beyond a cached token, no quotas, no issued
 * record, no limits or budgets):
 *
 * - every request but a health check: the caller's token found in a cache of
 *   the tokens seen (its signature checked on first sight), not revoked, not
 *   expired (identity's caller is the bench's operator token, which the
 *   floor's identity signs at start from claims shaped as a node's: every
 *   right, so each request carries as many bytes);
 * - identity.issue: one Ed25519 signature over a token's claims;
 * - fs.list: the 22 `lstat`s fs makes (the root, the folder and its 20
 *   entries: a size is never served from memory), after one signature check
 *   of a token not seen before (its first use) and a read of the revocation
 *   list's new lines (revocations in effect before the next request);
 * - fs.open / fs.read: an open, and a `pread` answered in base64;
 * - identity.revoke: every revocation under way in one batch, its lines
 *   written to a log and fdatasynced, one signed line appended to the list
 *   file fs reads, then the answers;
 * - supervisor and registry (for the memory figure only): a socket that
 *   answers, and a follower of the revocation list.
 *
 * With `records` after its arguments (`deno task bench --floor-records`),
 * it also keeps the records Strata's protocol requires of these operations
 * (api/protocol.md): an audit line for each `cap.issued`, `cap.revoked`,
 * `fs.open` and `fs.read`, written to the state dir's audit.log, and a line
 * of the issued record (what `identity.list` answers from) for each issue,
 * both gathered in memory and written at most every 100 ms or 64 KiB, as
 * cheaply as a program can keep them.
 *
 * For the memory after the load, each role holds what any implementation
 * must: every verifier (fs, supervisor, registry) follows the revocation
 * list, checking each new line's signature (fs with node:crypto, which it
 * loads anyway; the two others with WebCrypto, which loads no Node layer)
 * and keeping the revoked ids until the load is over, 16 bytes each in one
 * table, and identity keeps the ids it revoked; fs keeps at most 1,024
 * verified tokens, as fs does. Each role runs V8's memory-reducing
 * collection once it has been quiet for a second after work, as the
 * services do.
 *
 * Run the same way and driven by the same client as the nodes, its rates
 * are, within its own tuning (it is kept plain, not tuned), the most a Deno
 * service could reach on this machine: a target ratio well above the
 * floor's cannot be reached.
 *
 *   deno run <the service's flags> scripts/bench_floor.ts supervisor|registry|identity|fs \
 *     RUNTIME_DIR STATE_DIR EXPORT_ROOT [records]
 *
 * (scripts/bench_floor_command.ts gives that command.) It imports nothing of
 * Strata, so what it holds in memory is Deno's and its own.
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The frames of one connection, written one after the other. */
class Out {
  #busy = false;
  #queue: Uint8Array[] = [];
  #spare?: Uint8Array;
  constructor(readonly conn: Deno.Conn) {}

  send(result: unknown, reqId: string): void {
    this.sendWith(JSON.stringify(result), reqId);
  }

  /**
   * Sends a result made of `json` around an ASCII string `ascii` (a read's
   * base64), encoded straight into the frame.
   */
  sendWith(json: string, reqId: string, ascii = "", after = ""): void {
    const head = encoder.encode(
      `{"v":1,"req_id":${JSON.stringify(reqId)},"ok":true,"result":${json}`,
    );
    const tail = encoder.encode(`${after}}`);
    const length = head.length + ascii.length + tail.length;
    // A frame's buffer is used again once written (no fresh memory for each answer).
    const spare = this.#spare;
    this.#spare = undefined;
    const frame = spare && spare.length >= 4 + length
      ? spare.subarray(0, 4 + length)
      : new Uint8Array(Math.max(4096, 4 + length)).subarray(0, 4 + length);
    new DataView(frame.buffer).setUint32(0, length);
    frame.set(head, 4);
    encoder.encodeInto(ascii, frame.subarray(4 + head.length));
    frame.set(tail, 4 + head.length + ascii.length);
    if (this.#busy) this.#queue.push(frame);
    else this.#write(frame);
  }

  #write(bytes: Uint8Array): void {
    this.#busy = true;
    this.conn.write(bytes).then((n) => {
      if (n < bytes.length) return this.#write(bytes.subarray(n));
      this.#spare = new Uint8Array(bytes.buffer);
      const next = this.#queue.shift();
      if (next) this.#write(next);
      else this.#busy = false;
    }, () => this.conn.close());
  }
}

interface Req {
  req_id: string;
  method: string;
  auth?: { token: string };
  params: Record<string, unknown>;
}

/** Reads frames off `conn` and hands each request to `handle`. */
async function serve(conn: Deno.Conn, handle: (req: Req, out: Out) => void): Promise<void> {
  const out = new Out(conn);
  let buf = new Uint8Array(64 * 1024);
  let have = 0;
  try {
    while (true) {
      if (have === buf.length) {
        const bigger = new Uint8Array(buf.length * 2);
        bigger.set(buf);
        buf = bigger;
      }
      const n = await conn.read(buf.subarray(have));
      if (n === null) break;
      have += n;
      let off = 0;
      while (have - off >= 4) {
        const len = new DataView(buf.buffer, off).getUint32(0);
        if (have - off - 4 < len) break;
        work++;
        handle(JSON.parse(decoder.decode(buf.subarray(off + 4, off + 4 + len))), out);
        off += 4 + len;
      }
      buf.copyWithin(0, off, have);
      have -= off;
    }
  } catch { /* the peer went away */ }
  conn.close();
}

async function listen(
  runtimeDir: string,
  service: string,
  handle: (req: Req, out: Out) => void,
): Promise<void> {
  const path = `${runtimeDir}/${service}.sock`;
  await Deno.remove(path).catch(() => {});
  for await (const conn of Deno.listen({ transport: "unix", path })) serve(conn, handle);
}

/** Requests and list lines handled: the idle collection runs after a quiet second that follows some. */
let work = 0;

/**
 * Runs V8's memory-reducing collection (--expose-gc, which the services'
 * V8 flags include) once a second of no work follows some work.
 */
function collectWhenQuiet(): void {
  const gc = (globalThis as { gc?: (o: Record<string, string>) => void }).gc;
  let seen = 0;
  let collected = true;
  const tick = setInterval(() => {
    if (work !== seen) {
      seen = work;
      collected = false;
    } else if (!collected) {
      collected = true;
      gc?.({ type: "major", execution: "sync", flavor: "last-resort" });
    }
  }, 1000);
  Deno.unrefTimer(tick);
}

/**
 * Revoked ids (32 hex digits each) as four words in an open-addressed table
 * grown at half full: 16 bytes an id, 32 with the free slots.
 */
class Revoked {
  #t = new Uint32Array(4 * 1024);
  #n = 0;
  get size(): number {
    return this.#n;
  }
  add(id: string): void {
    if (id.length !== 32 || this.has(id)) return;
    if (2 * (this.#n + 1) > this.#t.length / 4) {
      const old = this.#t;
      this.#t = new Uint32Array(old.length * 2);
      for (let i = 0; i < old.length; i += 4) if (old[i] | old[i + 1]) this.#put(old, i);
    }
    const w = new Uint32Array(4);
    for (let i = 0; i < 4; i++) w[i] = parseInt(id.slice(i * 8, i * 8 + 8), 16);
    this.#put(w, 0);
    this.#n++;
  }
  #put(from: Uint32Array, at: number): void {
    const mask = this.#t.length / 4 - 1;
    let slot = from[at] & mask;
    while (this.#t[slot * 4] | this.#t[slot * 4 + 1]) slot = (slot + 1) & mask;
    this.#t.set(from.subarray(at, at + 4), slot * 4);
  }
  has(id: string): boolean {
    const mask = this.#t.length / 4 - 1;
    const w0 = parseInt(id.slice(0, 8), 16) >>> 0;
    for (let slot = w0 & mask;; slot = (slot + 1) & mask) {
      const t = this.#t;
      if (!(t[slot * 4] | t[slot * 4 + 1])) return false;
      if (
        t[slot * 4] === w0 && t[slot * 4 + 1] === parseInt(id.slice(8, 16), 16) >>> 0 &&
        t[slot * 4 + 2] === parseInt(id.slice(16, 24), 16) >>> 0 &&
        t[slot * 4 + 3] === parseInt(id.slice(24), 16) >>> 0
      ) return true;
    }
  }
}

/** A v4.public token's signed message and its signature (the floor's tokens have no footer). */
function parts(token: string): { message: Uint8Array; signature: Uint8Array } {
  const body = Uint8Array.fromBase64(token.slice("v4.public.".length), { alphabet: "base64url" });
  return {
    message: body.subarray(0, body.length - 64),
    signature: body.subarray(body.length - 64),
  };
}

/**
 * Follows the revocation list identity appends to: reads the new lines,
 * checks each one's signature with `check` and adds its ids to `revoked`.
 * Returns the catch-up (a promise only when `check` gives one).
 */
function follow(
  path: string,
  revoked: Revoked,
  check: (message: Uint8Array, signature: Uint8Array) => boolean | Promise<boolean>,
): () => void | Promise<void> {
  const file = Deno.openSync(path, { read: true });
  const chunk = new Uint8Array(64 * 1024);
  const lines = new TextDecoder();
  let rest = "";
  let busy: Promise<void> | undefined;
  // One line: its signature checked, then its ids kept (a line not identity's is ignored).
  const one = (line: string): void | Promise<void> => {
    const { message, signature } = parts(line);
    const take = (ok: boolean) => {
      if (ok) { for (const id of JSON.parse(decoder.decode(message)).revoked) revoked.add(id); }
    };
    const ok = check(message, signature);
    return ok instanceof Promise ? ok.then(take) : take(ok);
  };
  const catchUp = (): void | Promise<void> => {
    if (busy) return busy.then(catchUp);
    for (let n = file.readSync(chunk); n; n = file.readSync(chunk)) {
      const text = rest + lines.decode(chunk.subarray(0, n), { stream: true });
      const all = text.split("\n");
      rest = all.pop()!;
      for (let i = 0; i < all.length; i++) {
        work++;
        const pending = one(all[i]);
        if (pending instanceof Promise) {
          // The lines after it wait for it (in order), then the file is read on.
          const after = all.slice(i + 1);
          busy = pending.then(async () => {
            for (const line of after) await one(line);
          }).finally(() => (busy = undefined));
          return busy.then(catchUp);
        }
      }
    }
  };
  return catchUp;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const b64url = (b: Uint8Array) => b.toBase64({ alphabet: "base64url", omitPadding: true });

/**
 * A caller's check, as every service must make one: a token seen before is
 * found in a bounded cache (1,024 tokens, as fs keeps), one not seen has its
 * signature checked (`verify`) and its claims read; either way it is refused
 * (an error: the floor hangs up) once revoked or expired.
 */
function callerCheck(
  verify: (message: Uint8Array, signature: Uint8Array) => boolean,
  revoked: Revoked,
): (token?: string) => { capId: string; expMs: number } {
  const known = new Map<string, { capId: string; expMs: number }>();
  return (token = "") => {
    let cap = known.get(token);
    if (cap === undefined) {
      const { message, signature } = parts(token);
      if (!verify(message, signature)) throw new Error("bad token");
      if (known.size >= 1024) known.delete(known.keys().next().value!);
      const claims = JSON.parse(decoder.decode(message));
      cap = { capId: String(claims.cap_id), expMs: Date.parse(claims.exp) };
      known.set(token, cap);
    }
    if (revoked.has(cap.capId) || !(cap.expMs > Date.now())) throw new Error("refused");
    return cap;
  };
}

/**
 * Lines appended to `path`, gathered in memory and written at most every
 * 100 ms or 64 KiB (for the records of `records` mode); `line` does nothing
 * when the file is not kept.
 */
class Lines {
  #file?: Deno.FsFile;
  #text = "";
  #timer?: ReturnType<typeof setTimeout>;
  constructor(path: string | undefined) {
    if (path) this.#file = Deno.openSync(path, { append: true, create: true, mode: 0o600 });
  }
  line(text: string): void {
    if (!this.#file) return;
    this.#text += text;
    if (this.#text.length >= 65536) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), 100);
  }
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#text === "") return;
    this.#file!.writeSync(encoder.encode(this.#text));
    this.#text = "";
  }
}

/** An audit line as the services write one: time, event, program, then the fields. */
function auditLine(event: string, program: string, fields: Record<string, unknown>): string {
  let line = `{"ts":"${new Date().toISOString()}","event":"${event}","program":"${program}"`;
  for (const k in fields) line += `,"${k}":${JSON.stringify(fields[k])}`;
  return line + "}\n";
}

/** identity's floor: issues and revokes. */
async function floorIdentity(
  runtimeDir: string,
  stateDir: string,
  records: boolean,
): Promise<void> {
  // Loaded by the roles that need them (a stand-in that only answers loads no Node layer).
  const { generateKeyPairSync, sign, verify } = await import("node:crypto");
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const PUB = `${runtimeDir}/identity.pub`;
  const LIST = `${runtimeDir}/revocations`;
  Deno.writeFileSync(PUB, publicKey.export({ type: "spki", format: "der" }));
  const log = Deno.openSync(`${stateDir}/revocations.log`, { append: true, create: true });
  const list = Deno.openSync(LIST, { append: true, create: true });
  const signed = (claims: unknown) => {
    const m = encoder.encode(JSON.stringify(claims));
    const body = new Uint8Array(m.length + 64);
    body.set(m);
    body.set(sign(null, m, privateKey), m.length);
    return `v4.public.${b64url(body)}`;
  };
  // Identity judges its callers' tokens too: it keeps the ids it revoked.
  const revoked = new Revoked();
  const audit = new Lines(records ? `${stateDir}/audit.log` : undefined);
  const issued = new Lines(records ? `${stateDir}/issued.log` : undefined);
  // Revocations wait for the others under way (as identity's group commit does).
  let queue: { capId: string; by: string; reqId: string; out: Out }[] = [];
  let writing = 0;
  let concurrency = 1;
  let flushing = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let gathered = false;
  const kick = () => {
    if (flushing || queue.length === 0) return;
    if (queue.length >= concurrency || gathered) {
      clearTimeout(timer);
      timer = undefined;
      gathered = false;
      flush();
    } else if (timer === undefined) {
      timer = setTimeout(() => {
        timer = undefined;
        gathered = true;
        concurrency = Math.max(1, queue.length + writing);
        kick();
      }, 1);
    }
  };
  const flush = async () => {
    flushing = true;
    const batch = queue;
    queue = [];
    writing += batch.length;
    const at = new Date().toISOString();
    log.writeSync(encoder.encode(
      batch.map((q) => `{"cap_id":"${q.capId}","at":"${at}"}\n`).join(""),
    ));
    const synced = log.syncData();
    list.writeSync(encoder.encode(`${signed({ revoked: batch.map((q) => q.capId), at })}\n`));
    await synced;
    for (const q of batch) revoked.add(q.capId);
    writing -= batch.length;
    for (const q of batch) {
      audit.line(auditLine("cap.revoked", "identity", { cap_id: q.capId, by: q.by }));
      q.out.send({ revoked: true }, q.reqId);
    }
    flushing = false;
    kick();
  };
  // The operator's token, signed here: of the claims the bench gives (those of a node's
  // operator token, so a request carries as many bytes), or of a short default.
  const now = Date.now();
  let operator: Record<string, unknown> = {
    cap_id: hex(crypto.getRandomValues(new Uint8Array(16))),
    sub: "operator",
    iat: new Date(now).toISOString(),
    exp: new Date(now + 365 * 24 * 3600_000).toISOString(),
  };
  try {
    operator = JSON.parse(Deno.readTextFileSync(`${stateDir}/operator.claims`));
  } catch { /* the default */ }
  Deno.writeTextFileSync(`${stateDir}/operator.token`, `${signed(operator)}\n`, { mode: 0o600 });
  const check = callerCheck((m, sig) => verify(null, m, publicKey, sig), revoked);
  await listen(runtimeDir, "identity", (req, out) => {
    const by = req.method === "identity.health" ? undefined : check(req.auth?.token);
    if (req.method === "identity.issue") {
      const now = Date.now();
      const capId = hex(crypto.getRandomValues(new Uint8Array(16)));
      const ttl = Number(req.params.ttl_seconds ?? 3600);
      const exp = new Date(now + ttl * 1000).toISOString();
      const token = signed({
        iss: "strata:identity",
        sub: "floor",
        aud: req.params.service,
        actions: req.params.actions,
        path_prefix: req.params.path_prefix,
        iat: new Date(now).toISOString(),
        exp,
        cap_id: capId,
      });
      if (records) {
        const { service, actions } = req.params;
        audit.line(
          auditLine("cap.issued", "identity", {
            cap_id: capId,
            sub: "floor",
            service,
            actions,
            exp,
          }),
        );
        issued.line(
          `${
            JSON.stringify({
              cap_id: capId,
              sub: "floor",
              service,
              actions,
              iat: now,
              exp,
              chain: [],
            })
          }\n`,
        );
      }
      out.send({ token, cap_id: capId, expires_at: exp }, req.req_id);
    } else if (req.method === "identity.revoke") {
      queue.push({ capId: String(req.params.cap_id), by: by!.capId, reqId: req.req_id, out });
      concurrency = Math.max(concurrency, queue.length + writing);
      kick();
    } else out.send({}, req.req_id);
  });
}

/** fs's floor: lists, opens and reads. */
async function floorFs(
  runtimeDir: string,
  exportRoot: string,
  stateDir: string,
  records: boolean,
): Promise<void> {
  const { createPublicKey, verify } = await import("node:crypto");
  const { Buffer } = await import("node:buffer");
  const { closeSync, openSync, readSync } = await import("node:fs");
  const PUB = `${runtimeDir}/identity.pub`;
  const LIST = `${runtimeDir}/revocations`;
  const key = createPublicKey({
    key: Buffer.from(Deno.readFileSync(PUB)),
    format: "der",
    type: "spki",
  });
  const revoked = new Revoked();
  // The revocation list's new lines, read before each request is judged and every second.
  const catchUp = follow(LIST, revoked, (m, sig) => verify(null, m, key, sig)) as () => void;
  const poll = setInterval(catchUp, 1000);
  Deno.unrefTimer(poll);
  const caller = callerCheck((m, sig) => verify(null, m, key, sig), revoked);
  const check = (token?: string) => {
    catchUp();
    return caller(token);
  };
  const audit = new Lines(records ? `${stateDir}/audit.log` : undefined);
  const names = new Map<string, string[]>();
  const files = new Map<string, number>();
  const chunk = new Uint8Array(1024 * 1024);
  await listen(runtimeDir, "fs", (req, out) => {
    if (req.method === "fs.health") return out.send({}, req.req_id);
    const cap = check(req.auth?.token);
    const p = req.params;
    if (req.method === "fs.list") {
      const path = String(p.path);
      Deno.lstatSync(exportRoot);
      Deno.lstatSync(path);
      let these = names.get(path);
      if (!these) names.set(path, these = [...Deno.readDirSync(path)].map((e) => e.name).sort());
      const entries = these.map((name) => {
        const st = Deno.lstatSync(`${path}/${name}`);
        return { name, is_dir: st.isDirectory, is_symlink: st.isSymlink, size: st.size };
      });
      out.send({ path, entries, truncated: false }, req.req_id);
    } else if (req.method === "fs.open") {
      const handle = hex(crypto.getRandomValues(new Uint8Array(16)));
      files.set(handle, openSync(String(p.path), "r"));
      if (records) {
        audit.line(auditLine("fs.open", "fs", { cap_id: cap.capId, path: p.path, handle }));
      }
      out.send({ handle }, req.req_id);
    } else if (req.method === "fs.read") {
      const size = Math.min(Number(p.size), chunk.length);
      const n = readSync(files.get(String(p.handle))!, chunk, 0, size, Number(p.offset));
      const data = chunk.subarray(0, n).toBase64();
      if (records) {
        audit.line(
          auditLine("fs.read", "fs", {
            cap_id: cap.capId,
            handle: p.handle,
            offset: p.offset,
            bytes: n,
          }),
        );
      }
      out.sendWith('{"data":"', req.req_id, data, `","bytes_read":${n},"eof":${n < size}}`);
    } else if (req.method === "fs.close") {
      closeSync(files.get(String(p.handle))!);
      files.delete(String(p.handle));
      out.send({}, req.req_id);
    } else out.send({}, req.req_id);
  });
}

/**
 * supervisor's and registry's floor: a socket that answers, and the
 * revocation list followed every second with WebCrypto.
 */
async function floorVerifier(runtimeDir: string, role: string): Promise<void> {
  const spki = Deno.readFileSync(`${runtimeDir}/identity.pub`);
  const key = await crypto.subtle.importKey("spki", spki, { name: "Ed25519" }, false, ["verify"]);
  const revoked = new Revoked();
  const catchUp = follow(
    `${runtimeDir}/revocations`,
    revoked,
    (m, sig) => crypto.subtle.verify("Ed25519", key, sig.slice(), m.slice()),
  );
  const poll = setInterval(() => void catchUp(), 1000);
  Deno.unrefTimer(poll);
  await listen(runtimeDir, role, (req, out) => out.send({ revoked: revoked.size }, req.req_id));
}

if (import.meta.main) {
  const [role, runtimeDir, stateDir, exportRoot, mode] = Deno.args;
  const records = mode === "records";
  collectWhenQuiet();
  if (role === "identity") await floorIdentity(runtimeDir, stateDir, records);
  else if (role === "fs") await floorFs(runtimeDir, exportRoot, stateDir, records);
  else await floorVerifier(runtimeDir, role);
}
