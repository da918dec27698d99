/**
 * The agent's wiring: hub deltas → accepted resources → desired frontends →
 * plan against what the maps hold → map writes; ring buffer → named NAT
 * events → publisher. Map write failures are retried here and never reach
 * the hub as anything but a NACK with the reason.
 */
import type { Logger } from "@switchyard/lib/log";
import type { StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { decodeEvent } from "./bpf/layout.ts";
import { applyOpToState, type Backend, cloneMapState, type DatapathMaps, type MapState } from "./bpf/maps.ts";
import { computeDesired } from "./desired/compute-desired.ts";
import { type ResourceError, ResourceStore } from "./desired/resources.ts";
import { computeEventSubject, computeNatEvent, type NatEvent } from "./events/nat-event.ts";
import type { EventPublisher } from "./events/publisher.ts";
import { planMaps } from "./plan/plan-maps.ts";

export type SyncStats = { deltas: number; writes: number; lastPlanOps: number; failures: number };

export class AgentCore {
  readonly store = new ResourceStore();
  private mirror: MapState;
  private readonly maps: DatapathMaps;
  private readonly log: Logger;
  cluster = "";
  readonly node: string;
  nodeAddresses: string[];
  readonly stats: SyncStats = { deltas: 0, writes: 0, lastPlanOps: 0, failures: 0 };
  private retryTimer: NodeJS.Timeout | undefined;
  onEventHook: ((e: NatEvent) => void) | undefined;
  /** this node's topology zone (--zone, else the hub's Welcome), for trafficDistribution */
  zone: string | undefined;
  /** called with backends no frontend uses any more, after the maps stopped pointing at them */
  onBackendsRemoved: ((dead: Backend[]) => void) | undefined;

  constructor(maps: DatapathMaps, node: string, nodeAddresses: string[], log: Logger) {
    this.maps = maps;
    this.node = node;
    this.nodeAddresses = nodeAddresses;
    this.log = log;
    // what a previous run left in the pinned maps: kept, and diffed against
    this.mirror = maps.read();
    log.info(
      { frontends: this.mirror.frontends.size, services: this.mirror.names.size },
      "maps adopted from pins",
    );
  }

  /** Handles one hub delta; the returned errors become the NACK (empty = ACK). */
  onDelta(msg: StreamAssignmentsResponse): ResourceError[] {
    this.stats.deltas++;
    const outcome = this.store.applyDelta(msg);
    for (const e of outcome.errors)
      this.log.warn({ resource: e.name, reason: e.message }, "resource rejected");
    const failure = this.reconcile();
    this.log.info(
      {
        nonce: msg.nonce,
        changed: msg.resources.length,
        removed: msg.removedResources.length,
        ops: this.stats.lastPlanOps,
        rejected: outcome.errors.length,
      },
      "delta applied",
    );
    return failure ? [...outcome.errors, { name: "(datapath)", message: failure }] : outcome.errors;
  }

  /** Makes the maps match the accepted resources; returns an error text when a write failed. */
  reconcile(): string | undefined {
    const desired = computeDesired(this.store.resources.values(), {
      name: this.node,
      addresses: this.nodeAddresses,
      zone: this.zone,
    });
    for (const p of desired.problems) this.log.warn({ reason: p }, "frontend conflict");
    const plan = planMaps(desired, this.mirror);
    this.stats.lastPlanOps = plan.ops.length;
    if (plan.ops.length === 0) return undefined;
    const next = cloneMapState(this.mirror);
    try {
      this.maps.apply(plan.ops);
      for (const o of plan.ops) applyOpToState(next, o);
      const dead = computeRemovedBackends(this.mirror, next);
      this.mirror = next;
      if (dead.length > 0) this.onBackendsRemoved?.(dead);
      this.stats.writes += plan.ops.length;
      this.log.info({ ops: plan.ops.length, frontends: desired.frontends.size }, "maps updated");
      return undefined;
    } catch (e) {
      this.stats.failures++;
      // some ops may have landed: trust the maps, not our guess, and try again soon
      this.mirror = this.maps.read();
      const msg = (e as Error).message;
      this.log.error({ reason: msg }, "map update failed; will retry");
      this.scheduleRetry();
      return msg;
    }
  }

  /**
   * Full reconcile: forget what we believe the maps hold, read them back, and
   * write whatever differs from the desired state. Repairs drift (entries
   * changed or removed by anyone else); writes nothing when there is none.
   */
  resync(): number {
    this.mirror = this.maps.read();
    const failure = this.reconcile();
    if (failure) return -1;
    if (this.stats.lastPlanOps > 0)
      this.log.warn({ ops: this.stats.lastPlanOps }, "maps had drifted; repaired");
    return this.stats.lastPlanOps;
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.reconcile();
    }, 1000);
    this.retryTimer.unref();
  }

  serviceName(svcId: number): string | undefined {
    return this.mirror.names.get(svcId);
  }

  /** Decodes one ring-buffer record and publishes it. */
  handleEventRecord(record: Buffer, publisher: EventPublisher | undefined, subjectPrefix: string): void {
    const ev = computeNatEvent(decodeEvent(record), {
      cluster: this.cluster,
      node: this.node,
      serviceName: (id) => this.serviceName(id),
      nowWallMs: Date.now(),
      nowMonoNs: process.hrtime.bigint(),
    });
    publisher?.publish(computeEventSubject(subjectPrefix, ev), ev);
    this.onEventHook?.(ev);
  }

  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }
}

/** Pure: backends in some set before and in no set after. */
export function computeRemovedBackends(before: MapState, after: MapState): Backend[] {
  const live = new Set<string>();
  for (const set of after.backendSets.values()) for (const b of set) if (b) live.add(`${b.ip}|${b.port}`);
  const out = new Map<string, Backend>();
  for (const set of before.backendSets.values()) {
    for (const b of set) {
      if (!b) continue;
      const k = `${b.ip}|${b.port}`;
      if (!live.has(k)) out.set(k, b);
    }
  }
  return [...out.values()];
}
