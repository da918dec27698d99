/**
 * What stands between the agent port and the token and credential checks,
 * pure, with time passed in:
 *
 * - a failure limit per source address and per join-token id (a token
 *   bucket with backoff, failure-limiter.ts): beyond it an attempt is
 *   refused at once, before any hash or signature is checked and without a
 *   write. Unknown token ids are counted like known ones, so the limit does
 *   not tell them apart either.
 * - a summary of the refusals for the hub's log: one line per source per
 *   interval with counts by reason (the adapter drains it on a timer), never
 *   one line per refused stream; at most `maxLines` sources by name, the
 *   rest folded into one line.
 * - totals by reason, for metrics.
 */
import { type Admission, type FailureLimit, FailureLimiter } from "./failure-limiter.ts";
import type { Refusal, RefusalReason } from "./refusal.ts";

export type AuthLimits = {
  perSource: FailureLimit;
  perToken: FailureLimit;
  /** sources named in one drain of the summary (the rest share one line) */
  maxLines: number;
};

/**
 * Defaults: a source may fail 20 times at once, then once a second; once it
 * ran out, every further failure blocks it for twice as long as the last
 * (1, 2, 4 … up to 60 s) until it has not failed for 20 s. A flood of
 * guesses gets about one check a minute; refused agents (each retries every
 * 5-30 s) are never blocked unless a few dozen share one address. A token id
 * may fail 50 times, then once a second, from all sources together.
 */
export const DEFAULT_AUTH_LIMITS: AuthLimits = {
  perSource: { burst: 20, refillMs: 1_000, maxBlockMs: 60_000, maxKeys: 100_000 },
  perToken: { burst: 50, refillMs: 1_000, maxBlockMs: 60_000, maxKeys: 100_000 },
  maxLines: 20,
};

/** sources followed one by one within an interval; beyond it they are counted together */
const MAX_TRACKED_SOURCES = 1_000;
/** token ids named per source and interval */
const MAX_TOKEN_IDS = 5;

export type ThrottledReason = "throttled";
export type CountedReason = RefusalReason | ThrottledReason;

export type SummaryLine = {
  /** the source address; absent on the line that folds many sources together */
  source?: string;
  /** how many sources that line folds together */
  sources?: number;
  /** refusals after a check */
  failures: number;
  /** attempts refused at once, unchecked (over the limit) */
  throttled: number;
  reasons: Partial<Record<CountedReason, number>>;
  /** token ids presented (a few), for the hub's log only */
  tokenIds?: string[];
  /** the last refusal's detail */
  last?: string;
};

type Tally = {
  failures: number;
  throttled: number;
  reasons: Partial<Record<CountedReason, number>>;
  tokenIds: Set<string>;
  last: string | undefined;
};

const newTally = (): Tally => ({
  failures: 0,
  throttled: 0,
  reasons: {},
  tokenIds: new Set(),
  last: undefined,
});

export class AuthGuard {
  readonly limits: AuthLimits;
  private readonly bySource: FailureLimiter;
  private readonly byToken: FailureLimiter;
  private tallies = new Map<string, Tally>();
  /** sources beyond MAX_TRACKED_SOURCES in this interval, counted together */
  private others = newTally();
  private otherSources = new Set<string>();
  /** refusals since the hub started, by reason (metrics) */
  readonly totals = new Map<CountedReason, number>();

  constructor(limits: AuthLimits = DEFAULT_AUTH_LIMITS) {
    this.limits = limits;
    this.bySource = new FailureLimiter(limits.perSource);
    this.byToken = new FailureLimiter(limits.perToken);
  }

  /**
   * May an attempt from this source (with this token id, for a join token)
   * be checked now? A refusal here is counted as throttled.
   */
  admit(source: string, tokenId: string | undefined, now: number): Admission {
    const s = this.bySource.admit(source, now);
    const t = tokenId === undefined ? s : this.byToken.admit(tokenId, now);
    const a = !s.ok ? s : t;
    if (!a.ok) {
      const tally = this.tally(source);
      tally.throttled++;
      if (tokenId !== undefined) this.noteToken(tally, tokenId);
      this.count(tally, "throttled");
    }
    return a;
  }

  /**
   * A refused attempt: counted against the source and, for a join token's
   * secret, against its id (an id refused with a right secret — expired, or
   * not admitted — is no guess).
   */
  refused(source: string, tokenId: string | undefined, r: Refusal, now: number): void {
    this.bySource.fail(source, now);
    if (tokenId !== undefined && (r.reason === "token-unknown" || r.reason === "token-wrong-secret"))
      this.byToken.fail(tokenId, now);
    const tally = this.tally(source);
    tally.failures++;
    if (tokenId !== undefined) this.noteToken(tally, tokenId);
    tally.last = r.detail ?? r.message;
    this.count(tally, r.reason);
  }

  /** The summary since the last drain: one line per source (at most maxLines), the rest on one line. */
  drain(): SummaryLine[] {
    const sorted = [...this.tallies].sort(
      (a, b) => b[1].failures + b[1].throttled - (a[1].failures + a[1].throttled),
    );
    const lines: SummaryLine[] = [];
    const rest = this.others;
    let restSources = this.otherSources.size;
    for (const [source, t] of sorted) {
      if (lines.length < this.limits.maxLines) {
        lines.push({ source, ...lineOf(t) });
        continue;
      }
      restSources++;
      rest.failures += t.failures;
      rest.throttled += t.throttled;
      for (const [k, n] of Object.entries(t.reasons) as Array<[CountedReason, number]>)
        rest.reasons[k] = (rest.reasons[k] ?? 0) + n;
    }
    if (restSources > 0) {
      const { tokenIds: _ids, last: _last, ...folded } = lineOf(rest);
      lines.push({ sources: restSources, ...folded });
    }
    this.tallies = new Map();
    this.others = newTally();
    this.otherSources = new Set();
    return lines;
  }

  private tally(source: string): Tally {
    let t = this.tallies.get(source);
    if (t) return t;
    if (this.tallies.size >= MAX_TRACKED_SOURCES) {
      // too many sources to name: they are counted together
      // (a lower bound past MAX_TRACKED_SOURCES more: memory stays bounded)
      if (this.otherSources.size < MAX_TRACKED_SOURCES) this.otherSources.add(source);
      return this.others;
    }
    t = newTally();
    this.tallies.set(source, t);
    return t;
  }

  private noteToken(t: Tally, tokenId: string): void {
    if (t.tokenIds.size < MAX_TOKEN_IDS) t.tokenIds.add(tokenId);
  }

  private count(t: Tally, reason: CountedReason): void {
    t.reasons[reason] = (t.reasons[reason] ?? 0) + 1;
    this.totals.set(reason, (this.totals.get(reason) ?? 0) + 1);
  }
}

function lineOf(t: Tally): Omit<SummaryLine, "source" | "sources"> {
  return {
    failures: t.failures,
    throttled: t.throttled,
    reasons: { ...t.reasons },
    ...(t.tokenIds.size > 0 ? { tokenIds: [...t.tokenIds] } : {}),
    ...(t.last !== undefined ? { last: t.last } : {}),
  };
}
