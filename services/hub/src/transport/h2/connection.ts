/**
 * The server side of one HTTP/2 connection (RFC 9113), for the hub's port:
 * framing, SETTINGS, PING, GOAWAY, RST_STREAM, flow control both ways,
 * HEADERS + CONTINUATION through HPACK, and streams handed to the owner.
 *
 * Why the hub has its own: 1,000 agents each get one small message and send
 * one small ACK per change, and node:http2's layers (nghttp2 plus a Node
 * stream object per call) cost more than the work itself — measured side by
 * side, 1,000 streams, one 400-byte message and one reply each: server CPU
 * per round 69–72 ms with grpc-js, 49–55 ms with node:http2, 39 ms framing
 * the bytes directly.
 *
 * What it does not do: server push (never sent; ENABLE_PUSH ignored),
 * priorities (parsed and ignored, as RFC 9113 allows), HTTP/1.1.
 */
import type net from "node:net";
import { type HeaderList, lastHeader, type ServerStream, type StreamHandlers } from "../server-stream.ts";
import { encodeHeaders, HpackDecoder, HpackError } from "./hpack.ts";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
export const FrameType = {
  DATA: 0,
  HEADERS: 1,
  PRIORITY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PUSH_PROMISE: 5,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;
const { END_STREAM, ACK, END_HEADERS, PADDED } = Flag;
export const ErrorCode = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  ENHANCE_YOUR_CALM: 11,
} as const;
export const Setting = {
  ENABLE_PUSH: 2,
  MAX_CONCURRENT_STREAMS: 3,
  INITIAL_WINDOW_SIZE: 4,
  MAX_FRAME_SIZE: 5,
  MAX_HEADER_LIST_SIZE: 6,
} as const;
export const DEFAULT_WINDOW = 65_535;
export const MAX_WINDOW = 2 ** 31 - 1;
/** what the hub reads per frame (the protocol's default and minimum) */
const OUR_MAX_FRAME = 16_384;
/** the window the hub gives each stream and the connection (agents send little; a 16 MB message still flows) */
const OUR_STREAM_WINDOW = 1 << 20;
const OUR_CONN_WINDOW = 16 << 20;
const MAX_HEADER_BLOCK = 64 * 1024;

class ConnectionError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** A frame header (9 bytes) for a payload of `length` bytes at the start of `out`. */
function putHead(out: Buffer, length: number, type: number, flags: number, stream: number): Buffer {
  out[0] = (length >>> 16) & 0xff;
  out[1] = (length >>> 8) & 0xff;
  out[2] = length & 0xff;
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(stream, 5);
  return out;
}

