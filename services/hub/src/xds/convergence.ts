/**
 * How long a view change takes to reach every agent of the view: from the
 * moment the hub's snapshot changed to the last agent's ACK of that version
 * (pure; the clock is injected). An agent that disconnects stops being
 * waited for; a newer change before convergence replaces the older one
 * (counted as superseded, not as converged).
 *
 * An agent with resources of its own (a node's LocalRedirect pods) holds
 * the view at its own version (the shared digest XOR its node's): it is
 * waited for until it acknowledges the version it should hold now — a
 * change of only its node's resources meanwhile does not leave it waiting
 * for a version it can no longer reach.
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

  /**
   * The view is now at `version`; `agents` are its connected agents with the
   * version each acknowledged and, for one with resources of its own, the
   * version it should hold (`current`).
   */
  viewChanged(
    view: string,
    version: string,
    agents: Iterable<{ key: unknown; acked: string; current?: string }>,
  ): void {
    if (this.views.has(view)) this.superseded++;
    const waiting = new Set<unknown>();
    for (const a of agents) if (a.acked !== (a.current ?? version)) waiting.add(a.key);
    if (waiting.size === 0) {
      this.views.delete(view);
      return;
    }
    this.views.set(view, { version, t0: this.now(), waiting, agents: waiting.size });
  }

  /** An agent acknowledged holding the view at `version`; `current`: the version it should hold now, when its own. */
  acked(view: string, agent: unknown, version: string, current?: string): void {
    const p = this.views.get(view);
    if (p && version === (current ?? p.version)) this.done(view, p, agent);
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
