/**
 * The hub's port on node:http2 (nghttp2, with its defences against rapid
 * reset, CONTINUATION floods, HPACK bombs and control-frame floods from a
 * peer that does not read), one listener per thread that serves it, and the
 * limits a port open to the world needs (limits.ts):
 *
 * - connections: a total and a per-source cap shared by every thread
 *   (connection-gate.ts), counted at TCP accept, before TLS;
 * - deadlines: accept → TLS done, then → the client's HTTP/2 preface, both
 *   hard (a trickling client does not extend them), then an idle timeout
 *   for a connection that holds no authenticated stream;
 * - streams: SETTINGS_MAX_CONCURRENT_STREAMS, and nghttp2's stream-reset
 *   rate limit (GOAWAY for a client that opens and resets streams faster);
 * - writes: bytes queued for a peer, not yet taken by its socket, are
 *   counted per connection; past the bound the peer is cut off.
 *
 * Sockets are accepted by a plain net.Server (SO_REUSEPORT with the other
 * I/O threads) and handed to the HTTP/2 server, so a refused connection
 * costs no TLS handshake.
 */
import http2 from "node:http2";
import net from "node:net";
import { ConnectionGate } from "./connection-gate.ts";
import { DEFAULT_LIMITS, type FrontLimits, UNAUTHENTICATED_WRITE_BUFFER_BYTES } from "./limits.ts";
import { RefusalCounts, type RefusalReason, sessionErrorReason } from "./refusals.ts";
import {
  H2Error,
  type HeaderList,
  type Listener,
  type ListenerOptions,
  lastHeader,
  type ServerStream,
  type StreamHandlers,
} from "./server-stream.ts";

/** the window the hub gives each stream and the connection (agents send little; a 16 MB message still flows) */
const STREAM_WINDOW = 1 << 20;
const CONNECTION_WINDOW = 16 << 20;
const MAX_HEADER_LIST = 64 * 1024;
/** malformed frames a connection may send before it is closed (nghttp2 counts them) */
const MAX_INVALID_FRAMES = 100;
/** a connection told to go away (idle, limits) is destroyed after this if its streams do not end */
const GOAWAY_GRACE_MS = 2000;

/** One accepted connection: its deadlines, its session once HTTP/2 starts, what it has queued. */
type Conn = {
  sock: net.Socket;
  peer: string;
  session: http2.ServerHttp2Session | undefined;
  /** the handshake or preface deadline while one runs */
  deadline: NodeJS.Timeout | undefined;
  idle: NodeJS.Timeout | undefined;
  keepalive: NodeJS.Timeout | undefined;
  /** streams the hub answered with a message on a routed path (authenticated calls) */
  authenticated: number;
  /** response bytes handed to node:http2 and not yet written to the socket */
  queued: number;
  gone: boolean;
  /** counted as refused or cut off (once, under the first reason) */
  refused: boolean;
};

function toOutgoing(fields: HeaderList): http2.OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of fields) {
    const had = out[k];
    out[k] = had === undefined ? v : Array.isArray(had) ? [...had, v] : [had, v];
  }
  return out;
}

class Http2ServerStream implements ServerStream {
  readonly headers: HeaderList;
  readonly peer: string;
  private readonly stream: http2.ServerHttp2Stream;
  private readonly conn: Conn;
  private readonly owner: Http2Listener;
  private readonly routed: boolean;
  private h: StreamHandlers | undefined;
  /** the hub ended or reset its side */
  private ended = false;
  private trailers: http2.OutgoingHttpHeaders | undefined;
  private countsAsAuthenticated = false;

  constructor(
    owner: Http2Listener,
    stream: http2.ServerHttp2Stream,
    headers: HeaderList,
    conn: Conn,
    routed: boolean,
  ) {
    this.owner = owner;
    this.stream = stream;
    this.headers = headers;
    this.conn = conn;
    this.peer = conn.peer;
    this.routed = routed;
    stream.on("close", () => {
      this.owner.streams.delete(this);
      if (this.countsAsAuthenticated) this.owner.authenticatedGone(conn);
      if (!this.ended) this.guard(() => this.h?.onClose());
    });
  }

  header(name: string): string | undefined {
    return lastHeader(this.headers, name);
  }

  start(h: StreamHandlers): void {
    this.h = h;
    this.stream.on("data", (d: Buffer) => this.guard(() => this.h?.onData(d)));
    this.stream.on("end", () => this.guard(() => this.h?.onEnd()));
    if (this.owner.paused) this.stream.pause();
  }

  respond(fields: HeaderList, endStream = false): void {
    const st = this.stream;
    if (this.ended || st.destroyed || st.headersSent) return;
    if (endStream) {
      this.ended = true;
      st.respond(toOutgoing(fields), { endStream: true });
      this.stopReading();
      return;
    }
    st.respond(toOutgoing(fields), { waitForTrailers: true });
    st.once("wantTrailers", () => {
      if (st.destroyed) return;
      st.sendTrailers(this.trailers ?? {});
      // (closed at once, the stream would drop the trailers just submitted)
      setImmediate(() => this.stopReading());
    });
    if (this.routed) {
      this.countsAsAuthenticated = true;
      this.owner.authenticatedOpen(this.conn);
    }
  }

