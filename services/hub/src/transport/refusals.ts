/**
 * Connections the hub's port refused or cut off, by reason, counted by every
 * thread that serves the port (the main thread or the I/O threads) into one
 * SharedArrayBuffer with Atomics, so the main thread reads the sum at scrape
 * time without a message between threads, and a thread that dies keeps what
 * it counted. Each connection is counted once, under the first reason that
 * ends it.
 *
 * What operators see of the port's limits (limits.ts): the metric
 * switchyard_hub_connections_refused_total{reason} and a summary log line at
 * most once per interval (never a line per connection).
 */

export const REFUSAL_REASONS = [
  /** at accept: the port holds maxConnections */
  "total-cap",
  /** at accept: the source address holds maxConnectionsPerSource */
  "source-cap",
  /** TLS not done within handshakeTimeout */
  "handshake-timeout",
  /** no HTTP/2 preface and SETTINGS within prefaceTimeout */
  "preface-timeout",
  /** no authenticated stream for idleTimeout (GOAWAY) */
  "idle-timeout",
  /** a keepalive ping not answered in time */
  "keepalive-timeout",
  /** a peer that does not read: its queued responses passed the write buffer bound */
  "write-buffer",
  /** nghttp2: control frames (PING, SETTINGS ACKs) queued for a peer that does not read */
  "flood",
  /** nghttp2: CONTINUATION frames without end */
  "continuation-flood",
  /** nghttp2 GOAWAY for a protocol error: streams opened and reset past the rate, stream-id misuse, invalid frames */
  "protocol-error",
  /** any other HTTP/2 session error */
  "h2-error",
] as const;

export type RefusalReason = (typeof REFUSAL_REASONS)[number];

const INDEX = new Map<RefusalReason, number>(REFUSAL_REASONS.map((r, i) => [r, i]));

/** The reason of a node:http2 session 'error' (nghttp2 names the cause only in its message). */
export function sessionErrorReason(e: unknown): RefusalReason {
  const text = `${(e as { code?: string })?.code ?? ""} ${(e as Error)?.message ?? ""}`;
  if (/flood/i.test(text)) return "flood";
  if (/CONTINUATION/i.test(text)) return "continuation-flood";
  if (/protocol error|INVALID_FRAMES|invalid frame/i.test(text)) return "protocol-error";
  return "h2-error";
}

export class RefusalCounts {
  private readonly counts: BigInt64Array;

  static createShared(): SharedArrayBuffer {
    return new SharedArrayBuffer(8 * REFUSAL_REASONS.length);
  }

  constructor(shared: SharedArrayBuffer = RefusalCounts.createShared()) {
    this.counts = new BigInt64Array(shared);
  }

  add(reason: RefusalReason): void {
    Atomics.add(this.counts, INDEX.get(reason)!, 1n);
  }

  /** every reason with its count since the hub started (zeros included) */
  totals(): Map<RefusalReason, number> {
    return new Map(REFUSAL_REASONS.map((r, i) => [r, Number(Atomics.load(this.counts, i))]));
  }
}

/**
 * Logs, at most once per `intervalMs`, the connections refused since the
 * last line, by reason (nothing when none were). Returns the stop function.
 */
export function logRefusalSummaries(
  read: () => Map<RefusalReason, number>,
  warn: (fields: Record<string, unknown>, msg: string) => void,
  intervalMs = 10_000,
): () => void {
  let last = read();
  const timer = setInterval(() => {
    const now = read();
    const since: Record<string, number> = {};
    let total = 0;
    for (const [r, n] of now) {
      const d = n - (last.get(r) ?? 0);
      if (d > 0) {
        since[r] = d;
        total += d;
      }
    }
    last = now;
    if (total > 0)
      warn(
        { refused: since, total, seconds: intervalMs / 1000 },
        "connections refused or cut off by the port's limits (switchyard_hub_connections_refused_total)",
      );
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
