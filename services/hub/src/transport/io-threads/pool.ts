/**
 * The main thread's side of the hub's I/O threads (io-thread.ts): starts
 * them on one port (SO_REUSEPORT), each serving its connections with its
 * own node:http2 server, and turns the streams they relay into
 * ServerStreams, so the front's routing, GrpcCall and the grpc-js fallback
 * run unchanged on the main thread. Writes of one turn of the event loop go
 * to each thread in one batch (relay.ts), a buffer written to many streams
 * once.
 *
 * A thread that dies (a bug) loses its connections — their calls see
 * onClose, the agents reconnect to the other threads — and is started again.
 */
import net from "node:net";
import { Worker } from "node:worker_threads";
import { ConnectionGate } from "../connection-gate.ts";
import {
  H2Error,
  type HeaderList,
  type ListenerOptions,
  lastHeader,
  type ServerStream,
  type StreamHandlers,
} from "../server-stream.ts";
import type { FromIoThread, IoThreadData, ToIoThread } from "./io-thread.ts";
import { BatchSender, Down, encodeFields, readBatch, Up } from "./relay.ts";

/** a listener's options (each thread runs one), for streams that reach the main thread as ServerStreams */
export type IoThreadsOptions = Omit<ListenerOptions, "reusePort" | "onStream" | "gate" | "refusals"> & {
  /** the refusal counts the threads add to (refusals.ts) */
  refusals: SharedArrayBuffer;
  threads: number;
  onStream: (s: ServerStream) => void;
};

export type IoThreads = {
  port: number;
  /** the running I/O threads (what a test kills to see one come back) */
  workers: () => Worker[];
  /** streams open now, relayed from each thread (by thread number) */
  openStreams: () => number[];
  close: () => Promise<void>;
};

const EMPTY = Buffer.alloc(0);
const THREAD_URL = new URL("./io-thread.ts", import.meta.url);

/** A stream of a connection an I/O thread owns. */
class RemoteStream implements ServerStream {
  readonly key: number;
  readonly peer: string;
  readonly headers: HeaderList;
  h: StreamHandlers | undefined;
  /** ended, reset or gone: nothing more is sent or delivered */
  done = false;
  private readonly thread: IoThread;

  constructor(thread: IoThread, key: number, peer: string, headers: HeaderList) {
    this.thread = thread;
    this.key = key;
    this.peer = peer;
    this.headers = headers;
  }

  header(name: string): string | undefined {
    return lastHeader(this.headers, name);
  }

  start(h: StreamHandlers): void {
    this.h = h;
  }

  respond(fields: HeaderList, endStream = false): void {
    if (this.done) return;
    this.thread.send(Down.RESPOND, this.key, endStream ? 1 : 0, encodeFields(fields));
    if (endStream) this.thread.forget(this);
  }

  write(data: Buffer): void {
    if (!this.done) this.thread.send(Down.WRITE, this.key, 0, data, true);
  }

  end(trailers?: HeaderList): void {
    if (this.done) return;
    this.thread.send(Down.END, this.key, 0, trailers === undefined ? EMPTY : encodeFields(trailers));
    this.thread.forget(this);
  }

  reset(code: number = H2Error.CANCEL): void {
    if (this.done) return;
    this.thread.send(Down.RESET, this.key, code);
    this.thread.forget(this);
  }

  closeConnection(): void {
    if (this.done) return;
    this.thread.send(Down.CLOSE_CONNECTION, this.key, 0);
    this.thread.forget(this);
  }
}

class IoThread {
  readonly worker: Worker;
  private readonly streams = new Map<number, RemoteStream>();
  private readonly out: BatchSender;
  private readonly opts: IoThreadsOptions;

  constructor(worker: Worker, opts: IoThreadsOptions) {
    this.worker = worker;
    this.opts = opts;
    // the writes of one turn (a view change to every agent of this thread) go in one message
    this.out = new BatchSender((batch) => worker.postMessage({ batch } satisfies ToIoThread, [batch]));
  }

  send(op: number, key: number, flags: number, payload?: Uint8Array, share = false): void {
    this.out.add(op, key, flags, payload, share);
  }

  get openStreams(): number {
    return this.streams.size;
  }

  forget(s: RemoteStream): void {
    s.done = true;
    this.streams.delete(s.key);
  }

  /** An exception from a stream's handler: its connection goes, every other stays. */
  private fault(s: RemoteStream, e: unknown): void {
    this.opts.onInternalError(e instanceof Error ? e : new Error(String(e)));
    s.closeConnection();
  }

