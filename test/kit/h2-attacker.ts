/**
 * A hostile HTTP/2 client for attack tests: frames written by hand (RFC
 * 9113) and header blocks encoded by hand (RFC 7541 literals, no Huffman),
 * so it can send what a well-behaved client never would. It shares no code
 * with the hub's server on purpose: a bug there must not hide here. The
 * frames and header literals are also what bench/h2-lite.ts (the benchmark's
 * light client) sends, for the same reason.
 *
 * Loopback only: it connects to the hub under test, from a chosen
 * 127.0.0.0/8 address (so the hub's per-source limits see it apart from
 * the legitimate clients of the same test).
 */
import net from "node:net";
import tls from "node:tls";

export const T = {
  DATA: 0,
  HEADERS: 1,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const;
export const F = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8 } as const;
/** SETTINGS identifiers (RFC 9113 §6.5.2) */
export const S = { ENABLE_PUSH: 0x2, INITIAL_WINDOW_SIZE: 0x4 } as const;

/** A frame: the 9-byte header (length, type, flags, stream id) and the payload, in one buffer. */
export function frame(type: number, flags: number, stream: number, payload?: Uint8Array): Buffer {
  const len = payload?.length ?? 0;
  const out = Buffer.allocUnsafe(9 + len);
  out.writeUIntBE(len, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(stream >>> 0, 5);
  if (payload) out.set(payload, 9);
  return out;
}

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** the preface and an empty SETTINGS frame: what a client sends first */
export const OPENING = Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0)]);

/** an HPACK integer with an N-bit prefix (RFC 7541 §5.1) */
function hpackInt(first: number, prefixBits: number, n: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (n < max) return [first | n];
  const out = [first | max];
  let rest = n - max;
  while (rest >= 128) {
    out.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  out.push(rest);
  return out;
}

function hpackString(s: string | Buffer): Buffer {
  const b = typeof s === "string" ? Buffer.from(s, "latin1") : s;
  return Buffer.concat([Buffer.from(hpackInt(0, 7, b.length)), b]);
}

/** A header block of literals without indexing (new names): the plainest encoding. */
export function headerBlock(fields: Array<[string, string]>): Buffer {
  return Buffer.concat(fields.flatMap(([k, v]) => [Buffer.from([0x00]), hpackString(k), hpackString(v)]));
}

/** A literal header with incremental indexing: it lands in the decoder's dynamic table (index 62). */
export function indexedLiteral(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString(value)]);
}

/** A reference to a dynamic-table entry (62 = the newest), `times` over. */
export function indexedRefs(index: number, times: number): Buffer {
  return Buffer.from(Array.from({ length: times }, () => hpackInt(0x80, 7, index)).flat());
}

