/**
 * The hub's listening port: one HTTP/2 server (TLS with ALPN h2, or
 * cleartext h2 with prior knowledge) that serves the hot gRPC methods itself
 * (GrpcCall) and hands every other call — health checking, reflection,
 * anything added later — to a grpc-js server through an in-process
 * connection (no socket, no file). So `grpcurl` and load-balancer health
 * checks see one ordinary gRPC server, and the agents' streams skip
 * grpc-js's per-message layers.
 *
 * The HTTP/2 stack is node:http2 (nghttp2: http2-listener.ts, with the
 * port's limits, limits.ts); the hub has no framing of its own.
 *
 * Also what grpc-js did for the whole port: keepalive pings (a peer that does
 * not answer within the timeout loses its connection and its calls), a cap on
 * concurrent streams per connection, and a 415 for requests that are not gRPC.
 */
import http2 from "node:http2";
import { duplexPair } from "node:stream";
import type { Worker } from "node:worker_threads";
import * as grpc from "@grpc/grpc-js";
import { GrpcCall, Status } from "./grpc-call.ts";
import { listenHttp2 } from "./http2-listener.ts";
import { startIoThreads } from "./io-threads/pool.ts";
import { DEFAULT_LIMITS, type FrontLimits } from "./limits.ts";
import { RefusalCounts, type RefusalReason } from "./refusals.ts";
import type { ServerStream } from "./server-stream.ts";

export type FrontOptions = {
  host: string;
  port: number;
  tls?: { cert: Buffer; key: Buffer } | undefined;
  /** gRPC method path ("/pkg.Service/Method") → handler of one call */
  routes: ReadonlyMap<string, (call: GrpcCall) => void>;
  /** serves every other path (grpc-js, reached in process) */
  fallback: grpc.Server;
  maxMessageBytes: number;
  /** the port's limits (limits.ts) */
  limits?: FrontLimits;
  keepaliveIntervalMs?: number;
  keepaliveTimeoutMs?: number;
  /**
   * connections (TLS, HTTP/2) served by this many I/O threads sharing the
   * port; 0: on the main thread (io-threads/)
   */
  ioThreads?: number;
  /** an exception from a handler: its connection was closed */
  onInternalError?: (e: Error) => void;
};

export type Front = {
  port: number;
  /** the I/O threads serving the connections (none when they are on the main thread) */
  ioWorkers: () => Worker[];
  /** streams open now per thread that serves their connections: "0", "1", … or "main" */
  openStreams: () => Map<string, number>;
  /** connections refused or cut off by the port's limits since it opened, by reason (every thread) */
  refusals: () => Map<RefusalReason, number>;
  close: () => Promise<void>;
};

/** headers that belong to one HTTP/2 hop, not to the call */
const HOP_HEADERS = new Set([":method", ":path", ":authority", ":scheme", "connection", "host"]);

export async function serveFront(opts: FrontOptions): Promise<Front> {
  const inner = innerClient(opts.fallback);
  const limits = opts.limits ?? DEFAULT_LIMITS;
  const callLimits = { maxMessageBytes: opts.maxMessageBytes, messageTimeoutMs: limits.messageTimeoutMs };
  const onStream = (s: ServerStream) => {
    const ct = s.header("content-type") ?? "";
    if (s.header(":method") !== "POST" || !/^application\/grpc([+;]|$)/.test(ct)) {
      s.respond([
        [":status", "415"],
        ["content-type", "text/plain"],
      ]);
      s.write(Buffer.from("this port speaks gRPC (POST, content-type application/grpc)\n"));
      s.end();
      return;
    }
    const route = opts.routes.get(s.header(":path") ?? "");
    if (route) route(new GrpcCall(s, callLimits));
    else proxy(s, inner);
  };
  const refusals = RefusalCounts.createShared();
  const counts = new RefusalCounts(refusals);
  const common = {
    refusals,
    host: opts.host,
    port: opts.port,
    tls: opts.tls,
    keepaliveIntervalMs: opts.keepaliveIntervalMs,
    keepaliveTimeoutMs: opts.keepaliveTimeoutMs,
    limits,
    routedPaths: [...opts.routes.keys()],
    onStream,
    onInternalError: opts.onInternalError ?? ((e: Error) => process.stderr.write(`${e.stack ?? e}\n`)),
  };
  const served = opts.ioThreads
    ? await startIoThreads({ ...common, threads: opts.ioThreads })
    : await listenHttp2(common);
  return {
    port: served.port,
    ioWorkers: () => ("workers" in served ? served.workers() : []),
    openStreams: () =>
      "workers" in served
        ? new Map(served.openStreams().map((n, i) => [String(i), n]))
        : new Map([["main", served.openStreams()]]),
    refusals: () => counts.totals(),
    close: async () => {
      await served.close();
      inner.close();
    },
  };
}

