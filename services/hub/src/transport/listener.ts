/**
 * The hub's listening socket and its HTTP/2 connections (h2/connection.ts):
 * TLS with ALPN h2, or cleartext h2 with prior knowledge. The front runs
 * one on the main thread or one per I/O thread (io-threads/), which then
 * share the port (SO_REUSEPORT: the kernel spreads new connections over
 * them).
 */
import net from "node:net";
import tls from "node:tls";
import { H2Connection, type H2Stream } from "./h2/connection.ts";

export type ListenerOptions = {
  host: string;
  port: number;
  /** share the port with the other I/O threads' listeners */
  reusePort?: boolean;
  tls?: { cert: Buffer; key: Buffer } | undefined;
  keepaliveIntervalMs?: number | undefined;
  keepaliveTimeoutMs?: number | undefined;
  onStream: (s: H2Stream) => void;
  /** an exception from a stream's handler: its connection was closed */
  onInternalError: (e: Error) => void;
};

export type Listener = {
  port: number;
  readonly connections: ReadonlySet<H2Connection>;
  /** streams open now on all its connections */
  openStreams: () => number;
  /** stops accepting and closes every connection (GOAWAY) */
  close: () => Promise<void>;
};

export async function listenH2(opts: ListenerOptions): Promise<Listener> {
  const connections = new Set<H2Connection>();
  const accept = (sock: net.Socket) => {
    sock.on("error", () => {});
    const c = new H2Connection(sock, {
      onStream: opts.onStream,
      maxConcurrentStreams: 100,
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
    connections,
    openStreams: () => {
      let n = 0;
      for (const c of connections) n += c.openStreams;
      return n;
    },
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const c of connections) c.close();
      await closed;
    },
  };
}
