/**
 * A worker process of `bench:protocol`: a share of the simulated agents
 * (one gRPC channel each, real TLS, the real protocol). Each agent reads
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
import zlib from "node:zlib";
import { BinaryReader, type WireType } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import { ResourceEncoding, StreamAssignmentsRequest } from "@switchyard/proto/assignment";

type Sim = {
  name: string;
  count: number;
  watched: Map<string, string>;
  lastSystemVersion: string;
  lastMsgAt: number;
  bytes: number;
  welcomed: boolean;
  resends: number;
  call: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  client: grpc.Client | undefined;
};

type Cmd =
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
    }
  | { cmd: "watch"; name: string; since: number }
  | { cmd: "reset" }
  | { cmd: "reconnect"; address: string }
  | { cmd: "stop" };

const now = () => performance.timeOrigin + performance.now();
const RawClient = grpc.makeGenericClientConstructor({}, "Raw");
const sims: Sim[] = [];
let cfg: Extract<Cmd, { cmd: "connect" }>;
let caPem: Buffer;
let watchSet = new Set<string>();
let pendingWatch: { name: string; since: number; before: Map<Sim, string | undefined> } | undefined;
let syncedSent = false;
let reattachPending = false;

function send(m: unknown): void {
  process.send!(m);
}

/**
 * Name of one resource (after its field-4 tag), and its version when the
 * driver watches that name; the body is skipped. Names are ASCII: latin1
 * is the cheap exact decoding.
 */
function readResource(r: BinaryReader, raw: Buffer): [string, string] {
  const end = r.uint32() + r.pos;
  let name = "";
  let version = "";
  while (r.pos < end) {
    const [f, w] = r.tag();
    if (f === 1 || (f === 2 && watchSet.has(name))) {
      const len = r.uint32();
      const text = raw.toString("latin1", r.pos, r.pos + len);
      r.pos += len;
      if (f === 1) name = text;
      else version = text;
    } else r.skip(w);
  }
  return [name, version];
}

/**
 * nonce, system_version, resource names/versions (field 4, and field 7 —
 * resources_zstd — inflated and read the same way), removals (field 5),
 * welcome present
 */
function readResponse(buf: Buffer) {
  const r = new BinaryReader(buf);
  let nonce = "";
  let systemVersion = "";
  let welcome = false;
  const resources: Array<[string, string]> = [];
  const removed: string[] = [];
  let packedSize = 0;
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1) nonce = r.string();
    else if (no === 2) systemVersion = r.string();
    else if (no === 3) {
      welcome = true;
      r.skip(wt);
    } else if (no === 4) resources.push(readResource(r, buf));
    else if (no === 5) removed.push(r.string());
    else if (no === 8) packedSize = r.uint32();
    else if (no === 7) {
      // a ResourceBatch (the same field-4 entries), inflated into one buffer of the size the hub announced (field 8, sent first)
      const raw = zlib.zstdDecompressSync(r.bytes(), {
        chunkSize: packedSize + 64,
        maxOutputLength: packedSize,
      });
      const b = new BinaryReader(raw);
      while (b.pos < b.len) {
        const [f, w] = b.tag();
        if (f === 4) resources.push(readResource(b, raw));
        else b.skip(w);
      }
    } else r.skip(wt as WireType);
  }
  return { nonce, systemVersion, welcome, resources, removed };
}

function checkProgress(): void {
  if (!syncedSent && sims.every((s) => s.count >= cfg.expected)) {
    syncedSent = true;
    send({
      ev: "synced",
      at: Math.max(...sims.map((s) => s.lastMsgAt)),
      bytes: sims.reduce((a, s) => a + s.bytes, 0),
      cpuS: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    });
  }
  const w = pendingWatch;
  if (w && sims.every((s) => s.watched.get(w.name) !== w.before.get(s))) {
    pendingWatch = undefined;
    send({
      ev: "changed",
      latencies: sims.map((s) => s.lastMsgAt - w.since),
      bytes: sims.reduce((a, s) => a + s.bytes, 0),
    });
  }
  if (reattachPending && sims.every((s) => s.welcomed)) {
    reattachPending = false;
    send({
      ev: "reattached",
      at: now(),
      bytes: sims.reduce((a, s) => a + s.bytes, 0),
      resends: sims.reduce((a, s) => a + s.resends, 0),
    });
  }
}

function connect(s: Sim, address: string, resume: boolean): void {
  s.client?.close();
  const client = new RawClient(address, grpc.credentials.createSsl(caPem), {
    "grpc.max_receive_message_length": 512 * 1024 * 1024,
  });
  s.client = client;
  s.welcomed = false;
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${cfg.token}`);
  const call = client.makeBidiStreamRequest<Buffer, Buffer>(
    "/switchyard.v1.AssignmentService/StreamAssignments",
    (b: Buffer) => b,
    (b: Buffer) => b,
    md,
  );
  s.call = call;
  call.on("data", (buf: Buffer) => {
    s.bytes += buf.length;
    const m = readResponse(buf);
    if (m.welcome) s.welcomed = true;
    if (m.nonce) {
      for (const [name, version] of m.resources) {
        if (watchSet.has(name)) {
          if (!s.watched.has(name)) s.count++;
          s.watched.set(name, version);
        } else s.count++;
      }
      s.count -= m.removed.length;
      s.lastSystemVersion = m.systemVersion;
      s.lastMsgAt = now();
      call.write(
        Buffer.from(
          StreamAssignmentsRequest.encode({
            kind: { $case: "ack", value: { responseNonce: m.nonce, error: undefined } },
          }).finish(),
        ),
      );
    }
    checkProgress();
  });
  call.on("error", (e: grpc.ServiceError) => {
    if (e.code === grpc.status.FAILED_PRECONDITION) s.resends++;
  });
  call.write(
    Buffer.from(
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
    caPem = fs.readFileSync(m.ca);
    watchSet = new Set(m.watch);
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
        call: undefined,
        client: undefined,
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
    checkProgress();
  } else if (m.cmd === "reset") {
    for (const s of sims) s.bytes = 0;
    send({ ev: "reset" });
  } else if (m.cmd === "reconnect") {
    reattachPending = true;
    for (const s of sims) connect(s, m.address, true);
  } else if (m.cmd === "stop") {
    for (const s of sims) {
      s.call?.cancel();
      s.client?.close();
    }
    process.exit(0);
  }
});
send({ ev: "ready" });
