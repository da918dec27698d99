/**
 * The hub's listening socket on its own HTTP/2 connections (h2/connection.ts;
 * `--front own`; http2-listener.ts is the node:http2 one): TLS with ALPN h2,
 * or cleartext h2 with prior knowledge. Of the port's limits (limits.ts) it
 * applies only the streams per connection (and the message deadline, which
 * is GrpcCall's). The front runs
 * one on the main thread or one per I/O thread (io-threads/), which then
 * share the port (SO_REUSEPORT: the kernel spreads new connections over
 * them).
 */
import net from "node:net";
import tls from "node:tls";
import { H2Connection } from "./h2/connection.ts";
import { DEFAULT_LIMITS } from "./limits.ts";
import type { Listener, ListenerOptions } from "./server-stream.ts";

export async function listenH2(opts: ListenerOptions): Promise<Listener> {
  const connections = new Set<H2Connection>();
  const accept = (sock: net.Socket) => {
    sock.on("error", () => {});
    const c = new H2Connection(sock, {
      onStream: opts.onStream,
      maxConcurrentStreams: (opts.limits ?? DEFAULT_LIMITS).maxStreamsPerConnection,
      keepaliveIntervalMs: opts.keepaliveIntervalMs ?? 30_000,
      keepaliveTimeoutMs: opts.keepaliveTimeoutMs ?? 20_000,
      onInternalError: opts.onInternalError,
    });
    connections.add(c);
    sock.on("close", () => connections.delete(c));
  };
  const server = opts.tls
    ? tls.createServer({ cert: opts.tls.cert, key: opts.tls.key, ALPNProtocols: ["h2"] }, (sock) => {
        // a client that did not negotiate h2 (or no ALPN at all) is not a gRPC client
        if (sock.alpnProtocol !== "h2") {
          sock.destroy();
          return;
        }
        accept(sock);
      })
    : net.createServer(accept);
  // a TLS handshake that fails (wrong CA, not TLS) is the client's problem, not the hub's
  server.on("tlsClientError", () => {});
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: opts.port, host: opts.host, reusePort: opts.reusePort ?? false }, () => {
      server.off("error", reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
  return {
    port,
    openStreams: () => {
      let n = 0;
      for (const c of connections) n += c.openStreams;
      return n;
    },
    pauseReading: () => {
      for (const c of connections) c.pauseReading();
    },
    resumeReading: () => {
      for (const c of connections) c.resumeReading();
    },
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const c of connections) c.close();
      await closed;
    },
  };
}
