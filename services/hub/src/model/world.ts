/**
 * The world: every cluster's Services, EndpointSlices and Nodes, as the
 * sources last saw them. Sources write; translation reads. A change bumps the
 * cluster's generation and notifies listeners (the hub debounces them).
 */
import type { EndpointSlice, KubeKind, Node, Service } from "./types.ts";

export type ClusterState = {
  name: string;
  generation: number;
  services: Map<string, Service>;
  slices: Map<string, EndpointSlice>;
  nodes: Map<string, Node>;
};

export type WorldChange = { cluster: string; kind: KubeKind; namespace: string; name: string };

export type ModelObject =
  | { kind: "Service"; value: Service }
  | { kind: "EndpointSlice"; value: EndpointSlice }
  | { kind: "Node"; value: Node };

function nsName(namespace: string, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

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
      c = { name, generation: 0, services: new Map(), slices: new Map(), nodes: new Map() };
      this.clusters.set(name, c);
    }
    return c;
  }

  removeCluster(name: string): void {
    if (this.clusters.delete(name)) this.changed(name, undefined);
  }

  upsert(cluster: string, o: ModelObject): void {
    const c = this.cluster(cluster);
    switch (o.kind) {
      case "Service":
        c.services.set(nsName(o.value.namespace, o.value.name), o.value);
        break;
      case "EndpointSlice":
        c.slices.set(nsName(o.value.namespace, o.value.name), o.value);
        break;
      case "Node":
        c.nodes.set(o.value.name, o.value);
        break;
    }
    const v = o.value;
    this.changed(cluster, {
      cluster,
      kind: o.kind,
      namespace: "namespace" in v ? v.namespace : "",
      name: v.name,
    });
  }

  remove(cluster: string, kind: KubeKind, namespace: string, name: string): void {
    const c = this.cluster(cluster);
    const key = nsName(namespace, name);
    const had =
      kind === "Service"
        ? c.services.delete(key)
        : kind === "EndpointSlice"
          ? c.slices.delete(key)
          : c.nodes.delete(name);
    if (had) this.changed(cluster, { cluster, kind, namespace: kind === "Node" ? "" : namespace, name });
  }

  private changed(cluster: string, change: WorldChange | undefined): void {
    const c = this.clusters.get(cluster);
    if (c) c.generation++;
    for (const fn of this.listeners) fn(cluster, change);
  }
}
