/**
 * The smallest HTTP/2 client that can hold one bidirectional gRPC call, for
 * bench:protocol's simulated agents (a thousand of them share the hub's 2
 * cores, so each byte of client CPU is taken from what is measured; node:http2
 * spent ~60 µs per agent per change, most of it in its stream layers).
 *
 * One TLS connection (ALPN h2), one stream (id 1). Flow control is set out
 * of the way instead of run: the client announces a 2 GiB stream window and
 * raises the connection window to match, which outlasts any benchmark; its
 * own sending (a Hello and ACKs, a few KB) is counted against the hub's
 * windows and fails loudly rather than overrun them. Request headers are
 * HPACK literals without indexing (no table); response headers are not
 * decoded (nothing read from them): a HEADERS frame that ends the stream, or
 * RST_STREAM, ends the call. SETTINGS and PING are acknowledged.
 *
 * Frames and header literals come from test/kit/h2-attacker.ts (written by
 * hand from the RFCs): nothing here is the hub's server code, so a bug there
 * cannot hide in what measures it.
 */
import type net from "node:net";
import tls from "node:tls";
import { F, frame, grpcPrefix, headerBlock, PREFACE, S as Setting, T } from "../test/kit/h2-attacker.ts";

const { DATA, HEADERS, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE } = T;
const { END_STREAM, ACK, END_HEADERS, PADDED } = F;
const STREAM = 1;
/** a window's size before SETTINGS or WINDOW_UPDATE change it, and the largest (RFC 9113 §6.9) */
const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;

/** A gRPC message on the wire: not compressed, its length, the bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  return Buffer.concat([grpcPrefix(message.length), message]);
}

export type CallHandlers = {
  /** one whole gRPC message (without its 5-byte prefix) */
  onMessage: (msg: Buffer) => void;
  /** the hub ended the call (trailers or RST_STREAM) or the connection went */
  onEnd: () => void;
};

/**
 * Cuts a byte stream into units of `need(head)` bytes (frames, messages),
 * handing over units that lie whole in a chunk without copying; only a unit
 * split across chunks is joined, once, when its last piece arrives.
 */
class Reassembler {
  /** the start of a unit split across chunks, owned (copied out of the read buffer) */
  private parts: Buffer[] = [];
  private pending = 0;
  private readonly headLen: number;
  private readonly need: (head: Buffer) => number;
  private readonly take: (unit: Buffer) => void;
  /** the socket's read buffer: what points into it is valid only until the next read */
  private readonly volatile: ArrayBufferLike;
  constructor(
    volatile: ArrayBufferLike,
    headLen: number,
    need: (head: Buffer) => number,
    take: (unit: Buffer) => void,
  ) {
    this.volatile = volatile;
    this.headLen = headLen;
    this.need = need;
    this.take = take;
  }

  private keep(b: Buffer): void {
    this.parts.push(b.buffer === this.volatile ? Buffer.from(b) : b);
    this.pending += b.length;
  }

  push(chunk: Buffer): void {
    let c = chunk;
    if (this.pending > 0) {
      const first = this.parts[0]!;
      let need: number | undefined;
      if (first.length >= this.headLen) need = this.need(first);
      else if (this.pending + c.length >= this.headLen) need = this.need(Buffer.concat([...this.parts, c]));
      if (need === undefined || this.pending + c.length < need) {
        this.keep(c);
        return;
      }
      const missing = need - this.pending;
      this.parts.push(c.subarray(0, missing));
      const unit = Buffer.concat(this.parts, need);
      this.parts = [];
      this.pending = 0;
      c = c.subarray(missing);
      this.take(unit);
    }
    let pos = 0;
    while (c.length - pos >= this.headLen) {
      const need = this.need(c.subarray(pos, pos + this.headLen));
      if (c.length - pos < need) break;
      this.take(c.subarray(pos, pos + need));
      pos += need;
    }
    if (pos < c.length) this.keep(c.subarray(pos));
  }
}

export class GrpcCall {
  private readonly sock: tls.TLSSocket;
  private ended = false;
  /** what the hub lets us send: connection and stream windows */
  private connWindow = DEFAULT_WINDOW;
  private streamWindow = DEFAULT_WINDOW;
  private peerInitialWindow = DEFAULT_WINDOW;
  private readonly h: CallHandlers;

