/**
 * A limit on failed authentications per key (a source address, a join
 * token id), pure, with time passed in: a token bucket of failures that
 * refills slowly (not while blocked), and, once it is empty, a block that
 * doubles each time the key fails again after it ends (backoff, up to a
 * maximum), until the bucket has refilled completely.
 *
 * Only failures consume the bucket: an agent that authenticates costs
 * nothing, and what is checked before the secret (admit) reads no state the
 * attacker could learn from. The keys held are bounded: an attacker
 * inventing keys (token ids, addresses) evicts the oldest entries, never
 * grows the map without end.
 */

export type FailureLimit = {
  /** failures allowed in a burst */
  burst: number;
  /** one more failure allowed every refillMs */
  refillMs: number;
  /** the longest block (the backoff doubles up to it) */
  maxBlockMs: number;
  /** keys remembered at most (the oldest go first) */
  maxKeys: number;
};

export type Admission = { ok: true } | { ok: false; retryAfterMs: number };

type Entry = {
  /** failures still allowed */
  tokens: number;
  /** when tokens was last refilled (ms) */
  at: number;
  /** refused at once until then (ms) */
  blockedUntil: number;
  /** blocks since the bucket was last full: the next block lasts refillMs · 2^blocks */
  blocks: number;
};

export class FailureLimiter {
  readonly limit: FailureLimit;
  private readonly entries = new Map<string, Entry>();

  constructor(limit: FailureLimit) {
    this.limit = limit;
  }

  /** Whether an attempt under this key may be checked at all now. */
  admit(key: string, now: number): Admission {
    const e = this.entries.get(key);
    if (!e) return { ok: true };
    if (now < e.blockedUntil) return { ok: false, retryAfterMs: e.blockedUntil - now };
    this.refill(e, now);
    if (e.tokens >= this.limit.burst) this.entries.delete(key);
    return { ok: true };
  }

  /** Counts a failed attempt; the bucket running empty blocks the key (longer each time). */
  fail(key: string, now: number): void {
    let e = this.entries.get(key);
    if (!e) {
      if (this.entries.size >= this.limit.maxKeys) this.evict(now);
      e = { tokens: this.limit.burst, at: now, blockedUntil: 0, blocks: 0 };
      this.entries.set(key, e);
    } else this.refill(e, now);
    e.tokens = Math.max(0, e.tokens - 1);
    // an empty bucket blocks; after a block, every failure blocks again, twice as long (backoff)
    if (e.tokens < 1 || e.blocks > 0) {
      const ms = Math.min(this.limit.maxBlockMs, this.limit.refillMs * 2 ** e.blocks);
      e.blocks++;
      e.blockedUntil = Math.max(e.blockedUntil, now + ms);
      // nothing refills while blocked: the block is the wait, not a credit of attempts for later
      e.at = e.blockedUntil;
    }
  }

  /** Keys held now (bounded by maxKeys). */
  get size(): number {
    return this.entries.size;
  }

  private refill(e: Entry, now: number): void {
    if (now <= e.at) return;
    e.tokens = Math.min(this.limit.burst, e.tokens + (now - e.at) / this.limit.refillMs);
    e.at = now;
    // a full bucket forgets the backoff
    if (e.tokens >= this.limit.burst && now >= e.blockedUntil) e.blocks = 0;
  }

  /**
   * Makes room for more keys: drops keys whose bucket is full again, then
   * the oldest keys not blocked, then (all blocked) the oldest.
   */
  private evict(now: number): void {
    for (const [k, e] of this.entries) {
      if (now < e.blockedUntil) continue;
      this.refill(e, now);
      if (e.tokens >= this.limit.burst) this.entries.delete(k);
    }
    // a tenth more room than needed: a flood of new keys sweeps once per tenth, not once per key
    const room = Math.min(this.limit.maxKeys - 1, Math.floor(this.limit.maxKeys * 0.9));
    for (const [k, e] of this.entries) {
      if (this.entries.size <= room) return;
      if (now >= e.blockedUntil) this.entries.delete(k);
    }
    for (const k of this.entries.keys()) {
      if (this.entries.size < this.limit.maxKeys) return;
      this.entries.delete(k);
    }
  }
}
