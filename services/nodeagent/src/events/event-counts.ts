/**
 * Pure: the agent's event accounting in one record — what the programs
 * emitted since the agent started, and where each event went. The kernel
 * side counts the events the full ring refused (`events_dropped` in
 * sy_counters) and the ones sampling left out; the agent's outbox counts
 * the rest. `emitted = published + held + Σ dropped`, exactly.
 */
import { DROP_REASONS, type DropReason, type OutboxCounts } from "./event-outbox.ts";
import type { NatsState } from "./nats-connection.ts";

/** every reason an event is counted as dropped: the outbox's, and the ring's own */
export const EVENT_DROP_REASONS = ["ring_full", ...DROP_REASONS] as const;
export type EventDropReason = "ring_full" | DropReason;

export type EventCounts = {
  nats: NatsState;
  emitted: number;
  published: number;
  held: number;
  /** of `held`, the events emitted before the agent knew its cluster, waiting for it */
  awaitingCluster: number;
  heldBytes: number;
  budgetBytes: number;
  dropped: Record<EventDropReason, number>;
  sampledOut: number;
};

/** sy_counters as the datapath sums them (only the two event counters are read here) */
export type KernelEventCounters = { events_dropped?: bigint; events_sampled_out?: bigint };

export function computeEventCounts(
  outbox: OutboxCounts,
  budgetBytes: number,
  nats: NatsState,
  kernelNow: KernelEventCounters,
  kernelAtStart: KernelEventCounters,
): EventCounts {
  const since = (k: keyof KernelEventCounters) => Number((kernelNow[k] ?? 0n) - (kernelAtStart[k] ?? 0n));
  const ringFull = since("events_dropped");
  return {
    nats,
    emitted: outbox.offered + ringFull,
    published: outbox.published,
    held: outbox.held,
    awaitingCluster: outbox.unaddressed,
    heldBytes: outbox.heldBytes,
    budgetBytes,
    dropped: { ring_full: ringFull, ...outbox.dropped },
    sampledOut: since("events_sampled_out"),
  };
}

/** Pure: the `dump` line on events. */
export function formatEventCounts(c: EventCounts, updatedAt: string): string {
  const dropped = EVENT_DROP_REASONS.map((r) => `${r}=${c.dropped[r]}`).join(" ");
  // a status file of an older agent has no awaitingCluster
  const awaiting = c.awaitingCluster > 0 ? `, ${c.awaitingCluster} of them waiting for the cluster` : "";
  return `# events: nats ${c.nats}; emitted ${c.emitted}, published ${c.published}, buffered ${c.held} (${c.heldBytes} of ${c.budgetBytes} bytes${awaiting}), dropped ${dropped}, sampled out ${c.sampledOut}; since the agent started, status of ${updatedAt}\n`;
}
