/**
 * Pure: which map entries failed to reach the maps, why, and when each is
 * tried again. Each entry backs off on its own — 1 s, 2 s, 4 s … up to a
 * cap (60 s) — and is forgotten (its backoff reset) once a plan leaves it
 * in step with the desired state. Time is passed in.
 *
 * An entry is named by what the agent reconciles: `frontend <key>` (its
 * backend set, name and entry go together), `set <id>` (deleting an old
 * set, or repairing its `sy_members`), `name <service>` (deleting a name),
 * `node-ip <ip>`.
 */

export type RetryEntry = {
  entry: string;
  /** the last failure, as the map adapter put it (map, object, errno, what to do) */
  reason: string;
  /** failed attempts in a row */
  attempts: number;
  /** first failure of this run of failures (ms) */
  since: number;
  /** not tried again before this (ms) */
  retryAt: number;
};

export type Backoff = { baseMs: number; capMs: number };
export const DEFAULT_BACKOFF: Backoff = { baseMs: 1000, capMs: 60_000 };

/** Pure: the wait after the n-th failure in a row (n ≥ 1): base·2^(n−1), at most cap. */
export function computeRetryDelay(attempts: number, b: Backoff = DEFAULT_BACKOFF): number {
  return Math.min(b.capMs, b.baseMs * 2 ** Math.min(Math.max(attempts - 1, 0), 30));
}

const FRONTEND = "frontend ";

export function frontendEntry(key: string): string {
  return FRONTEND + key;
}

/** The frontend key of a `frontend …` entry; undefined for other entries. */
export function frontendKeyOfEntry(entry: string): string | undefined {
  return entry.startsWith(FRONTEND) ? entry.slice(FRONTEND.length) : undefined;
}

export class RetryLedger {
  private readonly byEntry = new Map<string, RetryEntry>();
  private readonly backoff: Backoff;

  constructor(backoff: Backoff = DEFAULT_BACKOFF) {
    this.backoff = backoff;
  }

  get size(): number {
    return this.byEntry.size;
  }

  get(entry: string): RetryEntry | undefined {
    return this.byEntry.get(entry);
  }

  /** Records one more failure; returns the entry and whether it is news (new, or a new reason). */
  fail(entry: string, reason: string, now: number): { retry: RetryEntry; news: boolean } {
    const prev = this.byEntry.get(entry);
    const attempts = (prev?.attempts ?? 0) + 1;
    const retry: RetryEntry = {
      entry,
      reason,
      attempts,
      since: prev?.since ?? now,
      retryAt: now + computeRetryDelay(attempts, this.backoff),
    };
    this.byEntry.set(entry, retry);
    return { retry, news: prev?.reason !== reason };
  }

  /** The entry is in step again: forget it (its next failure starts from the base delay). */
  succeed(entry: string): boolean {
    return this.byEntry.delete(entry);
  }

  /** Failed, and its wait has not run out: a plan leaves it as it is. */
  isHeld(entry: string, now: number): boolean {
    const r = this.byEntry.get(entry);
    return r !== undefined && r.retryAt > now;
  }

  /** Entries whose wait has run out. */
  due(now: number): RetryEntry[] {
    return [...this.byEntry.values()].filter((r) => r.retryAt <= now);
  }

  /** When the next entry falls due; undefined when nothing is failing. */
  nextRetryAt(): number | undefined {
    let at: number | undefined;
    for (const r of this.byEntry.values()) if (at === undefined || r.retryAt < at) at = r.retryAt;
    return at;
  }

  /** Every failing entry, soonest retry first (for logs, `dump` and metrics). */
  entries(): RetryEntry[] {
    return [...this.byEntry.values()].sort((a, b) => a.retryAt - b.retryAt || (a.entry < b.entry ? -1 : 1));
  }
}
