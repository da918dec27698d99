/**
 * Source health → cluster health in the world. A cluster whose source
 * cannot reach it keeps its last known objects and is marked stale at once;
 * after the grace period its backends are withdrawn from other clusters'
 * agents (the translator does that for views where it is not home). When
 * the source is back, its relist brings the objects up to date and the
 * cluster is healthy again, with no gap: nothing was deleted meanwhile.
 */
import type { Logger } from "@switchyard/lib/log";
import { HEALTHY, type World } from "../model/world.ts";

export type Clock = {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
};

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

export class ClusterHealthTracker {
  private readonly world: World;
  private readonly log: Logger;
  private readonly clock: Clock;
  graceMs: number;
  private readonly timers = new Map<string, unknown>();

  constructor(world: World, graceMs: number, log: Logger, clock: Clock = realClock) {
    this.world = world;
    this.graceMs = graceMs;
    this.log = log;
    this.clock = clock;
  }

  /** A source says whether it reaches its cluster now. */
  report(cluster: string, up: boolean, reason?: string): void {
    // a cluster that left the configuration has no health to keep
    const h = this.world.clusters.get(cluster)?.health;
    if (!h) return;
    if (up) {
      if (!h.stale) return;
      this.cancel(cluster);
      const downS = Math.round((this.clock.now() - (h.staleSince ?? this.clock.now())) / 1000);
      this.log.info({ cluster, downSeconds: downS }, "cluster reachable again; its state is current");
      this.world.setHealth(cluster, HEALTHY);
      return;
    }
    if (h.stale) return;
    const graceS = Math.round(this.graceMs / 1000);
    this.log.warn(
      { cluster, reason, graceSeconds: graceS },
      "cluster unreachable: serving its last known state; its backends leave other clusters' agents after the grace period",
    );
    this.world.setHealth(cluster, {
      stale: true,
      withdrawn: false,
      staleSince: this.clock.now(),
      reason: reason ?? "unreachable",
    });
    this.timers.set(
      cluster,
      this.clock.setTimeout(() => {
        this.timers.delete(cluster);
        const cur = this.world.clusters.get(cluster)?.health;
        if (!cur?.stale) return;
        this.log.error(
          { cluster, reason: cur.reason, graceSeconds: graceS },
          "cluster still unreachable after the grace period: its backends are withdrawn from other clusters' agents",
        );
        this.world.setHealth(cluster, { ...cur, withdrawn: true });
      }, this.graceMs),
    );
  }

  /** The cluster left the configuration. */
  forget(cluster: string): void {
    this.cancel(cluster);
  }

  close(): void {
    for (const c of [...this.timers.keys()]) this.cancel(c);
  }

  private cancel(cluster: string): void {
    const t = this.timers.get(cluster);
    if (t !== undefined) this.clock.clearTimeout(t);
    this.timers.delete(cluster);
  }
}
