/**
 * The hub's Prometheus metrics, read from live state at scrape time
 * (nothing is counted twice): cluster health and size, policies by state,
 * agents, NACKs, and the process (RSS, CPU, event loop).
 */
import type http from "node:http";
import { type Readiness, serveMetricsAndHealth } from "@switchyard/lib/metrics-server";
import client from "prom-client";
import type { World } from "../model/world.ts";
import type { ClusterManager } from "../sources/manager.ts";
import type { PolicyBook } from "../status/policy-status.ts";
import type { Front } from "../transport/front.ts";
import type { AssignmentServer } from "../xds/grpc-server.ts";
import type { SnapshotCache } from "../xds/snapshots.ts";

export function createHubMetrics(deps: {
  world: World;
  clusters: ClusterManager;
  assignments: AssignmentServer;
  /** views held back (a cluster of them not seen yet) */
  snapshots?: Pick<SnapshotCache, "held" | "viewKeys">;
  /** the port's streams per serving thread */
  front?: Pick<Front, "openStreams"> & Partial<Pick<Front, "refusals">>;
  /** every policy with its verdict */
  policies?: Pick<PolicyBook, "rows">;
  now?: () => number;
}): client.Registry {
  const { world, clusters, assignments, snapshots, front } = deps;
  const now = deps.now ?? Date.now;
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: "switchyard_hub_" });
  const each = <T extends string>(g: client.Gauge<T>, fill: () => void) => {
    g.reset();
    fill();
  };
  new client.Gauge({
    name: "switchyard_hub_cluster_stale",
    help: "1 while the hub cannot reach the cluster's API (its last known state is served)",
    labelNames: ["cluster"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const c of world.clusters.values()) this.set({ cluster: c.name }, c.health.stale ? 1 : 0);
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_cluster_withdrawn",
    help: "1 once a stale cluster's backends were withdrawn from other clusters' agents (grace period over)",
    labelNames: ["cluster"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const c of world.clusters.values()) this.set({ cluster: c.name }, c.health.withdrawn ? 1 : 0);
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_cluster_stale_seconds",
    help: "how long the cluster has been unreachable (0 when reachable)",
    labelNames: ["cluster"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const c of world.clusters.values())
          this.set({ cluster: c.name }, c.health.staleSince ? (now() - c.health.staleSince) / 1000 : 0);
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_cluster_synced",
    help: "1 once the cluster was listed since the hub started; 0 while only its last known state is served, or nothing of it",
    labelNames: ["cluster"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const c of world.clusters.values()) this.set({ cluster: c.name }, c.sync === "synced" ? 1 : 0);
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_policies",
    help: "policies per cluster, kind, state (Accepted, NotAccepted, Pending) and reason (Conflict, InvalidSpec, ServiceNotFound, …)",
    labelNames: ["cluster", "kind", "state", "reason"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const r of deps.policies?.rows() ?? [])
          this.inc({ cluster: r.cluster, kind: r.kind, state: r.state, reason: r.reason || "none" });
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_view_held",
    help: "1 while a view waits for a cluster the hub has not seen yet: its agents are sent nothing and keep what they hold",
    labelNames: ["view"],
    registers: [registry],
    collect() {
      each(this, () => {
        const held = snapshots?.held() ?? new Map();
        for (const view of snapshots?.viewKeys ?? []) this.set({ view }, held.has(view) ? 1 : 0);
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_cluster_objects",
    help: "objects the hub holds per cluster and kind",
    labelNames: ["cluster", "kind"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const c of world.clusters.values()) {
          this.set({ cluster: c.name, kind: "Service" }, c.services.size);
          this.set({ cluster: c.name, kind: "EndpointSlice" }, c.slices.size);
          this.set({ cluster: c.name, kind: "Node" }, c.nodes.size);
          this.set({ cluster: c.name, kind: "ServiceExport" }, c.exports.size);
          this.set({ cluster: c.name, kind: "ServiceImport" }, c.imports.size);
          this.set({ cluster: c.name, kind: "Pod" }, c.pods.size);
          this.set({ cluster: c.name, kind: "LocalRedirectPolicy" }, c.localRedirects.size);
          this.set({ cluster: c.name, kind: "BalancingPolicy" }, c.balancing.size);
        }
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_objects_rejected",
    help: "objects rejected as invalid since the cluster's source started (the previous version is kept)",
    labelNames: ["cluster"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const [cluster, n] of clusters.rejected()) this.set({ cluster }, n);
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_objects_rejected_now",
    help: "the cluster's objects refused as they are now (invalid; `switchyard-hub clusters` names them and says why)",
    labelNames: ["cluster"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const cluster of clusters.clusters) this.set({ cluster }, clusters.rejectedNow(cluster).length);
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_cluster_failed",
    help: "1 while the cluster's source cannot start (e.g. its kubeconfig cannot be read; the log and `switchyard-hub clusters` say why)",
    labelNames: ["cluster"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const c of world.clusters.values())
          this.set({ cluster: c.name }, clusters.failure(c.name) === undefined ? 0 : 1);
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_agents_connected",
    help: "agents with an open assignment stream, per home cluster",
    labelNames: ["cluster"],
    registers: [registry],
    collect() {
      each(this, () => {
        const by = assignments.countsByCluster();
        for (const cluster of world.clusters.keys()) this.set({ cluster }, by.get(cluster)?.agents ?? 0);
      });
    },
  });
  new client.Gauge({
    name: "switchyard_hub_streams",
    help: "gRPC streams open on the hub's port (agents' assignment streams and other calls), per thread serving their connections: an I/O thread's number, or main",
    labelNames: ["thread"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const [thread, n] of front?.openStreams() ?? []) this.set({ thread }, n);
      });
    },
  });
  new client.Counter({
    name: "switchyard_hub_connections_refused_total",
    help: "connections on the hub's port refused or cut off by its limits since the hub started, by reason: total-cap, source-cap, handshake-timeout, preface-timeout, idle-timeout, keepalive-timeout, write-buffer, and nghttp2's GOAWAYs: flood, continuation-flood, protocol-error (rapid reset, stream-id misuse, invalid frames), h2-error",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of front?.refusals?.() ?? []) this.inc({ reason }, n);
    },
  });
  new client.Gauge({
    name: "switchyard_hub_agent_nacks",
    help: "NACKs from the agents connected now, per home cluster",
    labelNames: ["cluster"],
    registers: [registry],
    collect() {
      each(this, () => {
        for (const [cluster, c] of assignments.countsByCluster()) this.set({ cluster }, c.nacks);
      });
    },
  });
  new client.Counter({
    name: "switchyard_hub_auth_refused_total",
    help: "agent streams refused since the hub started, by reason: token-unknown, token-wrong-secret, credential-bad-signature, not-admitted, … and throttled (over the failure limit: refused unchecked)",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of assignments.authGuard.totals) this.inc({ reason }, n);
    },
  });
  const convergence = new client.Histogram({
    name: "switchyard_hub_view_convergence_seconds",
    help: "from a view change in the hub to the last connected agent of the view acknowledging it",
    labelNames: ["view"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const lastConvergence = new client.Gauge({
    name: "switchyard_hub_view_convergence_last_seconds",
    help: "the latest view change's convergence time",
    labelNames: ["view"],
    registers: [registry],
  });
  const prev = assignments.convergence.onConverged;
  assignments.convergence.onConverged = (view, ms, agents) => {
    prev?.(view, ms, agents);
    convergence.observe({ view }, ms / 1000);
    lastConvergence.set({ view }, ms / 1000);
  };
  return registry;
}

/** GET /metrics, /healthz and /readyz on host:port (lib/metrics-server.ts); resolves once bound. */
export async function serveMetrics(
  registry: client.Registry,
  host: string,
  port: number,
  ready: () => Readiness = () => ({ ready: true }),
): Promise<http.Server> {
  return serveMetricsAndHealth(
    { metrics: async () => ({ contentType: registry.contentType, text: await registry.metrics() }), ready },
    host,
    port,
  );
}
