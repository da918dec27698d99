/**
 * One I/O thread of the hub (a worker_thread): it owns a share of the
 * agents' connections — TLS, HTTP/2 (its own node:http2 server on the
 * shared port), flow control, keepalive, the port's limits — and
 * relays their streams to the main thread (relay.ts), which runs every call
 * (auth, sessions, the translator's snapshots). So a change's 1,000 TLS
 * writes and 1,000 ACK reads, most of the hub's CPU per change, spread over
 * the machine's cores instead of queueing on the main thread.
 *
 * Input credit: DATA posted to the main thread and not yet handled counts;
 * past a bound this thread stops reading its sockets until the main thread
 * catches up, so a flood from agents cannot pile up in the main thread's
 * message queue.
 */
import { parentPort, workerData } from "node:worker_threads";
import { listenHttp2 } from "../http2-listener.ts";
import type { FrontLimits } from "../limits.ts";
import type { ServerStream } from "../server-stream.ts";
import { BatchSender, Down, decodeFields, readBatch, Up } from "./relay.ts";

export type IoThreadData = {
  host: string;
  port: number;
  tls: { cert: Uint8Array; key: Uint8Array } | undefined;
  keepaliveIntervalMs: number | undefined;
  keepaliveTimeoutMs: number | undefined;
  limits: FrontLimits | undefined;
  gate: { shared: SharedArrayBuffer; row: number };
  refusals: SharedArrayBuffer;
  routedPaths: readonly string[] | undefined;
};

/** main → I/O thread, besides batches */
export type ToIoThread = { batch: ArrayBuffer } | { close: true };
/** I/O thread → main */
export type FromIoThread = { batch: ArrayBuffer } | { listening: number } | { closed: true };

/** DATA bytes the main thread may have waiting before this thread stops reading */
const MAX_UNCONSUMED = 64 << 20;

const port = parentPort!;
const data = workerData as IoThreadData;
const streams = new Map<number, ServerStream>();
let nextKey = 0;
let unconsumed = 0;
let paused = false;
/** everything of one turn of the event loop goes to the main thread in one message */
const out = new BatchSender((batch) => port.postMessage({ batch } satisfies FromIoThread, [batch]));
const queue = (op: number, key: number, flags?: number, payload?: Uint8Array) =>
  out.add(op, key, flags, payload);

function throttle(): void {
  const over = unconsumed > MAX_UNCONSUMED;
  if (over === paused) return;
  paused = over;
  if (over) listener.pauseReading();
  else listener.resumeReading();
}

const listener = await listenHttp2({
  host: data.host,
  port: data.port,
  reusePort: true,
  tls: data.tls && { cert: Buffer.from(data.tls.cert), key: Buffer.from(data.tls.key) },
  keepaliveIntervalMs: data.keepaliveIntervalMs,
  keepaliveTimeoutMs: data.keepaliveTimeoutMs,
  limits: data.limits,
  gate: data.gate,
  refusals: data.refusals,
  routedPaths: data.routedPaths,
  onInternalError: (e) => queue(Up.ERROR, 0, 0, Buffer.from(e.stack ?? e.message)),
  onStream: (s) => {
    nextKey = nextKey >= 0xfffffffe ? 1 : nextKey + 1;
    const key = nextKey;
    streams.set(key, s);
    queue(Up.OPEN, key, 0, Buffer.from(JSON.stringify([s.peer, s.headers])));
    s.start({
      onData: (d) => {
        unconsumed += d.length;
        queue(Up.DATA, key, 0, d);
        throttle();
      },
      onEnd: () => queue(Up.END, key),
      onClose: () => {
        streams.delete(key);
        queue(Up.CLOSED, key);
      },
    });
  },
});

function apply(op: number, key: number, flags: number, p: Buffer): void {
  if (op === Down.CONSUMED) {
    unconsumed -= key;
    throttle();
    return;
  }
  const s = streams.get(key);
  if (!s) return; // gone meanwhile (the client reset it): the main thread hears CLOSED
  switch (op) {
    case Down.RESPOND:
      s.respond(decodeFields(p), flags === 1);
      if (flags === 1) streams.delete(key);
      return;
    case Down.WRITE:
      s.write(p);
      return;
    case Down.END:
      s.end(p.length > 0 ? decodeFields(p) : undefined);
      streams.delete(key);
      return;
    case Down.RESET:
      streams.delete(key);
      s.reset(flags);
      return;
    case Down.CLOSE_CONNECTION:
      streams.delete(key);
      s.closeConnection();
      return;
  }
}

port.on("message", (m: ToIoThread) => {
  if ("batch" in m) {
    try {
      readBatch(m.batch, apply);
    } catch (e) {
      queue(Up.ERROR, 0, 0, Buffer.from((e as Error).stack ?? String(e)));
    }
    return;
  }
  listener.close().then(() => {
    out.flush();
    port.postMessage({ closed: true } satisfies FromIoThread);
    port.close();
  });
});
port.postMessage({ listening: listener.port } satisfies FromIoThread);