  write(data: Buffer): void {
    if (this.ended || this.stream.destroyed) return;
    const conn = this.conn;
    const n = data.length;
    conn.queued += n;
    this.stream.write(data, () => {
      conn.queued -= n;
    });
    this.owner.checkQueued(conn);
  }

  end(trailers?: HeaderList): void {
    if (this.ended || this.stream.destroyed) return;
    this.ended = true;
    if (trailers) this.trailers = toOutgoing(trailers);
    this.stream.end();
    // what the client still sends is dropped
    this.stream.resume();
  }

  reset(code: number = H2Error.CANCEL): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.stream.destroyed) this.stream.close(code);
  }

  closeConnection(): void {
    this.conn.session?.destroy(undefined, http2.constants.NGHTTP2_INTERNAL_ERROR);
  }

  /** The response is whole: the client need send nothing more (RST_STREAM NO_ERROR, RFC 9113 §8.1); what it sends meanwhile is dropped. */
  private stopReading(): void {
    const st = this.stream;
    if (!st.readableEnded && !st.destroyed) st.close(H2Error.NO_ERROR);
    st.resume();
  }

  /** An exception from a handler: its connection goes, every other stays. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.owner.internalError(this.conn, e);
    }
  }

  pause(): void {
    if (this.h) this.stream.pause();
  }
  resume(): void {
    if (this.h) this.stream.resume();
  }
}

class Http2Listener {
  readonly streams = new Set<Http2ServerStream>();
  readonly conns = new Map<string, Conn>();
  paused = false;
  private readonly opts: ListenerOptions;
  readonly limits: FrontLimits;
  readonly refusals: RefusalCounts;

  constructor(opts: ListenerOptions) {
    this.opts = opts;
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.refusals = new RefusalCounts(opts.refusals);
  }

  /** Counts a connection the port's limits end (once; the first reason wins). */
  refuse(c: Conn, reason: RefusalReason): void {
    if (c.refused) return;
    c.refused = true;
    this.refusals.add(reason);
  }

  authenticatedOpen(c: Conn): void {
    c.authenticated++;
    clearTimeout(c.idle);
    c.idle = undefined;
  }

  authenticatedGone(c: Conn): void {
    c.authenticated--;
    this.armIdle(c);
  }

  /** A connection with no authenticated stream is closed after the idle timeout. */
  armIdle(c: Conn): void {
    if (c.gone || c.authenticated > 0 || c.idle) return;
    c.idle = setTimeout(() => {
      if (c.session && !c.session.closed && !c.session.destroyed) this.refuse(c, "idle-timeout");
      this.goAway(c);
    }, this.limits.idleTimeoutMs);
    c.idle.unref();
  }

  checkQueued(c: Conn): void {
    const bound = c.authenticated > 0 ? this.limits.maxWriteBufferBytes : UNAUTHENTICATED_WRITE_BUFFER_BYTES;
    // a peer that does not read: cut off, not buffered
    if (c.queued > bound && c.session && !c.session.destroyed) {
      this.refuse(c, "write-buffer");
      c.session.destroy(undefined, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    }
  }

  internalError(c: Conn, e: unknown): void {
    this.opts.onInternalError(e instanceof Error ? e : new Error(String(e)));
    c.session?.destroy(undefined, http2.constants.NGHTTP2_INTERNAL_ERROR);
  }

  /** GOAWAY; the connection is destroyed when its streams end, or after a grace. */
  goAway(c: Conn): void {
    const s = c.session;
    if (!s || s.closed || s.destroyed) return;
    s.close();
    setTimeout(() => s.destroy(), GOAWAY_GRACE_MS).unref();
  }

  onStream(
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    rawHeaders: string[],
    routed: ReadonlySet<string>,
  ): void {
    stream.on("error", () => {});
    const session = stream.session;
    const sock = session?.socket;
    const c = sock && this.conns.get(`${sock.remoteAddress}:${sock.remotePort}`);
    if (!c) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const fields: HeaderList = [];
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) fields.push([rawHeaders[i]!, rawHeaders[i + 1]!]);
    const s = new Http2ServerStream(this, stream, fields, c, routed.has(String(headers[":path"])));
    this.streams.add(s);
    try {
      this.opts.onStream(s);
    } catch (e) {
      this.internalError(c, e);
    }
  }

  onSession(session: http2.ServerHttp2Session): void {
    const sock = session.socket;
    const c = this.conns.get(`${sock.remoteAddress}:${sock.remotePort}`);
    // nghttp2 ends the session with an error for floods, rapid reset and protocol errors (its GOAWAY is sent)
    session.on("error", (e) => {
      if (c) this.refuse(c, sessionErrorReason(e));
    });
    if (!c) {
      session.destroy();
      return;
    }
    c.session = session;
    // TLS is done (or there is none): the client's preface and SETTINGS are next
    clearTimeout(c.deadline);
    c.deadline = setTimeout(() => {
      this.refuse(c, "preface-timeout");
      c.sock.destroy();
    }, this.limits.prefaceTimeoutMs);
    c.deadline.unref();
    session.once("remoteSettings", () => {
      clearTimeout(c.deadline);
      c.deadline = undefined;
      this.armIdle(c);
    });
    try {
      session.setLocalWindowSize(CONNECTION_WINDOW);
    } catch {}
    const interval = this.opts.keepaliveIntervalMs ?? 30_000;
    const timeout = this.opts.keepaliveTimeoutMs ?? 20_000;
    c.keepalive = setInterval(() => {
      if (session.destroyed) return;
      // a peer that does not answer a ping within the timeout loses its connection and its calls
      const dead = setTimeout(() => {
        this.refuse(c, "keepalive-timeout");
        session.destroy();
      }, timeout);
      dead.unref();
      try {
        session.ping((err) => {
          clearTimeout(dead);
          if (err) session.destroy();
        });
      } catch {
        clearTimeout(dead);
        session.destroy();
      }
    }, interval);
    c.keepalive.unref();
  }

  /** A TCP connection: counted (or refused), its deadline set, handed to the HTTP/2 server. */
  accept(sock: net.Socket, gate: ConnectionGate, server: net.Server): void {
    sock.on("error", () => {});
    const address = sock.remoteAddress;
    if (address === undefined) {
      sock.destroy();
      return;
    }
    const L = this.limits;
    const refused = gate.admit(address, L.maxConnections, L.maxConnectionsPerSource);
    if (refused) {
      this.refusals.add(refused === "total" ? "total-cap" : "source-cap");
      sock.destroy();
      return;
    }
    const peer = `${address}:${sock.remotePort}`;
    const c: Conn = {
      sock,
      peer,
      session: undefined,
      deadline: undefined,
      idle: undefined,
      keepalive: undefined,
      authenticated: 0,
      queued: 0,
      gone: false,
      refused: false,
    };
    c.deadline = setTimeout(
      () => {
        this.refuse(c, this.opts.tls ? "handshake-timeout" : "preface-timeout");
        sock.destroy();
      },
      this.opts.tls ? L.handshakeTimeoutMs : L.prefaceTimeoutMs,
    );
    c.deadline?.unref();
    this.conns.set(peer, c);
    sock.once("close", () => {
      c.gone = true;
      clearTimeout(c.deadline);
      clearTimeout(c.idle);
      clearInterval(c.keepalive);
      this.conns.delete(peer);
      gate.release(address);
    });
    sock.setNoDelay(true);
    server.emit("connection", sock);
  }
}

