/**
 * What the hub's main thread and its I/O threads tell each other about
 * HTTP/2 streams, batched: every event of one turn of a thread's event loop
 * goes in one ArrayBuffer that is transferred (not copied) with one
 * postMessage. A record is 14 bytes — op, flags, stream key, length, and
 * where the payload is — followed by its payload, unless the payload is one
 * this batch already carries (`ref`): a view change that sends the same
 * encoded delta to 500 agents of a thread carries the bytes once.
 *
 * Pure: no threads, no sockets.
 */
import type { HeaderList } from "../server-stream.ts";

/** I/O thread → main thread */
export const Up = {
  /** a new stream: payload = JSON [peer, headers] */
  OPEN: 1,
  /** request body bytes */
  DATA: 2,
  /** the client ended its side */
  END: 3,
  /** the stream is gone (reset, connection closed) */
  CLOSED: 4,
  /** an I/O thread's internal error: payload = the message (key 0) */
  ERROR: 5,
} as const;

/** main thread → I/O thread */
export const Down = {
  /** response headers: payload = the fields (encodeFields); flags 1 = it ends the stream */
  RESPOND: 11,
  /** response body bytes */
  WRITE: 12,
  /** end of the response: payload = trailers (encodeFields) or empty for none */
  END: 13,
  /** reset the stream: flags = the HTTP/2 error code */
  RESET: 14,
  /** close the stream's whole connection (an exception in its handler) */
  CLOSE_CONNECTION: 15,
  /** input credit: the main thread has handled `key` more DATA bytes (no payload) */
  CONSUMED: 16,
} as const;

/**
 * Header fields in a record's payload (RESPOND, END): JSON, which
 * either HTTP/2 stack's thread reads (once per call, not per message).
 */
export function encodeFields(fields: HeaderList): Buffer {
  return Buffer.from(JSON.stringify(fields));
}
export function decodeFields(p: Buffer): HeaderList {
  return JSON.parse(p.toString()) as HeaderList;
}

const HEAD = 14;
const INLINE = 0xffffffff;
const EMPTY = Buffer.alloc(0);

/** Records of one batch, written in order. */
export class BatchWriter {
  private buf = Buffer.allocUnsafeSlow(64 * 1024);
  private len = 0;
  /** payloads already in this batch, by identity → their offset */
  private readonly carried = new Map<Uint8Array, number>();

  get empty(): boolean {
    return this.len === 0;
  }

  /**
   * One record. `share`: the same payload object sent again in this batch
   * points at its first copy (for buffers many streams get).
   */
  add(op: number, key: number, flags = 0, payload: Uint8Array = EMPTY, share = false): void {
    const n = payload.length;
    const ref = share ? this.carried.get(payload) : undefined;
    this.reserve(HEAD + (ref === undefined ? n : 0));
    const b = this.buf;
    let at = this.len;
    b[at] = op;
    b[at + 1] = flags;
    b.writeUInt32LE(key, at + 2);
    b.writeUInt32LE(n, at + 6);
    b.writeUInt32LE(ref ?? INLINE, at + 10);
    at += HEAD;
    if (ref === undefined && n > 0) {
      if (share) this.carried.set(payload, at);
      b.set(payload, at);
      at += n;
    }
    this.len = at;
  }

  /** The batch as an ArrayBuffer of its own (to transfer), and a fresh start. */
  take(): ArrayBuffer {
    const out = new Uint8Array(this.len);
    out.set(this.buf.subarray(0, this.len));
    this.len = 0;
    this.carried.clear();
    // a cold start's batches are large; the quiet ones after it need no such buffer
    if (this.buf.length > 4 << 20) this.buf = Buffer.allocUnsafeSlow(64 * 1024);
    return out.buffer;
  }

  private reserve(more: number): void {
    if (this.len + more <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + more) size *= 2;
    const next = Buffer.allocUnsafeSlow(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
}

/**
 * A BatchWriter that sends itself: the first record of a turn of the event
 * loop schedules one `post` of the whole batch after the turn's I/O
 * (setImmediate), so the records of every socket read in that turn go
 * together.
 */
export class BatchSender {
  private readonly out = new BatchWriter();
  private scheduled = false;
  private readonly post: (batch: ArrayBuffer) => void;

  constructor(post: (batch: ArrayBuffer) => void) {
    this.post = post;
  }

  add(op: number, key: number, flags?: number, payload?: Uint8Array, share?: boolean): void {
    this.out.add(op, key, flags, payload, share);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends what is queued now (also what the scheduled send does). */
  flush(): void {
    this.scheduled = false;
    if (!this.out.empty) this.post(this.out.take());
  }
}

export class RelayError extends Error {}

/** Calls `each` for every record of a batch; payloads are views of the batch (no copy). */
export function readBatch(
  batch: ArrayBuffer,
  each: (op: number, key: number, flags: number, payload: Buffer) => void,
): void {
  const b = Buffer.from(batch);
  let at = 0;
  while (at < b.length) {
    if (b.length - at < HEAD) throw new RelayError(`a record cut short at ${at} of ${b.length}`);
    const op = b[at]!;
    const flags = b[at + 1]!;
    const key = b.readUInt32LE(at + 2);
    const n = b.readUInt32LE(at + 6);
    const ref = b.readUInt32LE(at + 10);
    at += HEAD;
    let start: number;
    if (ref === INLINE) {
      start = at;
      at += n;
    } else start = ref;
    if (start + n > b.length) throw new RelayError(`a payload of ${n} bytes beyond the batch`);
    each(op, key, flags, b.subarray(start, start + n));
  }
}
