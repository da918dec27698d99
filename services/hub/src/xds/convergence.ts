/**
 * How long a view change takes to reach every agent of the view: from the
 * moment the hub's snapshot changed to the last agent's ACK of that version
 * (pure; the clock is injected). An agent that disconnects stops being
 * waited for; a newer change before convergence replaces the older one
 * (counted as superseded, not as converged).
 */
type Pending = { version: string; t0: number; waiting: Set<unknown>; agents: number };

export class ConvergenceTracker {
  private readonly views = new Map<string, Pending>();
  private readonly now: () => number;
  onConverged: ((view: string, ms: number, agents: number) => void) | undefined;
  superseded = 0;

  constructor(now: () => number = () => performance.now()) {
    this.now = now;
  }

  /** The view is now at `version`; `agents` are its connected agents with the version each acknowledged. */
  viewChanged(view: string, version: string, agents: Iterable<{ key: unknown; acked: string }>): void {
    if (this.views.has(view)) this.superseded++;
    const waiting = new Set<unknown>();
    for (const a of agents) if (a.acked !== version) waiting.add(a.key);
    if (waiting.size === 0) {
      this.views.delete(view);
      return;
    }
    this.views.set(view, { version, t0: this.now(), waiting, agents: waiting.size });
  }

  acked(view: string, agent: unknown, version: string): void {
    const p = this.views.get(view);
    if (p?.version === version) this.done(view, p, agent);
  }

  gone(view: string, agent: unknown): void {
    const p = this.views.get(view);
    if (p) this.done(view, p, agent);
  }

  private done(view: string, p: Pending, agent: unknown): void {
    if (!p.waiting.delete(agent) || p.waiting.size > 0) return;
    this.views.delete(view);
    this.onConverged?.(view, this.now() - p.t0, p.agents);
  }
}
