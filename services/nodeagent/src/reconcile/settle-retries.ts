/**
 * After a plan was applied: each failed entry is recorded in the retry
 * ledger (its backoff grows) and each entry the plan left in step is
 * forgotten (its backoff resets); what is news is logged, and the NACK text
 * returned when something failed.
 */
import type { Logger } from "@switchyard/lib/log";
import type { ApplyOutcome } from "./apply-plan.ts";
import { frontendKeyOfEntry, type RetryLedger } from "./retry-ledger.ts";

/** entries named one by one in the log per plan (the rest are counted) */
const LOGGED_ENTRIES = 20;

/**
 * `keys`: the frontends the plan was scoped to (undefined: a full plan);
 * `serviceOfEntry` names an entry's Service in the log.
 */
export function settleRetries(
  ledger: RetryLedger,
  outcome: ApplyOutcome,
  keys: ReadonlySet<string> | undefined,
  now: number,
  log: Logger,
  serviceOfEntry: (entry: string) => string | undefined,
): string | undefined {
  let logged = 0;
  for (const [entry, reason] of outcome.failed) {
    const { retry, news } = ledger.fail(entry, reason, now);
    if (news && logged++ < LOGGED_ENTRIES)
      log.warn(
        {
          entry,
          service: serviceOfEntry(entry),
          reason,
          attempts: retry.attempts,
          retryInMs: retry.retryAt - now,
        },
        "map entry not written; retried with backoff",
      );
  }
  const recovered: string[] = [];
  if (ledger.size > outcome.failed.size) {
    for (const r of ledger.entries()) {
      if (outcome.failed.has(r.entry) || outcome.held.has(r.entry)) continue;
      // in step: tried and landed, or planned (full plan, or its frontend in scope) with nothing to write
      const key = frontendKeyOfEntry(r.entry);
      if (outcome.tried.has(r.entry) || !keys || (key !== undefined && keys.has(key))) {
        ledger.succeed(r.entry);
        recovered.push(r.entry);
      }
    }
  }
  if (recovered.length > 0)
    log.info(
      { recovered: recovered.length, entries: recovered.slice(0, LOGGED_ENTRIES) },
      "map entries in step again",
    );
  const first = outcome.failed.entries().next();
  if (first.done) return undefined;
  const [entry, reason] = first.value;
  const next = ledger.nextRetryAt();
  log.error(
    {
      failed: outcome.failed.size,
      failing: ledger.size,
      landed: outcome.landed.length,
      first: entry,
      reason,
      nextRetryInMs: next === undefined ? undefined : next - now,
    },
    "map writes failed; the other entries were written",
  );
  const n = outcome.failed.size;
  return `${n} map ${n === 1 ? "entry" : "entries"} not written (retried with backoff); ${entry}: ${reason}`;
}
