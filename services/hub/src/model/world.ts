/**
 * The world: every cluster's Services, EndpointSlices, Nodes and MCS
 * objects, as the sources last saw them, and each cluster's health. Sources
 * write; translation reads. A change bumps the cluster's generation and
 * notifies listeners (the hub debounces them).
 */
import type {
  BalancingPolicy,
  EndpointSlice,
  KubeKind,
  LocalRedirectPolicy,
  Node,
  Pod,
  Service,
  ServiceExport,
  ServiceImport,
} from "./types.ts";

/**
 * A source that cannot reach its cluster keeps the last known objects and
 * is marked stale; after the grace period its backends are withdrawn from
 * the agents of *other* clusters (its own agents keep them: a cluster's
 * nodes still reach their own pods while the hub cannot see them).
 */
export type ClusterHealth = {
  stale: boolean;
  withdrawn: boolean;
  /** when it went stale (ms since epoch), for status and metrics */
  staleSince: number | undefined;
  reason: string | undefined;
};

/**
 * Whether the hub has the cluster's objects: "pending" — not listed since
 * the source started and nothing restored (views holding it are held back,
 * xds/view-hold.ts); "restored" — its last known state was loaded (from the
 * shared state, or kept across a source restart), not yet confirmed by a
 * listing; "synced" — every kind was listed once.
 */
export type ClusterSync = "pending" | "restored" | "synced";

export type ClusterState = {
  name: string;
  generation: number;
  sync: ClusterSync;
  services: Map<string, Service>;
  slices: Map<string, EndpointSlice>;
  nodes: Map<string, Node>;
  exports: Map<string, ServiceExport>;
  imports: Map<string, ServiceImport>;
  /** Pods (compact: only what policies need) */
  pods: Map<string, Pod>;
  localRedirects: Map<string, LocalRedirectPolicy>;
  balancing: Map<string, BalancingPolicy>;
  /**
   * node → the entry addresses its agent reported (NodeReport, from the
   * interface of the hub's entryInterface setting); read through
   * nodeEntryAddresses (translate/balancing.ts), where a Node's annotation wins
   */
  reportedEntryAddresses?: Map<string, readonly string[]>;
  health: ClusterHealth;
};

/** kind "Cluster": the cluster's health or sync changed (name is the cluster's). */
export type WorldChange = { cluster: string; kind: KubeKind | "Cluster"; namespace: string; name: string };

export type ModelObject =
  | { kind: "Service"; value: Service }
  | { kind: "EndpointSlice"; value: EndpointSlice }
  | { kind: "Node"; value: Node }
  | { kind: "ServiceExport"; value: ServiceExport }
  | { kind: "ServiceImport"; value: ServiceImport }
  | { kind: "Pod"; value: Pod }
  | { kind: "LocalRedirectPolicy"; value: LocalRedirectPolicy }
  | { kind: "BalancingPolicy"; value: BalancingPolicy };