export function grpcRequest(path: string, extra: Array<[string, string]> = []): Buffer {
  return headerBlock([
    [":method", "POST"],
    [":scheme", "https"],
    [":path", path],
    [":authority", "hub"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra,
  ]);
}

export const headers = (stream: number, block: Buffer, flags: number = F.END_HEADERS) =>
  frame(T.HEADERS, flags, stream, block);
export const rst = (stream: number, code = 8) => {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(T.RST_STREAM, 0, stream, p);
};
export const ping = (n = 0) => {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(n >>> 0, 4);
  return frame(T.PING, 0, 0, p);
};
export const settings = () => frame(T.SETTINGS, 0, 0, Buffer.from([0, 4, 0, 0, 0xff, 0xff]));
export const data = (stream: number, payload: Buffer, flags: number = 0) =>
  frame(T.DATA, flags, stream, payload);
export const windowUpdate = (stream: number, inc: number) => {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(inc >>> 0);
  return frame(T.WINDOW_UPDATE, 0, stream, p);
};

/** A gRPC message prefix announcing `length` bytes (not compressed). */
export function grpcPrefix(length: number): Buffer {
  const p = Buffer.alloc(5);
  p.writeUInt32BE(length, 1);
  return p;
}

export type Attacker = {
  sock: net.Socket;
  /** frames the hub sent, as far as read (nothing when reading is off) */
  received: Array<{ type: number; flags: number; stream: number; payload: Buffer }>;
  /** the hub sent a GOAWAY: its error code */
  goaway: number | undefined;
  closed: Promise<void>;
  isClosed: () => boolean;
  /** Writes unless the connection is gone; false when it is. */
  send: (b: Buffer) => boolean;
  /** Writes many frames, waiting for the socket to drain now and then; stops when the hub closes. Returns how many went out. */
  sendMany: (count: number, make: (i: number) => Buffer, batch?: number) => Promise<number>;
  destroy: () => void;
};

export type AttackOptions = {
  port: number;
  /** TLS (ALPN h2, the hub's certificate not checked) */
  tls?: boolean;
  /** the source address, in 127.0.0.0/8 */
  localAddress: string;
  /** read and parse what the hub sends (false: never read — a client whose buffers fill) */
  read?: boolean;
  /** stop after the TCP (or TLS) connection: send no preface */
  noPreface?: boolean;
};

/** A connection to the hub: TCP (and TLS), then the preface unless told not to. */
export async function attack(opts: AttackOptions): Promise<Attacker> {
  const raw = net.connect({ host: "127.0.0.1", port: opts.port, localAddress: opts.localAddress });
  raw.on("error", () => {});
  const sock: net.Socket = opts.tls
    ? tls.connect({ socket: raw, rejectUnauthorized: false, ALPNProtocols: ["h2"], servername: "hub" })
    : raw;
  sock.on("error", () => {});
  let closedFlag = false;
  const closed = new Promise<void>((resolve) =>
    sock.once("close", () => {
      closedFlag = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve) => {
    sock.once(opts.tls ? "secureConnect" : "connect", () => resolve());
    sock.once("close", () => resolve());
  });
  const a: Attacker = {
    sock,
    received: [],
    goaway: undefined,
    closed,
    isClosed: () => closedFlag || sock.destroyed,
    send: (b) => {
      if (a.isClosed()) return false;
      sock.write(b);
      return true;
    },
    sendMany: async (count, make, batch = 256) => {
      let sent = 0;
      while (sent < count && !a.isClosed()) {
        const n = Math.min(batch, count - sent);
        const chunk = Buffer.concat(Array.from({ length: n }, (_, j) => make(sent + j)));
        const ok = sock.write(chunk);
        sent += n;
        if (!ok)
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => done(), 2000);
            const done = () => {
              clearTimeout(t);
              sock.off("drain", done);
              sock.off("close", done);
              resolve();
            };
            sock.once("drain", done);
            sock.once("close", done);
          });
      }
      return sent;
    },
    destroy: () => sock.destroy(),
  };
  if (opts.read === false) sock.pause();
  else {
    let pending = Buffer.alloc(0);
    sock.on("data", (d: Buffer) => {
      pending = Buffer.concat([pending, d]);
      while (pending.length >= 9) {
        const len = pending.readUIntBE(0, 3);
        if (pending.length < 9 + len) break;
        const f = {
          type: pending[3]!,
          flags: pending[4]!,
          stream: pending.readUInt32BE(5) & 0x7fffffff,
          payload: pending.subarray(9, 9 + len),
        };
        if (f.type === T.GOAWAY && len >= 8) a.goaway = f.payload.readUInt32BE(4);
        // keep what tests look at (not DATA, which may be large)
        if (f.type !== T.DATA && a.received.length < 10_000) a.received.push(f);
        pending = pending.subarray(9 + len);
      }
    });
  }
  if (!opts.noPreface && !a.isClosed()) sock.write(OPENING);
  return a;
}

/** Waits for the hub to close the connection, at most `ms`; true when it did. */
export async function closedWithin(a: Attacker, ms: number): Promise<boolean> {
  if (a.isClosed()) return true;
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    a.closed.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return r;
}
