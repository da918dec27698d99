/**
 * Keeps one incrementally translated snapshot per view. Bursts are
 * coalesced, at most one update per `debounceMs`: the first change after a
 * quiet window goes out at once (on the next turn of the event loop, with
 * whatever else that turn brought), later ones wait for the window to end
 * and ride along together. Listeners (the streams of that view's agents) are
 * told once per update, with the names that changed.
 *
 * Per-node resources (a LocalRedirectPolicy's pods on one node,
 * `lrpb/…/<node>`) are an overlay on the view's shared snapshot: a node's
 * agents get `get(view, node)` — the shared map plus the node's own, at a
 * version covering both — and a listener subscribed with its node hears of
 * the shared changes and of its node's, never of another node's. A Pod
 * change thus reaches that node's agents only.
 *
 * A view waits for clusters the hub has not seen yet (view-hold.ts): while
 * it does, its snapshot is kept current but `isHeld` says not to send it;
 * when it is released, its listeners are told (even with nothing changed),
 * so each stream sends what its agent lacks.
 */
import type { PolicyVerdict } from "../model/types.ts";
import type { World, WorldChange } from "../model/world.ts";
import {
  type Reach,
  type TranslateOptions,
  type ViewSnapshot,
  ViewTranslator,
} from "../translate/compute-resources.ts";
import { overlayNodeOf } from "../translate/view-resources.ts";
import { computeViewHold } from "./view-hold.ts";

/** The clusters an agent sees: its home cluster (first) and the clusters it imports. */
export type View = { key: string; clusters: string[]; reach: Reach };
/** `snap` is the listener's node's snapshot (the shared one without a node); `changed` only names what it receives */
export type SnapshotListener = (snap: ViewSnapshot, changed: ReadonlySet<string>) => void;
/** a listener and the node whose resources it receives besides the shared ones (undefined: the shared ones only) */
type Subscription = { fn: SnapshotListener; node: string | undefined };
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
  private readonly listeners = new Map<string, Set<Subscription>>();
  /** per view: node → its subscriptions (a change of a node's own resources goes to these only) */
  private readonly nodeListeners = new Map<string, Map<string, Set<Subscription>>>();
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
      this.notify(v, changed, released);
    }
  }

  /**
   * Tells each listener what changed of what it receives: a shared change
   * (or a release) everyone, with their node's own changes folded in; a
   * change of only some nodes' own resources those nodes' listeners only.
   */
  private notify(v: ViewState, changed: ReadonlySet<string>, released: boolean): void {
    const key = v.view.key;
    let own: Map<string, Set<string>> | undefined;
    for (const name of changed) {
      const node = overlayNodeOf(name);
      if (node === undefined) continue;
      own ??= new Map();
      let set = own.get(node);
      if (!set) {
        set = new Set();
        own.set(node, set);
      }
      set.add(name);
    }
    // no per-node name: `changed` is all shared (no copy)
    const sharedNames: ReadonlySet<string> =
      own === undefined ? changed : new Set([...changed].filter((n) => overlayNodeOf(n) === undefined));
    if (sharedNames.size > 0 || released) {
      for (const sub of this.listeners.get(key) ?? []) {
        const mine = sub.node === undefined ? undefined : own?.get(sub.node);
        const names = mine ? new Set([...sharedNames, ...mine]) : sharedNames;
        sub.fn(this.snapshotFor(v, sub.node), names);
      }
      return;
    }
    const byNode = this.nodeListeners.get(key);
    for (const [node, names] of own ?? []) {
      const subs = byNode?.get(node);
      if (!subs) continue;
      const snap = v.translator.nodeSnapshot(node);
      for (const sub of subs) sub.fn(snap, names);
    }
  }

  private snapshotFor(v: ViewState, node: string | undefined): ViewSnapshot {
    return node === undefined ? v.translator.snapshot() : v.translator.nodeSnapshot(node);
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

  /**
   * The current snapshot of a view (built on first use), or what one node of
   * it receives: the shared resources and the node's own. Its maps are live:
   * read them, do not keep them.
   */
  get(view: View, node?: string): ViewSnapshot {
    return this.snapshotFor(this.state(view), node);
  }

  /** The verdicts on the LocalRedirectPolicies of a view's home cluster (for status), by namespace/name. */
  policyVerdicts(view: View): ReadonlyMap<string, PolicyVerdict> {
    return this.state(view).translator.policyVerdicts;
  }

  /**
   * Listens to a view's updates. An agent stream's subscription keeps the
   * view alive; a `passive` one (bookkeeping about the view) does not and
   * ends when the view is dropped.
   */
  subscribe(view: View, fn: SnapshotListener, opts: { passive?: boolean; node?: string } = {}): () => void {
    const key = view.key;
    this.state(view);
    let set = this.listeners.get(key);
    if (!set) {
      set = new Set();
      this.listeners.set(key, set);
    }
    const sub: Subscription = { fn, node: opts.node };
    set.add(sub);
    let byNode: Map<string, Set<Subscription>> | undefined;
    if (sub.node !== undefined) {
      byNode = this.nodeListeners.get(key);
      if (!byNode) {
        byNode = new Map();
        this.nodeListeners.set(key, byNode);
      }
      let subs = byNode.get(sub.node);
      if (!subs) {
        subs = new Set();
        byNode.set(sub.node, subs);
      }
      subs.add(sub);
    }
    const drop = () => {
      set.delete(sub);
      if (sub.node === undefined || !byNode) return;
      const subs = byNode.get(sub.node);
      if (subs?.delete(sub) && subs.size === 0) byNode.delete(sub.node);
    };
    if (opts.passive) return drop;
    this.users.set(key, (this.users.get(key) ?? 0) + 1);
    this.idleSince.delete(key);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      drop();
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
      this.nodeListeners.delete(key);
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