type Inner = {
  /** the in-process session for calls of this client connection (`peer`), made on first use */
  session: (peer: string) => http2.ClientHttp2Session;
  /** a call of that connection ended: its session goes with its last call */
  done: (peer: string) => void;
  close: () => void;
};

/**
 * HTTP/2 clients of the grpc-js server over in-process stream pairs, one per
 * client connection that has calls open there: what one client does to its
 * session (open and cancel streams by the thousand, never read) trips only
 * its own — grpc-js's nghttp2 closes a session that resets too many
 * streams, and a shared one would take every health check with it.
 */
function innerClient(fallback: grpc.Server): Inner {
  const injector = fallback.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const sessions = new Map<string, { s: http2.ClientHttp2Session; calls: number }>();
  return {
    session: (peer) => {
      const had = sessions.get(peer);
      if (had && !had.s.closed && !had.s.destroyed) {
        had.calls++;
        return had.s;
      }
      const [near, far] = duplexPair();
      injector.injectConnection(far);
      const s = http2.connect("http://switchyard-hub.internal", { createConnection: () => near });
      s.on("error", () => {});
      s.on("close", () => {
        if (sessions.get(peer)?.s === s) sessions.delete(peer);
      });
      sessions.set(peer, { s, calls: 1 });
      return s;
    },
    done: (peer) => {
      const e = sessions.get(peer);
      if (!e || --e.calls > 0) return;
      sessions.delete(peer);
      e.s.close();
    },
    close: () => {
      for (const e of sessions.values()) e.s.destroy();
      injector.destroy();
    },
  };
}

/** One call relayed to the grpc-js server: headers, messages both ways, trailers. */
function proxy(stream: ServerStream, inner: Inner): void {
  const out: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": stream.header(":path") };
  for (const [k, v] of stream.headers) if (!HOP_HEADERS.has(k)) out[k] = v;
  let req: http2.ClientHttp2Stream;
  const peer = stream.peer;
  try {
    req = inner.session(peer).request(out);
  } catch {
    inner.done(peer);
    stream.respond(
      [
        [":status", "200"],
        ["content-type", "application/grpc"],
        ["grpc-status", String(Status.UNAVAILABLE)],
        ["grpc-message", "the hub's service is restarting"],
      ],
      true,
    );
    return;
  }
  const pairs = (h: http2.IncomingHttpHeaders, pseudo: boolean): Array<[string, string]> =>
    Object.entries(h).flatMap(([k, v]) =>
      v === undefined || (!pseudo && k.startsWith(":"))
        ? []
        : (Array.isArray(v) ? v : [String(v)]).map((x) => [k, x] as [string, string]),
    );
  req.once("close", () => inner.done(peer));
  let trailers: http2.IncomingHttpHeaders | undefined;
  req.on("response", (h, flags) => {
    stream.respond(pairs(h, true), (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0);
  });
  req.on("data", (d: Buffer) => stream.write(d));
  req.on("trailers", (t) => {
    trailers = t;
  });
  req.on("end", () => stream.end(pairs(trailers ?? { "grpc-status": String(Status.INTERNAL) }, false)));
  req.on("error", () => stream.reset());
  stream.start({
    onData: (d) => req.write(d),
    onEnd: () => req.end(),
    onClose: () => {
      if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
    },
  });
}
