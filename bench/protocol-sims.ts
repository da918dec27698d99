/**
 * A worker process of `bench:protocol`: a share of the simulated agents
 * (one TLS connection each, the real protocol). They speak gRPC through
 * bench/h2-lite.ts, a minimal HTTP/2 client for one call (a gRPC call is an
 * HTTP/2 POST whose body is length-prefixed messages), because the clients
 * share the hub's 2 cores: a grpc-js client each cost 130 ms of CPU per
 * change for 1,000 agents (the hub: 84), node:http2 ~60. The real agents in
 * the run use grpc-js, as always. Each agent reads
 * responses with a light protobuf walk (nonce, resource names, removals;
 * bodies skipped; packed batches inflated first) and ACKs every delta; it keeps versions only of the
 * resources the driver watches, so 1,000 agents × 20,000 resources fit in
 * memory. On a reconnect it resumes the way a real agent does when it holds
 * the whole view: Hello.held_view_version (the view version of its last
 * delta, exact here because the driver changes nothing while agents catch
 * up). Talks to the driver over IPC; times are wall-clock ms
 * (performance.timeOrigin + now) so processes agree.
 */
import fs from "node:fs";
import tls from "node:tls";
import zlib from "node:zlib";
import { ResourceEncoding, StreamAssignmentsRequest } from "@switchyard/proto/assignment";
import { GrpcCall, grpcFrame } from "./h2-lite.ts";

type Sim = {
  name: string;
  count: number;
  watched: Map<string, string>;
  lastSystemVersion: string;
  lastMsgAt: number;
  bytes: number;
  welcomed: boolean;
  resends: number;
  /** counted among the synced / the changed (once per watch) */
  synced: boolean;
  sawChange: boolean;
  call: GrpcCall | undefined;
};

/** what the driver (bench/protocol.ts) tells a worker; bench/c/sims.c takes the same as lines */
export type Cmd =
  | {
      cmd: "connect";
      address: string;
      token: string;
      ca: string;
      names: string[];
      expected: number;
      watch: string[];
      /** do not accept zstd-packed batches */
      plain: boolean;
      /** inflate and walk every packed batch, even one byte for byte already read */
      fullDecode: boolean;
    }
  | { cmd: "watch"; name: string; since: number }
  | { cmd: "reset" }
  | { cmd: "reconnect"; address: string }
  | { cmd: "stop" };

const now = () => performance.timeOrigin + performance.now();
const sims: Sim[] = [];
let cfg: Extract<Cmd, { cmd: "connect" }>;
/** one TLS context (the hub's CA) for every agent of the process: parsing the CA per connection cost ~1 CPU-s per cold start */
let secureContext: tls.SecureContext;
let watchSet = new Set<string>();
let pendingWatch: { name: string; since: number; before: Map<Sim, string | undefined> } | undefined;
let syncedSent = false;
let reattachPending = false;
let syncedCount = 0;
let changedCount = 0;
let welcomedCount = 0;

function send(m: unknown): void {
  process.send!(m);
}

/** A protobuf reader over one buffer: no allocation per field. */
class Cursor {
  readonly buf: Buffer;
  pos = 0;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  uint(): number {
    let x = 0;
    let mul = 1;
    for (;;) {
      const b = this.buf[this.pos++]!;
      x += (b & 0x7f) * mul;
      if (b < 0x80) return x;
      mul *= 128;
    }
  }
  skip(wireType: number): void {
    if (wireType === 0) this.uint();
    else if (wireType === 2) {
      const len = this.uint(); // not `pos += uint()`: that adds to the position before the length
      this.pos += len;
    } else if (wireType === 1) this.pos += 8;
    else if (wireType === 5) this.pos += 4;
    else throw new Error(`wire type ${wireType} at ${this.pos}`);
  }
  text(): string {
    const len = this.uint();
    this.pos += len;
    return this.buf.toString("latin1", this.pos - len, this.pos);
  }
}

/** FNV-1a of a byte range: finds watched names without making a string of every name */
function fnv(buf: Buffer, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}
let watchedByHash = new Map<number, string[]>();
/** time spent inflating packed batches (reported with "synced") */
let inflateMs = 0;
/**
 * Packed batches already read in this process, by frame length: the hub packs
 * each cold-start chunk once for every agent, so the 250 agents of a process
 * receive the same frames. An agent whose frame is byte for byte one already
 * read (Buffer.equals over the whole frame) takes that reading instead of
 * inflating and walking 500 KB again — the CPU an agent spends on its own
 * machine, which here would share the hub's 2 cores 250 times over. Off with
 * --sim-full-decode.
 */
