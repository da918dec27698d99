/**
 * The set of clusters the hub watches, changed while it runs: a cluster
 * added to the config starts watching; one removed stops and leaves the
 * world (its Services leave every view); one whose source changed is
 * restarted. Clusters that did not change are not touched.
 *
 * A cluster starts from its last known state when the shared state has one
 * (state/last-known.ts), and a restarted source keeps what the world holds
 * of its cluster: either way the objects are served, as stale when the
 * cluster cannot be reached, until the source's first listing confirms or
 * removes them. A cluster with neither is unseen until listed: views that
 * hold it are held back (xds/view-hold.ts).
 */
import type { Logger } from "@switchyard/lib/log";
import { type ClusterConfig, sameSource } from "../config.ts";
import type { World } from "../model/world.ts";
import type { LastKnownStore } from "../state/last-known.ts";
import type { PolicyObserver, PolicyStatusClient } from "../status/policy-status.ts";
import { DirectorySource } from "./directory.ts";
import type { ClusterHealthTracker } from "./health.ts";
import { KubeSource } from "./kube.ts";
import { type ClusterSource, type RejectedObject, WorldWriter } from "./source.ts";

type Running = {
  config: ClusterConfig;
  source: ClusterSource;
  writer: WorldWriter;
  statusClient?: PolicyStatusClient | undefined;
};

export class ClusterManager {
  private readonly world: World;
  private readonly tracker: ClusterHealthTracker;
  private readonly log: Logger;
  private readonly running = new Map<string, Running>();
  /** clusters of the config whose source could not start, with why (tried again at each apply) */
  private readonly failed = new Map<string, string>();
  private readonly lastKnown: LastKnownStore | undefined;
  private readonly policies: PolicyObserver | undefined;
  /** how long an API server may take to answer a probe before its cluster is stale */
  apiTimeoutMs: number;

  constructor(
    world: World,
    tracker: ClusterHealthTracker,
    log: Logger,
    apiTimeoutMs = 10_000,
    lastKnown?: LastKnownStore,
    policies?: PolicyObserver,
  ) {
    this.world = world;
    this.tracker = tracker;
    this.log = log;
    this.apiTimeoutMs = apiTimeoutMs;
    this.lastKnown = lastKnown;
    this.policies = policies;
  }

  /** Writes policies' status in a cluster; undefined for a cluster without an API server (or not running). */
  statusClientOf(cluster: string): PolicyStatusClient | undefined {
    const r = this.running.get(cluster);
    if (!r) return undefined;
    if (!("statusClient" in r)) r.statusClient = r.source.policyStatusClient?.();
    return r.statusClient;
  }

  get clusters(): string[] {
    return [...this.running.keys()];
  }

  /** objects rejected per cluster since it started (for metrics) */
  rejected(): Map<string, number> {
    return new Map([...this.running].map(([n, r]) => [n, r.writer.rejected]));
  }

  /** the cluster's objects refused as they are now, each with why */
  rejectedNow(cluster: string): RejectedObject[] {
    return [...(this.running.get(cluster)?.writer.rejectedNow.values() ?? [])];
  }

