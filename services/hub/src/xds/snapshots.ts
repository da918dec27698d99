/**
 * Keeps one incrementally translated snapshot per view. Bursts are
 * coalesced, at most one update per `debounceMs`: the first change after a
 * quiet window goes out at once (on the next turn of the event loop, with
 * whatever else that turn brought), later ones wait for the window to end
 * and ride along together. Listeners (the streams of that view's agents) are
 * told once per update, with the names that changed.
 *
 * A view waits for clusters the hub has not seen yet (view-hold.ts): while
 * it does, its snapshot is kept current but `isHeld` says not to send it;
 * when it is released, its listeners are told (even with nothing changed),
 * so each stream sends what its agent lacks.
 */
import type { World, WorldChange } from "../model/world.ts";
import {
  type Reach,
  type TranslateOptions,
  type ViewSnapshot,
  ViewTranslator,
} from "../translate/compute-resources.ts";
import { computeViewHold } from "./view-hold.ts";

/** The clusters an agent sees: its home cluster (first) and the clusters it imports. */
export type View = { key: string; clusters: string[]; reach: Reach };
export type SnapshotListener = (snap: ViewSnapshot, changed: ReadonlySet<string>) => void;
/** setTimeout, injectable for tests; returns a cancel function */
export type Schedule = (fn: () => void, ms: number) => () => void;
const realSchedule: Schedule = (fn, ms) => {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
};

type ViewState = {
  view: View;
  translator: ViewTranslator;
  built: boolean;
  full: boolean;
  pending: WorldChange[];
  /** clusters the view waits for before anything is sent (empty = serve it) */
  waitingFor: string[];
};

export class SnapshotCache {
  private readonly world: World;
  private readonly debounceMs: number;
  private readonly views = new Map<string, ViewState>();
  private readonly listeners = new Map<string, Set<SnapshotListener>>();
  /** agent streams subscribed per view (passive listeners do not count) */
  private readonly users = new Map<string, number>();
  /** views without users, since when (ms) */
  private readonly idleSince = new Map<string, number>();
  private readonly idleMs: number;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;
  private readonly setTimer: Schedule;
  private translateOptions: TranslateOptions;
  /** cancels the scheduled update */
  private timer: (() => void) | undefined;
  private lastFlushAt = Number.NEGATIVE_INFINITY;
  private readonly unsubscribe: () => void;
  /** a view was dropped (whoever keeps per-view state drops theirs) */
  onEvict: ((view: string) => void) | undefined;
  onRebuild:
    | ((view: string, snap: ViewSnapshot, changed: ReadonlySet<string>, ms: number) => void)
    | undefined;
  /** a view was held back (waitingFor: the clusters not seen yet) or released (waitingFor empty) */
  onHold: ((view: string, waitingFor: readonly string[]) => void) | undefined;

  constructor(
    world: World,
    debounceMs: number,
    opts: { idleMs?: number; now?: () => number; schedule?: Schedule; translate?: TranslateOptions } = {},
  ) {
    this.world = world;
    this.debounceMs = debounceMs;
    this.idleMs = opts.idleMs ?? 10 * 60_000;
    this.now = opts.now ?? Date.now;
    this.setTimer = opts.schedule ?? realSchedule;
    this.translateOptions = opts.translate ?? {};
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, this.idleMs / 2));
    this.sweeper.unref();
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
    // at once after a quiet window; else when the window since the last update ends
    const wait = Math.max(0, this.lastFlushAt + this.debounceMs - this.now());
    this.timer = this.setTimer(() => {
      this.timer = undefined;
      this.flush();
    }, wait);
  }

  private states(view: View) {
    return view.clusters.map((c) => this.world.clusters.get(c)).filter((c) => c !== undefined);
  }

  /** Applies every pending change now and notifies listeners of what changed. */
  flush(): void {
    this.lastFlushAt = this.now();
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
      const released = this.updateHold(v);
      if (changed.size === 0 && !released) continue;
      for (const fn of this.listeners.get(v.view.key) ?? []) fn(snap, changed);
    }
  }

  private state(view: View): ViewState {
    let v = this.views.get(view.key);
    if (!v) {
      v = {
        view,
        translator: new ViewTranslator(view.clusters[0], view.reach, this.translateOptions),
        built: false,
        full: false,
        pending: [],
        waitingFor: [],
      };
      this.views.set(view.key, v);
      if (!this.users.get(view.key)) this.idleSince.set(view.key, this.now());
    }
    if (!v.built) {
      const t0 = performance.now();
      const changed = v.translator.rebuild(this.states(view));
      v.built = true;
      this.onRebuild?.(view.key, v.translator.snapshot(), changed, performance.now() - t0);
      this.updateHold(v);
    }
    return v;
  }

  /** Recomputes what the view waits for; true when it was just released. */
  private updateHold(v: ViewState): boolean {
    const before = v.waitingFor;
    const now = computeViewHold(v.view.clusters, this.world.clusters);
    if (now.join() === before.join()) return false;
    v.waitingFor = now;
    this.onHold?.(v.view.key, now);
    return now.length === 0;
  }

  /** Whether nothing may be sent to the view's agents yet (a cluster of it was not seen yet). */
  isHeld(view: View): boolean {
    return this.state(view).waitingFor.length > 0;
  }

  /** The views held back now and the clusters each waits for (for health, admin and metrics). */
  held(): Map<string, readonly string[]> {
    const out = new Map<string, readonly string[]>();
    for (const [key, v] of this.views) if (v.waitingFor.length > 0) out.set(key, v.waitingFor);
    return out;
  }

  /** The current snapshot of a view (built on first use). Its resource map is live: read it, do not keep it. */
  get(view: View): ViewSnapshot {
    return this.state(view).translator.snapshot();
  }

  /**
   * Listens to a view's updates. An agent stream's subscription keeps the
   * view alive; a `passive` one (bookkeeping about the view) does not and
   * ends when the view is dropped.
   */
  subscribe(view: View, fn: SnapshotListener, opts: { passive?: boolean } = {}): () => void {
    const key = view.key;
    this.state(view);
    let set = this.listeners.get(key);
    if (!set) {
      set = new Set();
      this.listeners.set(key, set);
    }
    set.add(fn);
    if (opts.passive) return () => set.delete(fn);
    this.users.set(key, (this.users.get(key) ?? 0) + 1);
    this.idleSince.delete(key);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      set.delete(fn);
      const n = (this.users.get(key) ?? 1) - 1;
      if (n > 0) this.users.set(key, n);
      else {
        this.users.delete(key);
        this.idleSince.set(key, this.now());
      }
    };
  }

  /** Drops the views unused for idleMs; returns their keys. */
  sweep(now: number = this.now()): string[] {
    const dropped: string[] = [];
    for (const [key, since] of this.idleSince) {
      if (now - since < this.idleMs || this.users.get(key)) continue;
      this.idleSince.delete(key);
      this.views.delete(key);
      this.listeners.delete(key);
      dropped.push(key);
      this.onEvict?.(key);
    }
    return dropped;
  }

  /** New translation settings (the hub's config file changed): every view is rebuilt with them. */
  setTranslateOptions(options: TranslateOptions): void {
    if (JSON.stringify(options) === JSON.stringify(this.translateOptions)) return;
    this.translateOptions = options;
    for (const v of this.views.values()) {
      v.translator.options = options;
      if (v.built) v.full = true;
    }
    this.schedule();
  }

  /** The views held now (for status and tests). */
  get viewKeys(): string[] {
    return [...this.views.keys()];
  }

  close(): void {
    this.unsubscribe();
    clearInterval(this.sweeper);
    this.timer?.();
  }
}
