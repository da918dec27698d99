/**
 * Keeps one snapshot per view, rebuilt when a cluster of the view changes.
 * Bursts are coalesced: a change schedules one rebuild after `debounceMs`,
 * and every change inside that window rides along. Listeners (the streams of
 * that view's agents) are told once per rebuild.
 */
import type { World } from "../model/world.ts";
import { computeViewSnapshot, type ViewSnapshot } from "../translate/compute-resources.ts";

export type View = { key: string; clusters: string[] };

export class SnapshotCache {
  private readonly world: World;
  private readonly debounceMs: number;
  private readonly snapshots = new Map<string, ViewSnapshot>();
  private readonly views = new Map<string, View>();
  private readonly listeners = new Map<string, Set<(s: ViewSnapshot) => void>>();
  private readonly dirty = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;
  onRebuild: ((view: string, snap: ViewSnapshot, ms: number) => void) | undefined;

  constructor(world: World, debounceMs: number) {
    this.world = world;
    this.debounceMs = debounceMs;
    this.unsubscribe = world.onChange((cluster) => {
      for (const v of this.views.values()) if (v.clusters.includes(cluster)) this.dirty.add(v.key);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.timer || this.dirty.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.debounceMs);
  }

  /** Rebuilds every dirty view now and notifies its listeners. */
  flush(): void {
    const keys = [...this.dirty];
    this.dirty.clear();
    for (const key of keys) {
      const view = this.views.get(key);
      if (!view) continue;
      const snap = this.build(view);
      for (const fn of this.listeners.get(key) ?? []) fn(snap);
    }
  }

  private build(view: View): ViewSnapshot {
    const t0 = performance.now();
    const states = view.clusters.map((c) => this.world.clusters.get(c)).filter((c) => c !== undefined);
    const snap = computeViewSnapshot(states);
    this.snapshots.set(view.key, snap);
    this.onRebuild?.(view.key, snap, performance.now() - t0);
    return snap;
  }

  /** The current snapshot of a view (built on first use). */
  get(view: View): ViewSnapshot {
    if (!this.views.has(view.key)) this.views.set(view.key, view);
    return this.snapshots.get(view.key) ?? this.build(view);
  }

  subscribe(view: View, fn: (s: ViewSnapshot) => void): () => void {
    if (!this.views.has(view.key)) this.views.set(view.key, view);
    let set = this.listeners.get(view.key);
    if (!set) {
      set = new Set();
      this.listeners.set(view.key, set);
    }
    set.add(fn);
    return () => set.delete(fn);
  }

  close(): void {
    this.unsubscribe();
    if (this.timer) clearTimeout(this.timer);
  }
}
