/**
 * What the hub's front hands its handlers, whichever thread owns the
 * connection: a request stream (ServerStream), and the listener that
 * produces them on one thread (http2-listener.ts: node:http2, nghttp2).
 */
import type { FrontLimits } from "./limits.ts";
import type { RefusalReason } from "./refusals.ts";

/** header fields in order, names lowercase; a name may repeat */
export type HeaderList = Array<[string, string]>;

export type StreamHandlers = {
  /** request body bytes (DATA payloads, as they come) */
  onData: (chunk: Buffer) => void;
  /** the client ended its side (END_STREAM) */
  onEnd: () => void;
  /** the stream is gone: reset by either side or the connection closed (not after a clean finish) */
  onClose: () => void;
};

/** HTTP/2 error codes the hub sends (RFC 9113 §7) */
export const H2Error = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, CANCEL: 8 } as const;

/**
 * A request stream as the hub's handlers see it, wherever its connection
 * lives: on this thread, or on an I/O thread (io-threads/pool.ts).
 */
export interface ServerStream {
  readonly headers: HeaderList;
  readonly peer: string;
  /** The last value of a header, or undefined. */
  header(name: string): string | undefined;
  start(h: StreamHandlers): void;
  /** Response headers; `endStream` makes them the whole response (gRPC's trailers-only). */
  respond(fields: HeaderList, endStream?: boolean): void;
  write(data: Buffer): void;
  /** Ends the response with trailers, after any queued data. */
  end(trailers?: HeaderList): void;
  reset(code?: number): void;
  /** Closes the stream's whole connection: what an exception in a handler costs. */
  closeConnection(): void;
}

/** The last value of a header in a list, or undefined. */
export function lastHeader(headers: HeaderList, name: string): string | undefined {
  let v: string | undefined;
  for (const [n, x] of headers) if (n === name) v = x;
  return v;
}

/** One listening socket and its connections, on one thread. */
export type ListenerOptions = {
  host: string;
  port: number;
  /** share the port with the other I/O threads' listeners (SO_REUSEPORT) */
  reusePort?: boolean;
  tls?: { cert: Buffer; key: Buffer } | undefined;
  keepaliveIntervalMs?: number | undefined;
  keepaliveTimeoutMs?: number | undefined;
  /** limits for a port that faces the network (limits.ts); defaults when absent */
  limits?: FrontLimits | undefined;
  /**
   * the connection counts shared by every thread serving the port
   * (connection-gate.ts) and this thread's row in them; its own when absent
   */
  gate?: { shared: SharedArrayBuffer; row: number } | undefined;
  /** the refusal counts shared by every thread serving the port (refusals.ts); its own when absent */
  refusals?: SharedArrayBuffer | undefined;
  /**
   * request paths the hub serves itself: a connection with a stream on one of
   * them that the hub answered with a message holds an authenticated call (it
   * is not idle)
   */
  routedPaths?: readonly string[] | undefined;
  onStream: (s: ServerStream) => void;
  /** an exception from a stream's handler: its connection was closed */
  onInternalError: (e: Error) => void;
};

export type Listener = {
  port: number;
  /** streams open now on all its connections */
  openStreams: () => number;
  /** connections refused or cut off by the port's limits, by reason (every thread sharing its counts) */
  refusals: () => Map<RefusalReason, number>;
  /** stops reading request bytes (the main thread is behind), and starts again */
  pauseReading: () => void;
  resumeReading: () => void;
  /** stops accepting and closes every connection (GOAWAY) */
  close: () => Promise<void>;
};