  /** why the cluster's source could not start, or undefined when it runs */
  failure(cluster: string): string | undefined {
    return this.failed.get(cluster);
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
    /** restarted clusters whose objects stay in the world: since when they were seen */
    const kept = new Map<string, number>();
    for (const [name, r] of [...this.running]) {
      const w = wanted.get(name);
      if (w && sameSource(w, r.config)) continue;
      await r.source.stop();
      this.running.delete(name);
      this.tracker.forget(name);
      const st = this.world.clusters.get(name);
      if (w && st && st.sync !== "pending") kept.set(name, st.health.staleSince ?? Date.now());
      else this.world.removeCluster(name);
      if (!w) await this.lastKnown?.delete(name).catch(() => {});
      removed.push(name);
      this.log.info({ cluster: name }, w ? "cluster source changed; restarting" : "cluster removed");
    }
    // a cluster that failed to start and left the config
    for (const name of [...this.failed.keys()])
      if (!wanted.has(name)) {
        this.failed.delete(name);
        this.tracker.forget(name);
        this.world.removeCluster(name);
        removed.push(name);
      }
    const failures: string[] = [];
    for (const c of configs) {
      if (this.running.has(c.name)) continue;
      const failedBefore = this.failed.get(c.name);
      this.failed.delete(c.name);
      const clog = this.log.child({ component: "source", cluster: c.name });
      const writer = new WorldWriter(this.world, c.name, clog, this.tracker, this.policies);
      this.world.cluster(c.name);
      const keptSince = kept.get(c.name);
      if (keptSince !== undefined) {
        writer.restore();
        this.tracker.track(c.name, keptSince);
      } else if (failedBefore === undefined) this.restore(c.name, writer, clog);
      let source: ClusterSource | undefined;
      try {
        // a kubeconfig that cannot be read throws here
        source =
          c.kind === "dir"
            ? new DirectorySource(c.path, writer, clog)
            : new KubeSource(writer, clog, {
                ...(c.kind === "in-cluster" ? { inCluster: true } : { kubeconfig: c.path }),
                apiTimeoutMs: this.apiTimeoutMs,
              });
        // an API server that never answers must not keep the hub from serving: the source goes on in the background
        const starting = source.start();
        starting.catch(() => {}); // a failure after the wait: the source reports it itself
        const synced = await Promise.race([
          starting,
          new Promise<"waiting">((resolve) =>
            setTimeout(() => resolve("waiting"), this.apiTimeoutMs).unref(),
          ),
        ]);
        this.running.set(c.name, { config: c, source, writer });
        added.push(c.name);
        if (synced === true) this.log.info({ cluster: c.name }, "cluster synced");
        else if (synced === false)
          this.log.warn({ cluster: c.name }, "cluster not reachable yet; retrying in the background");
        else this.log.warn({ cluster: c.name }, "cluster not listed yet; listing goes on in the background");
      } catch (e) {
        await source?.stop().catch(() => {});
        const reason = (e as Error).message;
        // the cluster stays, failed, with why (`clusters`, metrics): objects of it that are held (kept
        // across the source change, or restored) are served as an unreachable cluster's last known state
        // (withdrawn from other clusters' views after the grace); one never seen holds back its views like
        // any unseen cluster. Tried again at the next apply (config reload, SIGHUP).
        this.failed.set(c.name, reason);
        writer.health(false, `its source did not start: ${reason}`);
        this.log.error(
          { cluster: c.name, source: c.kind, reason },
          "cluster failed: its source cannot start; fix it and reload the config (SIGHUP)",
        );
        failures.push(`cluster ${c.name}: ${reason}`);
      }
    }
    if (failures.length) throw new Error(failures.join("; "));
    return { added, removed };
  }

  /** The cluster's last known state from the shared state, if there is a usable one. */
  private restore(cluster: string, writer: WorldWriter, clog: Logger): void {
    const r = this.lastKnown?.load(cluster);
    if (!r) {
      this.tracker.track(cluster);
      return;
    }
    if (!r.ok) {
      clog.error(
        { reason: r.error },
        "the cluster's stored last known state is not usable; ignored (the cluster is unseen until listed)",
      );
      this.tracker.track(cluster);
      return;
    }
    writer.restore(r.value.objects);
    this.tracker.track(cluster, r.value.lastSeenAt);
    clog.info(
      { lastSeen: new Date(r.value.lastSeenAt).toISOString(), objects: r.value.objects.length },
      "cluster starts from its last known state until it is listed",
    );
  }

  async stop(): Promise<void> {
    await Promise.all([...this.running.values()].map((r) => r.source.stop()));
    this.running.clear();
    this.failed.clear();
    this.tracker.close();
  }
}
