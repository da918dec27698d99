/**
 * The hub's listening port: one HTTP/2 server (node:http2, TLS with ALPN h2,
 * or cleartext h2 with prior knowledge) that serves the hot gRPC methods
 * itself (GrpcCall) and hands every other call — health checking,
 * reflection, anything added later — to a grpc-js server through an
 * in-process connection (no socket, no file). So `grpcurl` and load-balancer
 * health checks see one ordinary gRPC server, and the agents' streams skip
 * grpc-js's per-message layers.
 *
 * Also what grpc-js did for the whole port: keepalive pings (a peer that does
 * not answer within the timeout loses its connection and its calls), a cap on
 * concurrent streams per connection, and a 415 for requests that are not gRPC.
 */
import http2 from "node:http2";
import { duplexPair } from "node:stream";
import * as grpc from "@grpc/grpc-js";
import { GrpcCall, Status } from "./grpc-call.ts";

export type FrontOptions = {
  host: string;
  port: number;
  tls?: { cert: Buffer; key: Buffer } | undefined;
  /** gRPC method path ("/pkg.Service/Method") → handler of one call */
  routes: ReadonlyMap<string, (call: GrpcCall) => void>;
  /** serves every other path (grpc-js, reached in process) */
  fallback: grpc.Server;
  maxMessageBytes: number;
  keepaliveIntervalMs?: number;
  keepaliveTimeoutMs?: number;
};

export type Front = { port: number; close: () => Promise<void> };

/** headers that belong to one HTTP/2 hop, not to the call */
const HOP_HEADERS = new Set([":method", ":path", ":authority", ":scheme", "connection", "host"]);

export async function serveFront(opts: FrontOptions): Promise<Front> {
  const settings = { maxConcurrentStreams: 100 };
  const server = opts.tls
    ? http2.createSecureServer({
        cert: opts.tls.cert,
        key: opts.tls.key,
        ALPNProtocols: ["h2"],
        allowHTTP1: false,
        settings,
      })
    : http2.createServer({ settings });
  const sessions = new Set<http2.ServerHttp2Session>();
  const interval = opts.keepaliveIntervalMs ?? 30_000;
  const timeout = opts.keepaliveTimeoutMs ?? 20_000;

  server.on("session", (session) => {
    sessions.add(session);
    const ping = setInterval(() => {
      if (session.destroyed) return;
      const dead = setTimeout(() => session.destroy(), timeout);
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
    ping.unref();
    session.on("close", () => {
      clearInterval(ping);
      sessions.delete(session);
    });
    session.on("error", () => session.destroy());
  });
  // a TLS handshake that fails (wrong CA, not TLS) is the client's problem, not the hub's
  server.on("sessionError", () => {});
  server.on("tlsClientError", () => {});

  const inner = innerClient(opts.fallback);
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    const ct = headers["content-type"] ?? "";
    if (headers[":method"] !== "POST" || !/^application\/grpc([+;]|$)/.test(ct)) {
      stream.respond({ ":status": 415, "content-type": "text/plain" }, { endStream: false });
      stream.end("this port speaks gRPC (POST, content-type application/grpc)\n");
      return;
    }
    const route = opts.routes.get(headers[":path"] ?? "");
    if (route) route(new GrpcCall(stream, headers, opts.maxMessageBytes));
    else proxy(stream, headers, inner);
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve((server.address() as { port: number }).port);
    });
  });
  return {
    port,
    close: async () => {
      for (const s of sessions) s.destroy();
      inner.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

type Inner = { session: () => http2.ClientHttp2Session; close: () => void };

/** An HTTP/2 client of the grpc-js server over an in-process stream pair, made again if it closes. */
function innerClient(fallback: grpc.Server): Inner {
  const injector = fallback.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  let current: http2.ClientHttp2Session | undefined;
  return {
    session: () => {
      if (current && !current.closed && !current.destroyed) return current;
      const [near, far] = duplexPair();
      injector.injectConnection(far);
      const s = http2.connect("http://switchyard-hub.internal", { createConnection: () => near });
      s.on("error", () => {});
      s.on("close", () => {
        if (current === s) current = undefined;
      });
      current = s;
      return s;
    },
    close: () => {
      current?.destroy();
      injector.destroy();
    },
  };
}

/** One call relayed to the grpc-js server: headers, messages both ways, trailers. */
function proxy(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, inner: Inner): void {
  const out: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": headers[":path"] };
  for (const [k, v] of Object.entries(headers)) if (!HOP_HEADERS.has(k) && v !== undefined) out[k] = v;
  let req: http2.ClientHttp2Stream;
  try {
    req = inner.session().request(out);
  } catch {
    stream.respond(
      {
        ":status": 200,
        "content-type": "application/grpc",
        "grpc-status": String(Status.UNAVAILABLE),
        "grpc-message": "the hub's service is restarting",
      },
      { endStream: true },
    );
    return;
  }
  let trailers: http2.IncomingHttpHeaders | undefined;
  req.on("response", (h, flags) => {
    if (stream.destroyed) return;
    const res = { ...h };
    if (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) {
      stream.respond(res, { endStream: true });
      return;
    }
    stream.respond(res, { waitForTrailers: true });
    req.pipe(stream);
  });
  req.on("trailers", (t) => {
    trailers = t;
  });
  stream.on("wantTrailers", () => {
    const t: http2.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(trailers ?? { "grpc-status": String(Status.INTERNAL) }))
      if (!k.startsWith(":") && v !== undefined) t[k] = v;
    stream.sendTrailers(t);
  });
  stream.pipe(req);
  req.on("error", () => {
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  });
  stream.on("close", () => {
    if (!req.closed) req.close(http2.constants.NGHTTP2_CANCEL);
  });
}