/** One frame: 9-byte header, then the payload (copied in). */
export function frame(type: number, flags: number, stream: number, payload?: Uint8Array): Buffer {
  const len = payload?.length ?? 0;
  const out = putHead(Buffer.allocUnsafe(9 + len), len, type, flags, stream);
  if (payload) out.set(payload, 9);
  return out;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** One request stream; the owner answers with respond / write / end. */
export class H2Stream implements ServerStream {
  readonly id: number;
  readonly headers: HeaderList;
  private readonly conn: H2Connection;
  h: StreamHandlers | undefined;
  sendWindow: number;
  recvUnacked = 0;
  /** DATA not yet sent for lack of window, then trailers (or an empty END_STREAM) */
  queue: Buffer[] = [];
  queuedTrailers: Buffer | null | undefined;
  remoteEnded = false;
  localEnded = false;
  closed = false;

  constructor(conn: H2Connection, id: number, headers: HeaderList, sendWindow: number) {
    this.conn = conn;
    this.id = id;
    this.headers = headers;
    this.sendWindow = sendWindow;
  }

  /** The last value of a header, or undefined. */
  header(name: string): string | undefined {
    return lastHeader(this.headers, name);
  }

  start(h: StreamHandlers): void {
    this.h = h;
  }

  get peer(): string {
    return this.conn.peer;
  }

  /**
   * Response headers (fields, or a block already HPACK-encoded once);
   * `endStream` makes them the whole response (gRPC's trailers-only).
   */
  respond(fields: HeaderList | Buffer, endStream = false): void {
    if (this.closed || this.localEnded) return;
    this.conn.sendHeaders(this, Buffer.isBuffer(fields) ? fields : encodeHeaders(fields), endStream);
  }

  write(data: Buffer): void {
    if (this.closed || this.localEnded) return;
    this.conn.sendData(this, data);
  }

  /** Ends the response with trailers (after any queued data). */
  end(trailers?: HeaderList | Buffer): void {
    if (this.closed || this.localEnded) return;
    const block = trailers === undefined || Buffer.isBuffer(trailers) ? trailers : encodeHeaders(trailers);
    this.conn.endStream(this, block ?? null);
  }

  /** Closes the whole connection (GOAWAY): what an exception in a stream's handler costs. */
  closeConnection(): void {
    this.conn.close(ErrorCode.INTERNAL_ERROR, "internal error");
  }

  reset(code: number = ErrorCode.CANCEL): void {
    if (this.closed) return;
    this.conn.resetStream(this, code);
  }
}

export type ConnectionOptions = {
  onStream: (s: H2Stream) => void;
  maxConcurrentStreams: number;
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  /** an exception from a stream's handler (the connection is closed) */
  onInternalError: (e: Error) => void;
};

export class H2Connection {
  readonly peer: string;
  private readonly sock: net.Socket;
  private readonly opts: ConnectionOptions;
  private readonly hpack = new HpackDecoder();
  private readonly streams = new Map<number, H2Stream>();
  private prefaceSeen = false;
  private pending: Buffer | undefined;
  private lastStreamId = 0;
  /** a header block in progress (HEADERS without END_HEADERS, then CONTINUATION) */
  private headerBlock: { stream: number; flags: number; parts: Buffer[]; length: number } | undefined;
  private connSendWindow = DEFAULT_WINDOW;
  private connRecvUnacked = 0;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = OUR_MAX_FRAME;
  /** streams with data waiting for window */
  private readonly blocked = new Set<H2Stream>();
  private dead = false;
  private goingAway = false;
  private pingTimer: NodeJS.Timeout | undefined;
  private pingDeadline: NodeJS.Timeout | undefined;

  constructor(sock: net.Socket, opts: ConnectionOptions) {
    this.sock = sock;
    this.opts = opts;
    this.peer = `${sock.remoteAddress}:${sock.remotePort}`;
    sock.setNoDelay(true);
    const settings = Buffer.allocUnsafe(18);
    settings.writeUInt16BE(Setting.MAX_CONCURRENT_STREAMS, 0);
    settings.writeUInt32BE(opts.maxConcurrentStreams, 2);
    settings.writeUInt16BE(Setting.INITIAL_WINDOW_SIZE, 6);
    settings.writeUInt32BE(OUR_STREAM_WINDOW, 8);
    settings.writeUInt16BE(Setting.MAX_HEADER_LIST_SIZE, 12);
    settings.writeUInt32BE(MAX_HEADER_BLOCK, 14);
    sock.write(
      Buffer.concat([
        frame(FrameType.SETTINGS, 0, 0, settings),
        frame(FrameType.WINDOW_UPDATE, 0, 0, u32(OUR_CONN_WINDOW - DEFAULT_WINDOW)),
      ]),
    );
    sock.on("data", (d: Buffer) => this.onBytes(d));
    sock.on("error", () => this.teardown());
    sock.on("close", () => this.teardown());
    this.pingTimer = setInterval(() => this.ping(), opts.keepaliveIntervalMs);
    this.pingTimer.unref();
  }

  /** Streams open now. */
  get openStreams(): number {
    return this.streams.size;
  }

  /** Stops reading the socket (the reader is behind), and starts again. */
  pauseReading(): void {
    this.sock.pause();
  }
  resumeReading(): void {
    this.sock.resume();
  }

  /** Closes the connection: GOAWAY, then the socket. */
  close(code: number = ErrorCode.NO_ERROR, why = ""): void {
    if (this.dead) return;
    const p = Buffer.allocUnsafe(8 + Buffer.byteLength(why));
    p.writeUInt32BE(this.lastStreamId, 0);
    p.writeUInt32BE(code, 4);
    p.write(why, 8);
    this.sock.end(frame(FrameType.GOAWAY, 0, 0, p));
    this.teardown();
  }

  private teardown(): void {
    if (this.dead) return;
    this.dead = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.pingDeadline);
    for (const s of [...this.streams.values()]) this.forget(s, true);
    this.blocked.clear();
    if (!this.sock.destroyed) setImmediate(() => this.sock.destroy());
  }

  private ping(): void {
    if (this.dead || this.pingDeadline) return;
    this.sock.write(frame(FrameType.PING, 0, 0, Buffer.alloc(8)));
    this.pingDeadline = setTimeout(
      () => this.close(ErrorCode.NO_ERROR, "keepalive timeout"),
      this.opts.keepaliveTimeoutMs,
    );
    this.pingDeadline.unref();
  }

  private onBytes(d: Buffer): void {
    if (this.dead) return;
    let c = this.pending ? Buffer.concat([this.pending, d]) : d;
    this.pending = undefined;
    try {
      if (!this.prefaceSeen) {
        if (c.length < PREFACE.length) {
          if (!PREFACE.subarray(0, c.length).equals(c))
            throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "not HTTP/2");
          this.pending = c;
          return;
        }
        if (!c.subarray(0, PREFACE.length).equals(PREFACE))
          throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "not HTTP/2 (no connection preface)");
        this.prefaceSeen = true;
        c = c.subarray(PREFACE.length);
      }
      let pos = 0;
      while (c.length - pos >= 9 && !this.dead) {
        const len = (c[pos]! << 16) | (c[pos + 1]! << 8) | c[pos + 2]!;
        if (len > OUR_MAX_FRAME)
          throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `a frame of ${len} bytes`);
        if (c.length - pos < 9 + len) break;
        const type = c[pos + 3]!;
        const flags = c[pos + 4]!;
        const stream = c.readUInt32BE(pos + 5) & 0x7fffffff;
        this.onFrame(type, flags, stream, c.subarray(pos + 9, pos + 9 + len));
        pos += 9 + len;
      }
      if (pos < c.length && !this.dead) this.pending = Buffer.from(c.subarray(pos));
    } catch (e) {
      if (e instanceof ConnectionError) this.close(e.code, e.message);
      else if (e instanceof HpackError) this.close(ErrorCode.COMPRESSION_ERROR, e.message);
      else {
        // a bug in a handler: this connection goes, the hub and every other connection stay
        this.opts.onInternalError(e as Error);
        this.close(ErrorCode.INTERNAL_ERROR, "internal error");
      }
    }
  }

  private onFrame(type: number, flags: number, id: number, p: Buffer): void {
    if (this.headerBlock && type !== FrameType.CONTINUATION)
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "a header block was interrupted");
    switch (type) {
      case FrameType.DATA:
        this.onData(flags, id, p);
        return;
      case FrameType.HEADERS: {
        if (id === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0");
        let start = 0;
        let end = p.length;
        if (flags & PADDED) {
          start = 1;
          end -= p[0]!;
        }
        if (flags & Flag.PRIORITY) start += 5;
        if (start > end) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "bad HEADERS padding");
        const fragment = p.subarray(start, end);
        if (flags & END_HEADERS) {
          this.onHeaderBlock(id, flags, fragment);
          return;
        }
        this.headerBlock = { stream: id, flags, parts: [Buffer.from(fragment)], length: fragment.length };
        return;
      }
      case FrameType.CONTINUATION: {
        const hb = this.headerBlock;
        if (!hb || hb.stream !== id)
          throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION");
        hb.parts.push(Buffer.from(p));
        hb.length += p.length;
        if (hb.length > MAX_HEADER_BLOCK)
          throw new ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, "header block too large");
        if (flags & END_HEADERS) {
          this.headerBlock = undefined;
          this.onHeaderBlock(id, hb.flags, Buffer.concat(hb.parts, hb.length));
        }
        return;
      }
      case FrameType.PRIORITY:
        return;
      case FrameType.RST_STREAM: {
        const s = this.streams.get(id);
        if (s) this.forget(s, true);
        return;
      }
      case FrameType.SETTINGS:
        if (id !== 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream");
        if (flags & ACK) return;
        if (p.length % 6 !== 0) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS length");
        for (let i = 0; i < p.length; i += 6) this.onSetting(p.readUInt16BE(i), p.readUInt32BE(i + 2));
        this.sock.write(frame(FrameType.SETTINGS, ACK, 0));
        this.flushBlocked();
        return;
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "a client may not push");
      case FrameType.PING:
        if (p.length !== 8) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "PING length");
        if (flags & ACK) {
          clearTimeout(this.pingDeadline);
          this.pingDeadline = undefined;
        } else this.sock.write(frame(FrameType.PING, ACK, 0, p));
        return;
      case FrameType.GOAWAY:
        // the client will open nothing more; its streams finish or it closes the socket
        this.goingAway = true;
        if (this.streams.size === 0) this.close();
        return;
      case FrameType.WINDOW_UPDATE: {
        if (p.length !== 4) throw new ConnectionError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE length");
        const inc = p.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) {
          if (inc === 0) throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, "zero window increment");
          this.connSendWindow += inc;
          if (this.connSendWindow > MAX_WINDOW)
            throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "window overflow");
          this.flushBlocked();
        } else {
          const s = this.streams.get(id);
          if (!s) return;
          s.sendWindow += inc;
          if (inc === 0 || s.sendWindow > MAX_WINDOW) this.resetStream(s, ErrorCode.FLOW_CONTROL_ERROR);
          else this.flush(s);
        }
        return;
      }
      default:
        return; // unknown frame types are ignored (RFC 9113 §4.1)
    }
  }

  private onSetting(key: number, value: number): void {
    if (key === Setting.INITIAL_WINDOW_SIZE) {
      if (value > MAX_WINDOW)
        throw new ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, "initial window too large");
      const delta = value - this.peerInitialWindow;
      this.peerInitialWindow = value;
      for (const s of this.streams.values()) s.sendWindow += delta;
    } else if (key === Setting.MAX_FRAME_SIZE) {
      if (value < OUR_MAX_FRAME || value > 16_777_215)
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `max frame size ${value}`);
      this.peerMaxFrame = value;
    }
    // HEADER_TABLE_SIZE: the hub's encoder uses no table; the others ask nothing of a server
  }

  private onHeaderBlock(id: number, flags: number, block: Buffer): void {
    // decoded even for a stream that is refused: the table must stay in step
    const fields = this.hpack.decode(block);
    const existing = this.streams.get(id);
    if (existing) {
      // trailers from the client: they must end its side
      if (!(flags & END_STREAM)) this.resetStream(existing, ErrorCode.PROTOCOL_ERROR);
      else this.remoteEnd(existing);
      return;
    }
    if (id % 2 === 0)
      throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `stream ${id} cannot be opened by a client`);
    // a stream the hub already finished (the client's trailers crossed its reset): nothing to do
    if (id <= this.lastStreamId) return;
    this.lastStreamId = id;
    if (this.goingAway || this.streams.size >= this.opts.maxConcurrentStreams) {
      this.sock.write(frame(FrameType.RST_STREAM, 0, id, u32(ErrorCode.REFUSED_STREAM)));
      return;
    }
    const s = new H2Stream(this, id, fields, this.peerInitialWindow);
    this.streams.set(id, s);
    this.opts.onStream(s);
    if (flags & END_STREAM) this.remoteEnd(s);
  }

  private onData(flags: number, id: number, p: Buffer): void {
    // every DATA byte counts against the connection window, whatever became of its stream
    this.connRecvUnacked += p.length;
    if (this.connRecvUnacked > OUR_CONN_WINDOW / 2) {
      this.sock.write(frame(FrameType.WINDOW_UPDATE, 0, 0, u32(this.connRecvUnacked)));
      this.connRecvUnacked = 0;
    }
    const s = this.streams.get(id);
    if (!s || s.remoteEnded) {
      if (id === 0 || id > this.lastStreamId)
        throw new ConnectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${id}`);
      return; // a stream the hub already closed: dropped
    }
    s.recvUnacked += p.length;
    if (s.recvUnacked > OUR_STREAM_WINDOW) {
      this.resetStream(s, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    let body = p;
    if (flags & PADDED) {
      if (p.length < 1 || p[0]! >= p.length) {
        this.resetStream(s, ErrorCode.PROTOCOL_ERROR);
        return;
      }
      body = p.subarray(1, p.length - p[0]!);
    }
    if (s.recvUnacked > OUR_STREAM_WINDOW / 2 && !(flags & END_STREAM)) {
      this.sock.write(frame(FrameType.WINDOW_UPDATE, 0, id, u32(s.recvUnacked)));
      s.recvUnacked = 0;
    }
    if (body.length > 0) s.h?.onData(body);
    if (flags & END_STREAM && !s.closed) this.remoteEnd(s);
  }

  private remoteEnd(s: H2Stream): void {
    if (s.remoteEnded) return;
    s.remoteEnded = true;
    s.h?.onEnd();
    if (s.localEnded && s.queue.length === 0 && s.queuedTrailers === undefined) this.forget(s, false);
  }

  /** Drops a stream; `abnormal`: tell its owner (reset, connection gone). */
  private forget(s: H2Stream, abnormal: boolean): void {
    if (s.closed) return;
    s.closed = true;
    this.streams.delete(s.id);
    this.blocked.delete(s);
    if (abnormal) s.h?.onClose();
    if (this.goingAway && this.streams.size === 0) this.close();
  }

  sendHeaders(s: H2Stream, block: Buffer, endStream: boolean): void {
    if (this.dead) return;
    // the hub's blocks are a few short fields: one frame (the peer's max frame size is at least 16 KB)
    this.sock.write(frame(FrameType.HEADERS, END_HEADERS | (endStream ? END_STREAM : 0), s.id, block));
    if (endStream) this.localEnd(s);
  }

  sendData(s: H2Stream, data: Buffer): void {
    if (this.dead) return;
    if (s.queue.length > 0) s.queue.push(data);
    else {
      const rest = this.sendWithinWindow(s, data);
      if (rest) {
        s.queue.push(rest);
        this.blocked.add(s);
      }
    }
  }

  endStream(s: H2Stream, trailers: Buffer | null): void {
    if (this.dead) return;
    if (s.queue.length > 0) {
      s.queuedTrailers = trailers;
      return;
    }
    this.finishLocal(s, trailers);
  }

  resetStream(s: H2Stream, code: number): void {
    if (!this.dead) this.sock.write(frame(FrameType.RST_STREAM, 0, s.id, u32(code)));
    this.forget(s, true);
  }

  private finishLocal(s: H2Stream, trailers: Buffer | null): void {
    s.queuedTrailers = undefined;
    if (trailers) this.sock.write(frame(FrameType.HEADERS, END_HEADERS | END_STREAM, s.id, trailers));
    else this.sock.write(frame(FrameType.DATA, END_STREAM, s.id));
    this.localEnd(s);
  }

  private localEnd(s: H2Stream): void {
    s.localEnded = true;
    if (s.remoteEnded) this.forget(s, false);
    else {
      // the response is whole: the client need send nothing more (RFC 9113 §8.1)
      this.sock.write(frame(FrameType.RST_STREAM, 0, s.id, u32(ErrorCode.NO_ERROR)));
      this.forget(s, false);
    }
  }

  /** Sends what the windows allow now (DATA frames of at most the peer's frame size); returns the rest. */
  private sendWithinWindow(s: H2Stream, data: Buffer): Buffer | undefined {
    let off = 0;
    const total = data.length;
    if (total === 0) {
      this.sock.write(frame(FrameType.DATA, 0, s.id));
      return undefined;
    }
    let corked = false;
    while (off < total) {
      const room = Math.min(this.connSendWindow, s.sendWindow, this.peerMaxFrame, total - off);
      if (room <= 0) break;
      if (off === 0 && room === total) {
        // the common case, a whole small message: one buffer, one write
        this.sock.write(frame(FrameType.DATA, 0, s.id, data));
      } else {
        // pieces of a large message: headers and slices, handed to TLS together
        if (!corked) {
          this.sock.cork();
          corked = true;
        }
        this.sock.write(putHead(Buffer.allocUnsafe(9), room, FrameType.DATA, 0, s.id));
        this.sock.write(data.subarray(off, off + room));
      }
      off += room;
      this.connSendWindow -= room;
      s.sendWindow -= room;
    }
    if (corked) this.sock.uncork();
    return off < total ? data.subarray(off) : undefined;
  }

  private flush(s: H2Stream): void {
    while (s.queue.length > 0 && !s.closed) {
      const rest = this.sendWithinWindow(s, s.queue[0]!);
      if (rest) {
        s.queue[0] = rest;
        this.blocked.add(s);
        return;
      }
      s.queue.shift();
    }
    this.blocked.delete(s);
    if (s.queuedTrailers !== undefined && !s.closed) this.finishLocal(s, s.queuedTrailers);
  }

  private flushBlocked(): void {
    for (const s of [...this.blocked]) {
      if (this.connSendWindow <= 0) return;
      this.flush(s);
    }
  }
}