  constructor(
    address: string,
    secureContext: tls.SecureContext,
    path: string,
    headers: Record<string, string>,
    h: CallHandlers,
  ) {
    this.h = h;
    const [host, port] = [
      address.slice(0, address.lastIndexOf(":")),
      Number(address.slice(address.lastIndexOf(":") + 1)),
    ];
    // reads land in one buffer per connection, handed over without Node's stream layer (copied only when a frame waits for more)
    const readBuf = Buffer.alloc(64 * 1024);
    // Node reads TLS into a static buffer too (since v15), though its typings list onread only for net
    const options: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host,
      port,
      secureContext,
      ALPNProtocols: ["h2"],
      onread: {
        buffer: readBuf,
        callback: (n: number, buf: Uint8Array) => {
          frames.push(Buffer.from(buf.buffer, buf.byteOffset, n));
          return true;
        },
      },
    };
    this.sock = tls.connect(options);
    this.sock.setNoDelay(true);
    const messages = new Reassembler(
      readBuf.buffer,
      5,
      (head) => 5 + head.readUInt32BE(1),
      (m) => h.onMessage(m.subarray(5)),
    );
    const frames = new Reassembler(
      readBuf.buffer,
      9,
      (head) => 9 + head.readUIntBE(0, 3),
      (f) => this.onFrame(f, messages),
    );
    this.sock.on("error", () => this.end());
    this.sock.on("close", () => this.end());
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(Setting.ENABLE_PUSH, 0);
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(Setting.INITIAL_WINDOW_SIZE, 6);
    settings.writeUInt32BE(MAX_WINDOW, 8);
    const raise = Buffer.alloc(4);
    raise.writeUInt32BE(MAX_WINDOW - DEFAULT_WINDOW, 0);
    const block = headerBlock([
      [":method", "POST"],
      [":scheme", "https"],
      [":path", path],
      [":authority", address],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ...Object.entries(headers),
    ]);
    this.sock.write(
      Buffer.concat([
        PREFACE,
        frame(SETTINGS, 0, 0, settings),
        frame(WINDOW_UPDATE, 0, 0, raise),
        frame(HEADERS, END_HEADERS, STREAM, block),
      ]),
    );
  }

  /** Sends one gRPC message (already framed with grpcFrame) on the call. */
  write(framed: Buffer): void {
    if (this.ended) return;
    if (framed.length > this.connWindow || framed.length > this.streamWindow)
      throw new Error(`h2-lite: the hub's flow-control window is exhausted (${framed.length} B to send)`);
    this.connWindow -= framed.length;
    this.streamWindow -= framed.length;
    this.sock.write(frame(DATA, 0, STREAM, framed));
  }

  close(): void {
    this.ended = true;
    this.sock.destroy();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.sock.destroy();
    this.h.onEnd();
  }

  private onFrame(f: Buffer, messages: Reassembler): void {
    const type = f[3]!;
    const flags = f[4]!;
    const stream = f.readUInt32BE(5) & 0x7fffffff;
    let payload = f.subarray(9);
    if (type === DATA && stream === STREAM) {
      if (flags & PADDED) payload = payload.subarray(1, payload.length - payload[0]!);
      if (payload.length > 0) messages.push(payload);
      if (flags & END_STREAM) this.end();
    } else if (type === HEADERS && stream === STREAM) {
      if (flags & END_STREAM) this.end();
    } else if (type === RST_STREAM && stream === STREAM) this.end();
    else if (type === SETTINGS && !(flags & ACK)) {
      for (let i = 0; i + 6 <= payload.length; i += 6)
        if (payload.readUInt16BE(i) === Setting.INITIAL_WINDOW_SIZE) {
          const v = payload.readUInt32BE(i + 2);
          this.streamWindow += v - this.peerInitialWindow;
          this.peerInitialWindow = v;
        }
      this.sock.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
    } else if (type === PING && !(flags & ACK)) this.sock.write(frame(PING, ACK, 0, payload));
    else if (type === WINDOW_UPDATE) {
      const inc = payload.readUInt32BE(0) & 0x7fffffff;
      if (stream === 0) this.connWindow += inc;
      else if (stream === STREAM) this.streamWindow += inc;
    }
  }
}