export async function listenHttp2(opts: ListenerOptions): Promise<Listener> {
  const l = new Http2Listener(opts);
  const L = l.limits;
  const gate = new ConnectionGate(opts.gate?.shared, opts.gate?.row);
  const routed = new Set(opts.routedPaths ?? []);
  const options: http2.ServerOptions = {
    settings: {
      maxConcurrentStreams: L.maxStreamsPerConnection,
      initialWindowSize: STREAM_WINDOW,
      maxHeaderListSize: MAX_HEADER_LIST,
      enablePush: false,
    },
    maxSessionInvalidFrames: MAX_INVALID_FRAMES,
    // nghttp2's token bucket for streams the client resets (CVE-2023-44487): GOAWAY when empty
    streamResetRate: L.maxResetsPerSecond,
    streamResetBurst: 2 * L.maxResetsPerSecond,
    maxSessionMemory: Math.max(10, Math.ceil((2 * L.maxWriteBufferBytes) / (1 << 20))),
  };
  const server = opts.tls
    ? http2.createSecureServer({
        ...options,
        cert: opts.tls.cert,
        key: opts.tls.key,
        ALPNProtocols: ["h2"],
        allowHTTP1: false,
        handshakeTimeout: L.handshakeTimeoutMs,
      })
    : http2.createServer(options);
  server.on("session", (s) => l.onSession(s));
  server.on(
    "stream",
    (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) =>
      l.onStream(stream, headers, raw, routed),
  );
  // a client that did not negotiate h2 (or no ALPN at all) is not a gRPC client
  server.on("unknownProtocol", (sock: net.Socket) => sock.destroy());
  // a TLS handshake that fails (wrong CA, not TLS) is the client's problem, not the hub's
  server.on("tlsClientError", () => {});
  server.on("sessionError", () => {});

  const tcp = net.createServer((sock) => l.accept(sock, gate, server));
  const port = await new Promise<number>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen({ port: opts.port, host: opts.host, reusePort: opts.reusePort ?? false }, () => {
      tcp.off("error", reject);
      resolve((tcp.address() as net.AddressInfo).port);
    });
  });
  return {
    port,
    openStreams: () => l.streams.size,
    refusals: () => l.refusals.totals(),
    pauseReading: () => {
      l.paused = true;
      for (const s of l.streams) s.pause();
    },
    resumeReading: () => {
      l.paused = false;
      for (const s of l.streams) s.resume();
    },
    close: async () => {
      const closed = new Promise<void>((r) => tcp.close(() => r()));
      for (const c of [...l.conns.values()]) {
        if (c.session) c.session.destroy();
        else c.sock.destroy();
      }
      await closed;
    },
  };
}
