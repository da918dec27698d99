/**
 * The set of clusters the hub watches, changed while it runs: a cluster
 * added to the config starts watching; one removed stops and leaves the
 * world (its Services leave every view); one whose source changed is
 * restarted. Clusters that did not change are not touched.
 */
import type { Logger } from "@switchyard/lib/log";
import { type ClusterConfig, sameSource } from "../config.ts";
import type { World } from "../model/world.ts";
import { DirectorySource } from "./directory.ts";
import type { ClusterHealthTracker } from "./health.ts";
import { KubeSource } from "./kube.ts";
import { type ClusterSource, WorldWriter } from "./source.ts";

type Running = { config: ClusterConfig; source: ClusterSource; writer: WorldWriter };

export class ClusterManager {
  private readonly world: World;
  private readonly tracker: ClusterHealthTracker;
  private readonly log: Logger;
  private readonly running = new Map<string, Running>();
  /** how long an API server may take to answer a probe before its cluster is stale */
  apiTimeoutMs: number;

  constructor(world: World, tracker: ClusterHealthTracker, log: Logger, apiTimeoutMs = 10_000) {
    this.world = world;
    this.tracker = tracker;
    this.log = log;
    this.apiTimeoutMs = apiTimeoutMs;
  }

  get clusters(): string[] {
    return [...this.running.keys()];
  }

  /** objects rejected per cluster since it started (for metrics) */
  rejected(): Map<string, number> {
    return new Map([...this.running].map(([n, r]) => [n, r.writer.rejected]));
  }

  /**
   * Makes the running clusters match `configs`. Throws only for a cluster
   * that cannot start at all (e.g. a missing directory), after the others
   * were applied.
   */
  async apply(configs: readonly ClusterConfig[]): Promise<{ added: string[]; removed: string[] }> {
    const added: string[] = [];
    const removed: string[] = [];
    const wanted = new Map(configs.map((c) => [c.name, c]));
    for (const [name, r] of [...this.running]) {
      const w = wanted.get(name);
      if (w && sameSource(w, r.config)) continue;
      await r.source.stop();
      this.running.delete(name);
      this.tracker.forget(name);
      this.world.removeCluster(name);
      removed.push(name);
      this.log.info({ cluster: name }, w ? "cluster source changed; restarting" : "cluster removed");
    }
    const failures: string[] = [];
    for (const c of configs) {
      if (this.running.has(c.name)) continue;
      const clog = this.log.child({ component: "source", cluster: c.name });
      const writer = new WorldWriter(this.world, c.name, clog, this.tracker);
      this.world.cluster(c.name);
      const source: ClusterSource =
        c.kind === "dir"
          ? new DirectorySource(c.path, writer, clog)
          : new KubeSource(writer, clog, {
              ...(c.kind === "in-cluster" ? { inCluster: true } : { kubeconfig: c.path }),
              apiTimeoutMs: this.apiTimeoutMs,
            });
      try {
        const synced = await source.start();
        this.running.set(c.name, { config: c, source, writer });
        added.push(c.name);
        if (synced) this.log.info({ cluster: c.name }, "cluster synced");
        else this.log.warn({ cluster: c.name }, "cluster not reachable yet; retrying in the background");
      } catch (e) {
        await source.stop().catch(() => {});
        this.world.removeCluster(c.name);
        failures.push(`cluster ${c.name}: ${(e as Error).message}`);
      }
    }
    if (failures.length) throw new Error(failures.join("; "));
    return { added, removed };
  }

  async stop(): Promise<void> {
    await Promise.all([...this.running.values()].map((r) => r.source.stop()));
    this.running.clear();
    this.tracker.close();
  }
}