  onBatch(batch: ArrayBuffer): void {
    let consumed = 0;
    readBatch(batch, (op, key, _flags, p) => {
      if (op === Up.ERROR) {
        this.opts.onInternalError(new Error(`I/O thread ${this.worker.threadId}: ${p.toString()}`));
        return;
      }
      if (op === Up.OPEN) {
        const [peer, headers] = JSON.parse(p.toString()) as [string, HeaderList];
        const s = new RemoteStream(this, key, peer, headers);
        this.streams.set(key, s);
        try {
          this.opts.onStream(s);
        } catch (e) {
          this.fault(s, e);
        }
        return;
      }
      if (op === Up.DATA) consumed += p.length;
      const s = this.streams.get(key);
      if (!s) return; // ended here meanwhile
      try {
        if (op === Up.DATA) s.h?.onData(p);
        else if (op === Up.END) s.h?.onEnd();
        else if (op === Up.CLOSED) {
          this.forget(s);
          s.h?.onClose();
        }
      } catch (e) {
        this.fault(s, e);
      }
    });
    // input credit: the count rides in the record's key
    if (consumed > 0) this.send(Down.CONSUMED, consumed, 0);
  }

  /** The thread is gone: its streams' calls end. */
  dropAll(): void {
    for (const s of [...this.streams.values()]) {
      this.forget(s);
      try {
        s.h?.onClose();
      } catch (e) {
        this.opts.onInternalError(e as Error);
      }
    }
  }
}

/** Fails with the address in use when anything listens there already (SO_REUSEPORT would share it with another hub). */
async function portIsFree(host: string, port: number): Promise<void> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", reject);
    probe.listen({ host, port }, () => resolve());
  });
  await new Promise<void>((r) => probe.close(() => r()));
}

export async function startIoThreads(opts: IoThreadsOptions): Promise<IoThreads> {
  if (!Number.isInteger(opts.threads) || opts.threads < 1)
    throw new Error(`I/O threads must be a whole number ≥ 1, not ${opts.threads}`);
  if (opts.port !== 0) await portIsFree(opts.host, opts.port);
  let closing = false;
  const threads: Array<IoThread | undefined> = [];
  /** connection counts, a row per thread */
  const gate = ConnectionGate.createShared(opts.threads);

  const start = (i: number, port: number): Promise<{ thread: IoThread; port: number }> => {
    const worker = new Worker(THREAD_URL, {
      name: `switchyard-io-${i}`,
      workerData: {
        host: opts.host,
        port,
        tls: opts.tls,
        keepaliveIntervalMs: opts.keepaliveIntervalMs,
        keepaliveTimeoutMs: opts.keepaliveTimeoutMs,
        limits: opts.limits,
        gate: { shared: gate, row: i },
        refusals: opts.refusals,
        routedPaths: opts.routedPaths,
      } satisfies IoThreadData,
    });
    const thread = new IoThread(worker, opts);
    return new Promise((resolve, reject) => {
      let listening = false;
      worker.on("message", (m: FromIoThread) => {
        if ("batch" in m) {
          try {
            thread.onBatch(m.batch);
          } catch (e) {
            // a malformed batch is a bug of the hub's own: reported, the hub stays up
            opts.onInternalError(e as Error);
          }
        } else if ("listening" in m) {
          listening = true;
          resolve({ thread, port: m.listening });
        }
      });
      worker.on("error", (e) => {
        if (!listening) reject(e);
        else opts.onInternalError(new Error(`I/O thread ${i} failed: ${e.stack ?? e.message}`));
      });
      worker.on("exit", (code) => {
        thread.dropAll();
        if (!listening) {
          reject(new Error(`I/O thread ${i} exited (${code}) before it listened`));
          return;
        }
        if (closing || threads[i] !== thread) return;
        threads[i] = undefined;
        // its connections are gone with it (their close handlers never ran)
        ConnectionGate.clearRow(gate, i);
        // its agents reconnect to the other threads meanwhile; a new one takes its share of new connections
        setTimeout(() => {
          if (closing) return;
          start(i, port).then(
            (t) => {
              if (closing) t.thread.worker.terminate();
              else threads[i] = t.thread;
            },
            (e: Error) =>
              opts.onInternalError(new Error(`I/O thread ${i} could not start again: ${e.message}`)),
          );
        }, 1000).unref();
      });
    });
  };

  const first = await start(0, opts.port);
  threads.push(first.thread);
  try {
    for (let i = 1; i < opts.threads; i++) threads.push((await start(i, first.port)).thread);
  } catch (e) {
    closing = true;
    await Promise.all(threads.map((t) => t?.worker.terminate()));
    throw e;
  }
  return {
    port: first.port,
    workers: () => threads.flatMap((t) => (t ? [t.worker] : [])),
    openStreams: () => threads.map((t) => t?.openStreams ?? 0),
    close: async () => {
      closing = true;
      await Promise.all(
        threads.map(async (t) => {
          if (!t) return;
          const exited = new Promise<void>((r) => t.worker.once("exit", () => r()));
          t.worker.postMessage({ close: true } satisfies ToIoThread);
          const timer = setTimeout(() => t.worker.terminate(), 5000);
          await exited;
          clearTimeout(timer);
        }),
      );
    },
  };
}
