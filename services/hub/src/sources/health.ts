/**
 * Source health → cluster health in the world. A cluster whose source
 * cannot reach it keeps its last known objects and is marked stale at once;
 * after the grace period its backends are withdrawn from other clusters'
 * agents (the translator does that for views where it is not home). When
 * the source is back, its relist brings the objects up to date and the
 * cluster is healthy again, with no gap: nothing was deleted meanwhile.
 *
 * The grace is counted from when the cluster was last seen: for a cluster
 * the hub has listed since it started, the moment it became unreachable;
 * for one restored from its last known state, the time stored with that
 * state (so a restarted hub or a fresh replica does not start the clock
 * again); for one never seen at all, the moment the hub started watching
 * it. A cluster not seen within the grace of that is withdrawn even when
 * its source reports nothing (an API server that never answers).
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
  private grace: number;
  /** per cluster: the withdrawal timer and the time its grace counts from */
  private readonly timers = new Map<string, { timer: unknown; from: number }>();
  /** clusters not listed since the hub started watching them → when they were last seen */
  private readonly unseen = new Map<string, number>();

  constructor(world: World, graceMs: number, log: Logger, clock: Clock = realClock) {
    this.world = world;
    this.grace = graceMs;
    this.log = log;
    this.clock = clock;
  }

  get graceMs(): number {
    return this.grace;
  }

  /** A new grace (config reload) applies to the clusters waiting for theirs too. */
  set graceMs(ms: number) {
    if (ms === this.grace) return;
    this.grace = ms;
    for (const [cluster, t] of [...this.timers]) this.schedule(cluster, t.from);
  }

  /**
   * The hub starts watching a cluster. `lastSeenAt`: when its restored last
   * known state was last seen healthy; without one, now. Until the source
   * lists it (`synced`) it counts as unseen since then, and is withdrawn
   * when the grace runs out.
   */
  track(cluster: string, lastSeenAt: number = this.clock.now()): void {
    this.unseen.set(cluster, lastSeenAt);
    this.schedule(cluster, lastSeenAt);
  }

  /** The source listed every kind of the cluster: it is seen, and healthy. */
  synced(cluster: string): void {
    if (!this.unseen.delete(cluster)) return;
    if (this.world.clusters.get(cluster)?.health.stale) this.report(cluster, true);
    else this.cancel(cluster);
  }

  /** A source says whether it reaches its cluster now. */
  report(cluster: string, up: boolean, reason?: string): void {
    // a cluster that left the configuration has no health to keep
    const h = this.world.clusters.get(cluster)?.health;
    if (!h) return;
    if (up) {
      // reachable is not seen: a cluster becomes current when its source has listed it
      if (!h.stale || this.unseen.has(cluster)) return;
      this.cancel(cluster);
      const downS = Math.round((this.clock.now() - (h.staleSince ?? this.clock.now())) / 1000);
      this.log.info({ cluster, downSeconds: downS }, "cluster reachable again; its state is current");
      this.world.setHealth(cluster, HEALTHY);
      return;
    }
    if (h.stale) return;
    const graceS = Math.round(this.grace / 1000);
    const lastSeen = this.unseen.get(cluster);
    const since = lastSeen ?? this.clock.now();
    const sync = this.world.clusters.get(cluster)?.sync;
    if (sync === "pending")
      this.log.warn(
        { cluster, reason, graceSeconds: graceS },
        "cluster unreachable and not seen since the hub started: views that hold it wait; after the grace period other clusters' views are served without it",
      );
    else
      this.log.warn(
        {
          cluster,
          reason,
          graceSeconds: graceS,
          ...(lastSeen !== undefined ? { lastSeen: new Date(lastSeen).toISOString() } : {}),
        },
        "cluster unreachable: serving its last known state; its backends leave other clusters' agents after the grace period",
      );
    this.world.setHealth(cluster, {
      stale: true,
      withdrawn: false,
      staleSince: since,
      reason: reason ?? "unreachable",
    });
    this.schedule(cluster, since);
  }

  /** The cluster left the configuration. */
  forget(cluster: string): void {
    this.cancel(cluster);
    this.unseen.delete(cluster);
  }

  close(): void {
    for (const c of [...this.timers.keys()]) this.cancel(c);
  }

  /** (Re)arms the withdrawal of a cluster for `from` + the grace; at once when that is past. */
  private schedule(cluster: string, from: number): void {
    this.cancel(cluster);
    const wait = from + this.grace - this.clock.now();
    if (wait <= 0) {
      this.withdraw(cluster, from);
      return;
    }
    const timer = this.clock.setTimeout(() => {
      this.timers.delete(cluster);
      this.withdraw(cluster, from);
    }, wait);
    this.timers.set(cluster, { timer, from });
  }

  private withdraw(cluster: string, from: number): void {
    const cur = this.world.clusters.get(cluster)?.health;
    if (!cur || cur.withdrawn) return;
    const graceS = Math.round(this.grace / 1000);
    if (cur.stale) {
      this.log.error(
        { cluster, reason: cur.reason, graceSeconds: graceS },
        "cluster still unreachable after the grace period: its backends are withdrawn from other clusters' agents",
      );
      this.world.setHealth(cluster, { ...cur, withdrawn: true });
      return;
    }
    // healthy by all reports, but never listed since the hub started watching it
    if (!this.unseen.has(cluster)) return;
    this.log.error(
      { cluster, lastSeen: new Date(from).toISOString(), graceSeconds: graceS },
      "cluster not seen for longer than the grace period: its backends are withdrawn from other clusters' agents",
    );
    this.world.setHealth(cluster, {
      stale: true,
      withdrawn: true,
      staleSince: from,
      reason: "not seen within the grace period",
    });
  }

  private cancel(cluster: string): void {
    const t = this.timers.get(cluster);
    if (t !== undefined) this.clock.clearTimeout(t.timer);
    this.timers.delete(cluster);
  }
}