const framesRead = new Map<number, Array<{ frame: Buffer; read: Read }>>();
let framesReused = 0;
function setWatched(names: Iterable<string>): void {
  watchSet = new Set(names);
  watchedByHash = new Map();
  for (const n of watchSet) {
    const b = Buffer.from(n, "latin1");
    const h = fnv(b, 0, b.length);
    watchedByHash.set(h, [...(watchedByHash.get(h) ?? []), n]);
  }
}

type Read = {
  nonce: string;
  systemVersion: string;
  welcome: boolean;
  /** resources in the message (plain and packed) */
  count: number;
  /** name and version of the watched ones among them */
  watched: Array<[string, string]>;
  removed: string[];
};

/** One resource (the cursor after its field-4 tag): counted; its version kept when its name is watched. */
function readResource(c: Cursor, out: Read): void {
  const end = c.uint() + c.pos;
  out.count++;
  let watchedName: string | undefined;
  while (c.pos < end) {
    const tag = c.uint();
    const f = tag >>> 3;
    if (f === 1) {
      const len = c.uint();
      const cands = watchedByHash.get(fnv(c.buf, c.pos, c.pos + len));
      if (cands) {
        const name = c.buf.toString("latin1", c.pos, c.pos + len);
        if (cands.includes(name)) watchedName = name;
      }
      c.pos += len;
    } else if (f === 2 && watchedName !== undefined) out.watched.push([watchedName, c.text()]);
    else c.skip(tag & 7);
  }
}

/**
 * nonce, system_version, resources (field 4, and field 7 — resources_zstd —
 * inflated and read the same way), removals (field 5), welcome present
 */
function readResponse(buf: Buffer): Read {
  const c = new Cursor(buf);
  const out: Read = { nonce: "", systemVersion: "", welcome: false, count: 0, watched: [], removed: [] };
  let packedSize = 0;
  while (c.pos < buf.length) {
    const tag = c.uint();
    const no = tag >>> 3;
    if (no === 1) out.nonce = c.text();
    else if (no === 2) out.systemVersion = c.text();
    else if (no === 3) {
      out.welcome = true;
      c.skip(tag & 7);
    } else if (no === 4) readResource(c, out);
    else if (no === 5) out.removed.push(c.text());
    else if (no === 8) packedSize = c.uint();
    else if (no === 7) {
      // a ResourceBatch (the same field-4 entries), inflated into one buffer of the size the hub announced (field 8, sent first)
      const len = c.uint();
      const frame = buf.subarray(c.pos, c.pos + len);
      const known = cfg.fullDecode ? undefined : framesRead.get(len)?.find((f) => f.frame.equals(frame));
      if (known) {
        framesReused++;
        out.count += known.read.count;
        out.watched.push(...known.read.watched);
        c.pos += len;
        continue;
      }
      const batch: Read = {
        nonce: "",
        systemVersion: "",
        welcome: false,
        count: 0,
        watched: [],
        removed: [],
      };
      const t0 = performance.now();
      const raw = zlib.zstdDecompressSync(buf.subarray(c.pos, c.pos + len), {
        chunkSize: packedSize + 64,
        maxOutputLength: packedSize,
      });
      inflateMs += performance.now() - t0;
      c.pos += len;
      const b = new Cursor(raw);
      while (b.pos < raw.length) {
        const t = b.uint();
        if (t >>> 3 === 4) readResource(b, batch);
        else b.skip(t & 7);
      }
      out.count += batch.count;
      out.watched.push(...batch.watched);
      if (!cfg.fullDecode) {
        const same = framesRead.get(len) ?? [];
        same.push({ frame: Buffer.from(frame), read: batch });
        framesRead.set(len, same);
      }
    } else c.skip(tag & 7);
  }
  return out;
}

const cpuS = () => (process.cpuUsage().user + process.cpuUsage().system) / 1e6;

