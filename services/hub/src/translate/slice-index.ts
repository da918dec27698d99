/**
 * Which EndpointSlices a change reaches (no I/O, no time): a Service's
 * slices, and in node-port views the slices with an endpoint on a Node or
 * at an address some Node has. A slice's key is cluster|namespace/name.
 */
import type { EndpointSlice } from "../model/types.ts";
import type { Reach } from "./backend-slices.ts";
import { serviceResourceName } from "./service-assignment.ts";

export function sliceKey(cluster: string, namespace: string, name: string): string {
  return `${cluster}|${namespace}/${name}`;
}

export function parseSliceKey(key: string): { cluster: string; namespace: string; name: string } {
  const [cluster, nn] = key.split("|") as [string, string];
  const [namespace, name] = nn.split("/") as [string, string];
  return { cluster, namespace, name };
}

export class SliceIndex {
  /** slice key → its service's resource name, and node key → slices with endpoints on it (node-port views) */
  private readonly serviceOfSlice = new Map<string, string>();
  private readonly slicesOnNode = new Map<string, Set<string>>();
  /** node-port views: cluster|address → slices with an endpoint at that address that names no node */
  private readonly slicesOnAddress = new Map<string, Set<string>>();
  /** node-port views: cluster|address → the Nodes that have it, and cluster|node → its addresses as indexed */
  private readonly nodesOfAddress = new Map<string, Set<string>>();
  private readonly addressesOfNode = new Map<string, readonly string[]>();
  /** service resource name → slice keys of its EndpointSlices */
  private readonly slicesOf = new Map<string, Set<string>>();

  private readonly reach: Reach;

  constructor(reach: Reach) {
    this.reach = reach;
  }

  clear(): void {
    this.slicesOf.clear();
    this.serviceOfSlice.clear();
    this.slicesOnNode.clear();
    this.slicesOnAddress.clear();
    this.nodesOfAddress.clear();
    this.addressesOfNode.clear();
  }

  /** The slice keys of a Service's EndpointSlices, by the Service's resource name. */
  slicesOfService(svc: string): Iterable<string> {
    return this.slicesOf.get(svc) ?? [];
  }

  addSlice(cluster: string, sl: EndpointSlice): void {
    const svc = serviceResourceName({ cluster, namespace: sl.namespace, name: sl.service });
    const key = sliceKey(cluster, sl.namespace, sl.name);
    const set = this.slicesOf.get(svc) ?? new Set<string>();
    set.add(key);
    this.slicesOf.set(svc, set);
    this.serviceOfSlice.set(key, svc);
    if (this.reach === "nodeport") {
      for (const e of sl.endpoints) {
        const address = e.addresses[0];
        if (!e.nodeName && address === undefined) continue;
        const index = e.nodeName ? this.slicesOnNode : this.slicesOnAddress;
        const nk = `${cluster}|${e.nodeName || address}`;
        const on = index.get(nk) ?? new Set<string>();
        on.add(key);
        index.set(nk, on);
      }
    }
  }

  removeSlice(key: string): void {
    const svc = this.serviceOfSlice.get(key);
    if (svc) {
      const set = this.slicesOf.get(svc);
      if (set?.delete(key) && set.size === 0) this.slicesOf.delete(svc);
      this.serviceOfSlice.delete(key);
    }
    if (this.reach === "nodeport") {
      for (const index of [this.slicesOnNode, this.slicesOnAddress])
        for (const [nk, on] of index) if (on.delete(key) && on.size === 0) index.delete(nk);
    }
  }

  /** Indexes a Node's addresses as the world holds them now; returns the addresses gained or lost. */
  setNode(cluster: string, name: string, after: readonly string[]): string[] {
    const key = `${cluster}|${name}`;
    const before = this.addressesOfNode.get(key) ?? [];
    const moved = [...before.filter((a) => !after.includes(a)), ...after.filter((a) => !before.includes(a))];
    for (const a of before) {
      const set = this.nodesOfAddress.get(`${cluster}|${a}`);
      if (set?.delete(name) && set.size === 0) this.nodesOfAddress.delete(`${cluster}|${a}`);
    }
    for (const a of after) {
      const set = this.nodesOfAddress.get(`${cluster}|${a}`) ?? new Set<string>();
      set.add(name);
      this.nodesOfAddress.set(`${cluster}|${a}`, set);
    }
    if (after.length > 0) this.addressesOfNode.set(key, [...after]);
    else this.addressesOfNode.delete(key);
    return moved;
  }

  /**
   * A Node changed (node-port views): indexes its addresses; returns the
   * slice keys it reaches — those with endpoints on it (its IP is their
   * backend) and those at an address it gained or lost (on the host network
   * or not).
   */
  nodeChanged(cluster: string, name: string, addresses: readonly string[]): Set<string> {
    const keys = new Set(this.slicesOnNode.get(`${cluster}|${name}`));
    for (const a of this.setNode(cluster, name, addresses))
      for (const key of this.slicesOnAddress.get(`${cluster}|${a}`) ?? []) keys.add(key);
    return keys;
  }

  /** A Node of the cluster that has this address, if any. */
  nodeOfAddress(cluster: string, address: string): string | undefined {
    const set = this.nodesOfAddress.get(`${cluster}|${address}`);
    return set === undefined ? undefined : set.values().next().value;
  }
}
