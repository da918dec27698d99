/**
 * For the hub's policy benchmarks (bench/hub-policies.ts,
 * bench/hub-balancing.ts): one agent session per node, all in sync with a
 * view, and one change delivered to the agents it is told to — the time of
 * translate + fan-out + encode, the bytes of the deltas and how many agents
 * got one.
 */
import { StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import type { World } from "../services/hub/src/model/world.ts";
import { encodeResponse } from "../services/hub/src/xds/encode.ts";
import { AgentSession } from "../services/hub/src/xds/session.ts";
import { SnapshotCache, type View } from "../services/hub/src/xds/snapshots.ts";
import { percentile } from "./stats.ts";

export type Delivery = { ms: number; bytes: number; agents: number };

export class AgentFleet {
  private readonly told = new Set<string>();
  private readonly sessions = new Map<string, AgentSession>();
  private readonly cache: SnapshotCache;
  private readonly view: View;
  private readonly advance: () => void;

  /** `advance` moves the cache's clock past its batching window. */
  constructor(cache: SnapshotCache, view: View, nodes: readonly string[], advance: () => void) {
    this.cache = cache;
    this.view = view;
    this.advance = advance;
    for (const node of nodes) {
      const s = new AgentSession({}, node, 1000);
      this.sessions.set(node, s);
      for (let m = s.next(cache.get(view, node)); m; m = s.next(cache.get(view, node)))
        s.onAck(m.nonce, undefined);
      cache.subscribe(
        view,
        (_snap, changed) => {
          s.markDirty(changed);
          this.told.add(node);
        },
        { node },
      );
    }
  }

  /** Makes one change and delivers it to every agent told (each ACKs). */
  deliver(change: () => void): Delivery {
    this.told.clear();
    const t0 = performance.now();
    change();
    this.advance();
    this.cache.flush();
    let bytes = 0;
    for (const node of this.told) {
      const s = this.sessions.get(node)!;
      const msg = s.next(this.cache.get(this.view, node));
      if (!msg) continue;
      bytes += encodeResponse(msg, (x) => StreamAssignmentsResponse.encode(x).finish()).length;
      s.onAck(msg.nonce, undefined);
    }
    return { ms: performance.now() - t0, bytes, agents: this.told.size };
  }
}

export type BuiltView = {
  cache: SnapshotCache;
  view: View;
  shared: ReturnType<SnapshotCache["get"]>;
  buildMs: number;
  /** RSS and live heap (MiB) right after the build */
  rssBuilt: number;
  heapBuilt: number;
  /** per-node resources of every node, in all */
  overlayResources: number;
  /** one agent per node, in sync (made after the RSS above was taken) */
  fleet: AgentFleet;
};

/** Builds the one-cluster view of `world` (timed) and puts an agent per node in sync with it. */
export function buildView(
  world: World,
  cluster: string,
  nodes: readonly string[],
  rss: () => number,
): BuiltView {
  let now = 0;
  const cache = new SnapshotCache(world, 0, { now: () => now, schedule: () => () => {} });
  const view: View = { key: `${cluster}|pod`, clusters: [cluster], reach: "pod" };
  const t0 = performance.now();
  const shared = cache.get(view);
  const buildMs = performance.now() - t0;
  const rssBuilt = rss();
  const heapBuilt = Math.round(process.memoryUsage().heapUsed / 2 ** 20);
  let overlayResources = 0;
  for (const node of nodes) overlayResources += cache.get(view, node).overlay?.size ?? 0;
  const fleet = new AgentFleet(cache, view, nodes, () => {
    now += 1000;
  });
  return { cache, view, shared, buildMs, rssBuilt, heapBuilt, overlayResources, fleet };
}

/** p50/p99 ms, delta bytes (all agents') p50/max and per agent, and the most agents told, keyed `<prefix>_…`. */
export function deliveryFigures(prefix: string, samples: readonly Delivery[]): Record<string, number> {
  const ms = samples.map((s) => s.ms);
  const bytes = samples.map((s) => s.bytes);
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    [`${prefix}_p50_ms`]: r3(percentile(ms, 50)),
    [`${prefix}_p99_ms`]: r3(percentile(ms, 99)),
    [`${prefix}_delta_bytes_p50`]: percentile(bytes, 50),
    [`${prefix}_delta_bytes_max`]: Math.max(...bytes),
    [`${prefix}_delta_bytes_per_agent_max`]: Math.max(
      ...samples.map((s) => Math.round(s.bytes / Math.max(1, s.agents))),
    ),
    [`${prefix}_agents_max`]: Math.max(...samples.map((s) => s.agents)),
    [`${prefix}_samples`]: samples.length,
  };
}
