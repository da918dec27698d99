/**
 * Connection counts for the hub's port, shared by every thread that accepts
 * on it (the main thread or the I/O threads, SO_REUSEPORT — the kernel
 * spreads one source's connections over all of them): a total, and a count
 * per source address (IPv4 address; IPv6 /64, what one host can easily
 * hold). Counters live in a SharedArrayBuffer, a row per thread changed
 * with Atomics, so admitting a connection costs no message between threads,
 * and a thread that dies takes its counts with it (clearRow).
 *
 * Per-source counts are kept in 65,536 buckets by a hash of the source: two
 * sources that share a bucket share its limit (a chance of 1 in 65,536 for
 * an address to share an attacker's bucket) — the price of a lock-free table.
 */
import net from "node:net";

const BUCKETS = 1 << 16;
const ROW = 1 + BUCKETS;

export type Refusal = "total" | "source";

/** The key a source address is counted under: IPv4 as is, IPv6 by its /64. */
export function sourceKey(address: string): string {
  const a = address.startsWith("::ffff:") && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (!net.isIPv6(a)) return a;
  const [head = "", tail] = a.split("::") as [string, string | undefined];
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups =
    tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(":")}::/64`;
}

function bucketOf(key: string): number {
  // FNV-1a, 32 bits
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return 1 + ((h >>> 0) % BUCKETS);
}

export class ConnectionGate {
  /** per thread, a row: [0] its connections open, [1 + bucket] per source */
  private readonly counts: Int32Array;
  private readonly rows: number;
  private readonly own: number;

  /** Counts for a port served by `threads` threads: one buffer they all get. */
  static createShared(threads = 1): SharedArrayBuffer {
    return new SharedArrayBuffer(4 * ROW * Math.max(1, threads));
  }

  /** The gate of thread `row` (0-based) of those sharing `shared`. */
  constructor(shared: SharedArrayBuffer = ConnectionGate.createShared(), row = 0) {
    this.counts = new Int32Array(shared);
    this.rows = this.counts.length / ROW;
    if (!Number.isInteger(row) || row < 0 || row >= this.rows)
      throw new Error(`connection gate: thread ${row} of ${this.rows}`);
    this.own = row * ROW;
  }

  /** The counts of a thread that died (its connections are gone; no close handler of its will run). */
  static clearRow(shared: SharedArrayBuffer, row: number): void {
    new Int32Array(shared, 4 * ROW * row, ROW).fill(0);
  }

  private sum(i: number): number {
    let n = 0;
    for (let r = 0; r < this.rows; r++) n += Atomics.load(this.counts, r * ROW + i);
    return n;
  }

  /**
   * Counts a connection in, or says which limit refuses it (nothing counted
   * then). Threads admitting at the same instant may each pass a limit by
   * one: a bound, not an exact count.
   */
  admit(address: string, maxTotal: number, maxPerSource: number): Refusal | undefined {
    if (this.sum(0) >= maxTotal) return "total";
    const b = bucketOf(sourceKey(address));
    if (this.sum(b) >= maxPerSource) return "source";
    Atomics.add(this.counts, this.own, 1);
    Atomics.add(this.counts, this.own + b, 1);
    return undefined;
  }

  /** A connection this thread admitted from this address is gone. */
  release(address: string): void {
    Atomics.sub(this.counts, this.own + bucketOf(sourceKey(address)), 1);
    Atomics.sub(this.counts, this.own, 1);
  }

  /** connections open now (every thread) */
  get open(): number {
    return this.sum(0);
  }
}