function nsName(namespace: string, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

/** An object's key in its cluster's map of that kind ("namespace/name"; a Node's name). */
export function objectKey(o: ModelObject): string {
  return nsName("namespace" in o.value ? o.value.namespace : "", o.value.name);
}

/**
 * Every object of a cluster, kind by kind, for the last known state —
 * except Pods: they are the most numerous and the most changing objects,
 * and only policies' local backends read them; a restored cluster's
 * policies fall back to their Service until the first listing brings the
 * Pods back (docs/policies.md).
 */
export function objectsOf(c: ClusterState): ModelObject[] {
  return [
    ...[...c.services.values()].map((value) => ({ kind: "Service" as const, value })),
    ...[...c.slices.values()].map((value) => ({ kind: "EndpointSlice" as const, value })),
    ...[...c.nodes.values()].map((value) => ({ kind: "Node" as const, value })),
    ...[...c.exports.values()].map((value) => ({ kind: "ServiceExport" as const, value })),
    ...[...c.imports.values()].map((value) => ({ kind: "ServiceImport" as const, value })),
    ...[...c.localRedirects.values()].map((value) => ({ kind: "LocalRedirectPolicy" as const, value })),
    ...[...c.balancing.values()].map((value) => ({ kind: "BalancingPolicy" as const, value })),
  ];
}

export function mapOf(c: ClusterState, kind: KubeKind): Map<string, unknown> {
  switch (kind) {
    case "Service":
      return c.services;
    case "EndpointSlice":
      return c.slices;
    case "Node":
      return c.nodes;
    case "ServiceExport":
      return c.exports;
    case "ServiceImport":
      return c.imports;
    case "Pod":
      return c.pods;
    case "LocalRedirectPolicy":
      return c.localRedirects;
    case "BalancingPolicy":
      return c.balancing;
  }
}

export const HEALTHY: ClusterHealth = {
  stale: false,
  withdrawn: false,
  staleSince: undefined,
  reason: undefined,
};

export class World {
  readonly clusters = new Map<string, ClusterState>();
  private readonly listeners = new Set<(cluster: string, change: WorldChange | undefined) => void>();

  /** `change` is undefined when the whole cluster changed (added or removed). */
  onChange(fn: (cluster: string, change: WorldChange | undefined) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  cluster(name: string): ClusterState {
    let c = this.clusters.get(name);
    if (!c) {
      c = {
        name,
        generation: 0,
        sync: "pending",
        services: new Map(),
        slices: new Map(),
        nodes: new Map(),
        exports: new Map(),
        imports: new Map(),
        pods: new Map(),
        localRedirects: new Map(),
        balancing: new Map(),
        health: HEALTHY,
      };
      this.clusters.set(name, c);
    }
    return c;
  }

  removeCluster(name: string): void {
    if (this.clusters.delete(name)) this.changed(name, undefined);
  }

  /** Sets a cluster's health; listeners hear of it only when it differs. */
  setHealth(cluster: string, health: ClusterHealth): void {
    const c = this.cluster(cluster);
    const h = c.health;
    if (h.stale === health.stale && h.withdrawn === health.withdrawn && h.reason === health.reason) return;
    c.health = health;
    this.changed(cluster, { cluster, kind: "Cluster", namespace: "", name: cluster });
  }

  /** Sets whether the hub has a cluster's objects; listeners hear of it (views may be held or released). */
  setSync(cluster: string, sync: ClusterSync): void {
    const c = this.cluster(cluster);
    if (c.sync === sync) return;
    c.sync = sync;
    this.changed(cluster, { cluster, kind: "Cluster", namespace: "", name: cluster });
  }

  /**
   * What a node's agent reported as its entry addresses (empty: none); heard
   * by listeners as a change of that Node when it differs. Kept while the
   * hub runs (an agent that reconnects reports again), for known clusters only.
   */
  setReportedEntryAddresses(cluster: string, node: string, addresses: readonly string[]): void {
    const c = this.clusters.get(cluster);
    if (!c) return;
    if (!c.reportedEntryAddresses) c.reportedEntryAddresses = new Map();
    const map = c.reportedEntryAddresses;
    const before = map.get(node) ?? [];
    if (before.length === addresses.length && before.every((a, i) => a === addresses[i])) return;
    if (addresses.length > 0) map.set(node, [...addresses]);
    else map.delete(node);
    this.changed(cluster, { cluster, kind: "Node", namespace: "", name: node });
  }

  upsert(cluster: string, o: ModelObject): void {
    const c = this.cluster(cluster);
    const v = o.value;
    const namespace = "namespace" in v ? v.namespace : "";
    mapOf(c, o.kind).set(objectKey(o), v);
    this.changed(cluster, { cluster, kind: o.kind, namespace, name: v.name });
  }

  remove(cluster: string, kind: KubeKind, namespace: string, name: string): void {
    const c = this.cluster(cluster);
    const ns = kind === "Node" ? "" : namespace;
    if (mapOf(c, kind).delete(nsName(ns, name)))
      this.changed(cluster, { cluster, kind, namespace: ns, name });
  }

  private changed(cluster: string, change: WorldChange | undefined): void {
    const c = this.clusters.get(cluster);
    if (c) c.generation++;
    for (const fn of this.listeners) fn(cluster, change);
  }
}