/** Tells the driver when every agent of this process has synced, seen the watched change, or come back. */
function checkProgress(): void {
  if (!syncedSent && syncedCount === sims.length) {
    syncedSent = true;
    send({
      ev: "synced",
      at: Math.max(...sims.map((s) => s.lastMsgAt)),
      bytes: sims.reduce((a, s) => a + s.bytes, 0),
      cpuS: cpuS(),
      inflateS: inflateMs / 1000,
      framesReused,
    });
  }
  const w = pendingWatch;
  if (w && changedCount === sims.length) {
    pendingWatch = undefined;
    send({
      ev: "changed",
      latencies: sims.map((s) => s.lastMsgAt - w.since),
      cpuS: cpuS(),
      bytes: sims.reduce((a, s) => a + s.bytes, 0),
    });
  }
  if (reattachPending && welcomedCount === sims.length) {
    reattachPending = false;
    send({
      ev: "reattached",
      at: now(),
      bytes: sims.reduce((a, s) => a + s.bytes, 0),
      resends: sims.reduce((a, s) => a + s.resends, 0),
    });
  }
}

/** Ack{response_nonce} inside StreamAssignmentsRequest.ack (field 2), framed (nonces are short ASCII) */
function ackFrame(nonce: string): Buffer {
  const n = Buffer.byteLength(nonce, "latin1");
  const ack = Buffer.allocUnsafe(4 + n);
  ack[0] = (2 << 3) | 2;
  ack[1] = n + 2;
  ack[2] = (1 << 3) | 2;
  ack[3] = n;
  ack.write(nonce, 4, "latin1");
  return grpcFrame(ack);
}

function onMessage(s: Sim, buf: Buffer, ack: (b: Buffer) => void): void {
  s.bytes += buf.length;
  const m = readResponse(buf);
  if (m.welcome && !s.welcomed) {
    s.welcomed = true;
    welcomedCount++;
  }
  if (m.nonce) {
    s.count += m.count - m.watched.length;
    for (const [name, version] of m.watched) {
      if (!s.watched.has(name)) s.count++;
      s.watched.set(name, version);
    }
    s.count -= m.removed.length;
    s.lastSystemVersion = m.systemVersion;
    s.lastMsgAt = now();
    ack(ackFrame(m.nonce));
    if (!s.synced && s.count >= cfg.expected) {
      s.synced = true;
      syncedCount++;
    }
    const w = pendingWatch;
    if (w && !s.sawChange && s.watched.get(w.name) !== w.before.get(s)) {
      s.sawChange = true;
      changedCount++;
    }
  }
  checkProgress();
}

function connect(s: Sim, address: string, resume: boolean): void {
  s.call?.close();
  if (s.welcomed) welcomedCount--;
  s.welcomed = false;
  const call = new GrpcCall(
    address,
    secureContext,
    "/switchyard.v1.AssignmentService/StreamAssignments",
    { authorization: `Bearer ${cfg.token}` },
    {
      onMessage: (msg) => onMessage(s, msg, (b) => call.write(b)),
      // ended before the hub welcomed it: refused (FAILED_PRECONDITION, "resend your versions", is the one expected)
      onEnd: () => {
        if (!s.welcomed) s.resends++;
      },
    },
  );
  s.call = call;
  call.write(
    grpcFrame(
      StreamAssignmentsRequest.encode({
        kind: {
          $case: "hello",
          value: {
            nodeName: s.name,
            agentVersion: "sim",
            initialResourceVersions: {},
            nodeAddresses: [],
            heldViewVersion: resume ? s.lastSystemVersion : "",
            acceptEncodings: cfg.plain ? [] : [ResourceEncoding.RESOURCE_ENCODING_ZSTD],
          },
        },
      }).finish(),
    ),
  );
}

process.on("message", (m: Cmd) => {
  if (m.cmd === "connect") {
    cfg = m;
    secureContext = tls.createSecureContext({ ca: fs.readFileSync(m.ca) });
    setWatched(m.watch);
    for (const name of m.names) {
      const s: Sim = {
        name,
        count: 0,
        watched: new Map(),
        lastSystemVersion: "",
        lastMsgAt: 0,
        bytes: 0,
        welcomed: false,
        resends: 0,
        synced: false,
        sawChange: false,
        call: undefined,
      };
      sims.push(s);
      connect(s, m.address, false);
    }
  } else if (m.cmd === "watch") {
    pendingWatch = {
      name: m.name,
      since: m.since,
      before: new Map(sims.map((s) => [s, s.watched.get(m.name)])),
    };
    changedCount = 0;
    for (const s of sims) s.sawChange = false;
    checkProgress();
  } else if (m.cmd === "reset") {
    for (const s of sims) s.bytes = 0;
    send({ ev: "reset" });
  } else if (m.cmd === "reconnect") {
    reattachPending = true;
    for (const s of sims) connect(s, m.address, true);
  } else if (m.cmd === "stop") {
    for (const s of sims) s.call?.close();
    process.exit(0);
  }
});
send({ ev: "ready" });
