/**
 * The limits of the hub's agent port, which answers before any token is
 * checked (often across the internet, for edges): what one client, or one
 * source address, may hold and how long it may dawdle. Each is a config
 * file key under `limits:` and a serve flag (config.ts); the defaults are
 * safe for a port open to the world and roomy for 1,000s of agents.
 *
 * Pure: the table and the defaults; the front applies them
 * (http2-listener.ts, grpc-call.ts, connection-gate.ts).
 */

export type FrontLimits = {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams one connection may have open */
  maxStreamsPerConnection: number;
  /** streams a client may open and reset per connection per second (twice as many in a burst); beyond it: GOAWAY */
  maxResetsPerSecond: number;
  /** TCP accept → TLS handshake done (a hard deadline, not an idle timer) */
  handshakeTimeoutMs: number;
  /** TLS done (or TCP accept, without TLS) → the client's HTTP/2 preface and SETTINGS */
  prefaceTimeoutMs: number;
  /** a connection with no authenticated stream for this long is closed (GOAWAY) */
  idleTimeoutMs: number;
  /** connections open at once on the port (every thread together) */
  maxConnections: number;
  /** connections open at once from one source address (IPv6: one /64) */
  maxConnectionsPerSource: number;
  /** a gRPC message must arrive whole within this of its first byte */
  messageTimeoutMs: number;
  /** response bytes queued for one connection's peer, not yet sent; beyond it the peer is cut off */
  maxWriteBufferBytes: number;
};

export const DEFAULT_LIMITS: FrontLimits = {
  maxStreamsPerConnection: 100,
  maxResetsPerSecond: 50,
  handshakeTimeoutMs: 10_000,
  prefaceTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  maxConnections: 20_000,
  maxConnectionsPerSource: 2_000,
  messageTimeoutMs: 60_000,
  maxWriteBufferBytes: 16 << 20,
};

/**
 * While a connection holds no authenticated stream, this is its write
 * buffer bound instead (what health and reflection answers need), so an
 * unauthenticated client that does not read cannot pin more.
 */
export const UNAUTHENTICATED_WRITE_BUFFER_BYTES = 1 << 20;

export type LimitKind = "count" | "duration" | "bytes";

/** each limit: its config key, flag, kind and allowed range (durations in ms) */
export const LIMIT_SPECS: ReadonlyArray<{
  key: keyof FrontLimits;
  /** the key under `limits:` in the config file */
  file: string;
  flag: string;
  kind: LimitKind;
  min: number;
  max: number;
  help: string;
}> = [
  {
    key: "maxStreamsPerConnection",
    file: "maxStreamsPerConnection",
    flag: "max-streams-per-connection",
    kind: "count",
    min: 1,
    max: 10_000,
    help: "streams one connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS)",
  },
  {
    key: "maxResetsPerSecond",
    file: "maxResetsPerSecond",
    flag: "max-resets-per-second",
    kind: "count",
    min: 1,
    max: 100_000,
    help: "streams a client may open and reset per connection per second (bursts of twice as many); beyond it GOAWAY",
  },
  {
    key: "handshakeTimeoutMs",
    file: "handshakeTimeout",
    flag: "handshake-timeout",
    kind: "duration",
    min: 100,
    max: 600_000,
    help: "TCP accept → TLS handshake done, or the connection is closed",
  },
  {
    key: "prefaceTimeoutMs",
    file: "prefaceTimeout",
    flag: "preface-timeout",
    kind: "duration",
    min: 100,
    max: 600_000,
    help: "TLS done (TCP accept without TLS) → the client's HTTP/2 preface, or the connection is closed",
  },
  {
    key: "idleTimeoutMs",
    file: "idleTimeout",
    flag: "idle-timeout",
    kind: "duration",
    min: 100,
    max: 86_400_000,
    help: "a connection with no authenticated stream for this long is closed (health checkers reconnect)",
  },
  {
    key: "maxConnections",
    file: "maxConnections",
    flag: "max-connections",
    kind: "count",
    min: 1,
    max: 1_000_000,
    help: "connections open at once on the port",
  },
  {
    key: "maxConnectionsPerSource",
    file: "maxConnectionsPerSource",
    flag: "max-connections-per-source",
    kind: "count",
    min: 1,
    max: 1_000_000,
    help: "connections open at once from one source address (IPv6: per /64); raise it for many agents behind one NAT",
  },
  {
    key: "messageTimeoutMs",
    file: "messageTimeout",
    flag: "message-timeout",
    kind: "duration",
    min: 100,
    max: 3_600_000,
    help: "a gRPC message must arrive whole within this of its first byte, or its call ends",
  },
  {
    key: "maxWriteBufferBytes",
    file: "maxWriteBuffer",
    flag: "max-write-buffer",
    kind: "bytes",
    min: 64 << 10,
    max: 1 << 30,
    help: "bytes queued for a peer that does not read before it is cut off (1 MiB while it holds no authenticated stream)",
  },
];

/** "16MiB", "512KiB", "1048576" → bytes, or undefined */
export function parseBytes(v: string): number | undefined {
  const m = /^(\d+)\s*(B|KiB|MiB|GiB)?$/.exec(v.trim());
  if (!m) return undefined;
  const unit = { B: 1, KiB: 1 << 10, MiB: 1 << 20, GiB: 1 << 30 }[(m[2] ?? "B") as "B"];
  return Number(m[1]) * unit;
}
