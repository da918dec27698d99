/**
 * Destroys connected UDP sockets to removed backends, one walk at a time and
 * never on the caller's turn of the event loop. Removals that arrive while a
 * walk runs are folded into the next walk (one set of pending backends, no
 * queue of walks), so a burst of removals costs at most two walks.
 *
 * The walk itself is a port (`UdpSocketWalker`): ThreadUdpSocketWalker
 * (udp-walker.ts) runs it on a thread of its own; tests use a fake.
 */
import type { Backend } from "./maps.ts";

export type UdpWalkResult = {
  /** sockets the iterator destroyed */
  destroyed: number;
  /** network namespaces the iterator ran in */
  namespaces: number;
  /** namespaces that could not be entered (the process left, setns refused, …) */
  skipped: Array<{ netns: string; reason: string }>;
  /** OS thread id of the thread that entered the namespaces and ran the iterator */
  tid: number;
};

/** Runs one walk over the sockets of the agent's cgroup; never called again before it settles. */
export interface UdpSocketWalker {
  walk(dead: readonly Backend[]): Promise<UdpWalkResult>;
  close(): Promise<void>;
}

export type UdpReaperHooks = {
  onWalk?: (result: UdpWalkResult, backends: readonly Backend[]) => void;
  onError?: (error: Error, backends: readonly Backend[]) => void;
};

export class UdpSocketReaper {
  readonly totals = { walks: 0, failedWalks: 0, destroyed: 0 };
  lastResult: UdpWalkResult | undefined;
  lastError: Error | undefined;
  private readonly walker: UdpSocketWalker;
  private readonly hooks: UdpReaperHooks;
  private pending = new Map<string, Backend>();
  private running = false;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(walker: UdpSocketWalker, hooks: UdpReaperHooks = {}) {
    this.walker = walker;
    this.hooks = hooks;
  }

  /** Whether a walk is in flight. */
  get busy(): boolean {
    return this.running;
  }

  /** Backends no frontend uses any more: their connected sockets are destroyed by the current or next walk. */
  add(dead: readonly Backend[]): void {
    if (this.closed) return;
    for (const b of dead) this.pending.set(`${b.ip}|${b.port}`, { ip: b.ip, port: b.port });
    if (!this.running && this.pending.size > 0) this.startWalk();
  }

  /** Resolves once no walk is in flight and none is pending. */
  idle(): Promise<void> {
    if (!this.running && this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops what is pending and ends the walker (its thread). */
  async close(): Promise<void> {
    this.closed = true;
    this.pending.clear();
    await this.walker.close();
    this.settle();
  }

  private startWalk(): void {
    const batch = [...this.pending.values()];
    this.pending.clear();
    this.running = true;
    let walk: Promise<UdpWalkResult>;
    try {
      walk = this.walker.walk(batch);
    } catch (e) {
      walk = Promise.reject(e);
    }
    walk
      .then(
        (r) => {
          this.totals.walks++;
          this.totals.destroyed += r.destroyed;
          this.lastResult = r;
          this.hooks.onWalk?.(r, batch);
        },
        (e: unknown) => {
          this.totals.failedWalks++;
          this.lastError = e instanceof Error ? e : new Error(String(e));
          this.hooks.onError?.(this.lastError, batch);
        },
      )
      .catch(() => {}) // a hook that throws must not end the agent
      .finally(() => {
        this.running = false;
        if (!this.closed && this.pending.size > 0) this.startWalk();
        else this.settle();
      });
  }

  private settle(): void {
    if (this.running || (this.pending.size > 0 && !this.closed)) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
