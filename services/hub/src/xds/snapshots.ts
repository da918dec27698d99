/**
 * Keeps one incrementally translated snapshot per view. Bursts are
 * coalesced: a change schedules one update after `debounceMs`, and every
 * change inside that window rides along. Listeners (the streams of that
 * view's agents) are told once per update, with the names that changed.
 */
import type { World, WorldChange } from "../model/world.ts";
import { type Reach, type ViewSnapshot, ViewTranslator } from "../translate/compute-resources.ts";

/** The clusters an agent sees: its home cluster (first) and the clusters it imports. */
export type View = { key: string; clusters: string[]; reach: Reach };
export type SnapshotListener = (snap: ViewSnapshot, changed: ReadonlySet<string>) => void;

type ViewState = {
  view: View;
  translator: ViewTranslator;
  built: boolean;
  full: boolean;
  pending: WorldChange[];
};

export class SnapshotCache {
  private readonly world: World;
  private readonly debounceMs: number;
  private readonly views = new Map<string, ViewState>();
  private readonly listeners = new Map<string, Set<SnapshotListener>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;
  onRebuild:
    | ((view: string, snap: ViewSnapshot, changed: ReadonlySet<string>, ms: number) => void)
    | undefined;

  constructor(world: World, debounceMs: number) {
    this.world = world;
    this.debounceMs = debounceMs;
    this.unsubscribe = world.onChange((cluster, change) => {
      let any = false;
      for (const v of this.views.values()) {
        if (!v.built || !v.view.clusters.includes(cluster)) continue;
        if (change) v.pending.push(change);
        else v.full = true;
        any = true;
      }
      if (any) this.schedule();
    });
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.debounceMs);
  }

  private states(view: View) {
    return view.clusters.map((c) => this.world.clusters.get(c)).filter((c) => c !== undefined);
  }

  /** Applies every pending change now and notifies listeners of what changed. */
  flush(): void {
    for (const v of this.views.values()) {
      if (!v.built || (!v.full && v.pending.length === 0)) continue;
      const t0 = performance.now();
      const changed = v.full
        ? v.translator.rebuild(this.states(v.view))
        : v.translator.update(this.states(v.view), v.pending);
      v.full = false;
      v.pending = [];
      const snap = v.translator.snapshot();
      this.onRebuild?.(v.view.key, snap, changed, performance.now() - t0);
      if (changed.size === 0) continue;
      for (const fn of this.listeners.get(v.view.key) ?? []) fn(snap, changed);
    }
  }

  private state(view: View): ViewState {
    let v = this.views.get(view.key);
    if (!v) {
      v = {
        view,
        translator: new ViewTranslator(view.clusters[0], view.reach),
        built: false,
        full: false,
        pending: [],
      };
      this.views.set(view.key, v);
    }
    if (!v.built) {
      const t0 = performance.now();
      const changed = v.translator.rebuild(this.states(view));
      v.built = true;
      this.onRebuild?.(view.key, v.translator.snapshot(), changed, performance.now() - t0);
    }
    return v;
  }

  /** The current snapshot of a view (built on first use). Its resource map is live: read it, do not keep it. */
  get(view: View): ViewSnapshot {
    return this.state(view).translator.snapshot();
  }

  subscribe(view: View, fn: SnapshotListener): () => void {
    this.state(view);
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
