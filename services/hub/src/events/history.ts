/**
 * The event history: one JetStream stream over every event subject, its
 * age and size limits set by the hub (`events.historyMaxAge`,
 * `events.historyMaxBytes`). Created when missing, updated when its limits
 * differ, left alone otherwise — at start and on each config reload, by
 * every replica alike. Subscribers replay it (`switchyard-hub events --since`).
 */
import { type JetStreamManager, RetentionPolicy, StorageType, type StreamConfig } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { EVENT_SUBJECT_ROOT, HISTORY_STREAM } from "@switchyard/lib/event-subjects";

export type HistoryLimits = { maxAgeMs: number; maxBytes: number };

/** Pure: the stream's configuration for these limits. */
export function computeHistoryStream(l: HistoryLimits): Partial<StreamConfig> & { name: string } {
  return {
    name: HISTORY_STREAM,
    description: "Switchyard NAT events (kept by switchyard-hub: events.historyMaxAge/historyMaxBytes)",
    subjects: [`${EVENT_SUBJECT_ROOT}.>`],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(l.maxAgeMs),
    max_bytes: l.maxBytes,
  };
}

/** Makes the stream match the limits; says what it did. */
export async function applyHistoryStream(
  jsm: JetStreamManager,
  l: HistoryLimits,
): Promise<"created" | "updated" | "unchanged"> {
  const want = computeHistoryStream(l);
  let have: StreamConfig;
  try {
    have = (await jsm.streams.info(HISTORY_STREAM)).config;
  } catch (e) {
    if (!/stream not found/i.test((e as Error).message)) throw e;
    await jsm.streams.add(want);
    return "created";
  }
  if (
    have.max_age === want.max_age &&
    have.max_bytes === want.max_bytes &&
    JSON.stringify(have.subjects) === JSON.stringify(want.subjects)
  )
    return "unchanged";
  await jsm.streams.update(HISTORY_STREAM, { ...have, ...want });
  return "updated";
}
