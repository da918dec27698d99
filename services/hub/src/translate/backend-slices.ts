/**
 * Pure: one EndpointSlice → the BackendSlice agents receive, in a pod view
 * (pod IPs directly) or a node-port view (each node's IP and the Service's
 * NodePorts, endpoints on node addresses directly).
 */
import { ipFamily } from "@switchyard/lib/ip";
import type { BackendSlice } from "@switchyard/proto/assignment";
import type { EndpointSlice, Node, Service } from "../model/types.ts";
import { PROTO, serviceResourceName } from "./service-assignment.ts";

export function sliceResourceName(s: EndpointSlice): string {
  return `eps/${s.cluster}/${s.namespace}/${s.name}`;
}

export function computeBackendSlice(slice: EndpointSlice): BackendSlice {
  const ports = slice.ports
    .map((p) => ({ name: p.name, port: p.port, protocol: PROTO[p.protocol] }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.protocol - b.protocol));
  const endpoints = slice.endpoints
    .map((e) => ({
      addresses: [...e.addresses],
      nodeName: e.nodeName ?? "",
      ready: e.ready,
      serving: e.serving,
      terminating: e.terminating,
      zone: e.zone ?? "",
      forZones: e.forZones ? [...e.forZones].sort() : [],
    }))
    .sort((a, b) => (a.addresses[0]! < b.addresses[0]! ? -1 : a.addresses[0]! > b.addresses[0]! ? 1 : 0));
  return {
    service: serviceResourceName({ cluster: slice.cluster, namespace: slice.namespace, name: slice.service }),
    ports,
    endpoints,
  };
}

/**
 * How the agents of a view reach backends: "pod" — pod IPs directly (cluster
 * nodes, hosts on a routable pod network); "nodeport" — the node IP of the
 * pod's node and the Service's NodePort (KubeEdge edge nodes without CNI,
 * hosts that cannot route to pods).
 */
export type Reach = "pod" | "nodeport";

/** The resource of a slice's endpoints on node addresses, in a node-port view (beside the slice's own). */
export function hostNetworkSliceName(sliceResource: string): string {
  return `${sliceResource}/host-network`;
}

/** A slice as a node-port agent sees it. */
export type NodePortSlices = {
  /** endpoints on pod IPs: one backend per node that hosts any, its node IP and the Service's NodePorts */
  viaNodePorts: BackendSlice;
  /** endpoints on node addresses (host network, the API servers): their own address and port, as in a pod view */
  hostNetwork: BackendSlice;
  /** endpoints on pod IPs of a Service without NodePort: unreachable for node-port agents */
  unreachable: number;
};

/**
 * A slice as a node-port agent sees it. An endpoint is on the host network
 * when its address is an address of its Node — or, when it names no node
 * (the API servers' endpoints of default/kubernetes), of any Node of the
 * cluster (`nodeOfAddress`); such an endpoint is reached directly, whether
 * or not the Service has a NodePort. The others go through their node's
 * NodePorts, one backend per node: ready when the node has a ready
 * endpoint, which is what a NodePort of an externalTrafficPolicy: Local
 * Service needs (a node without one drops the connection).
 */
export function computeNodePortSlices(
  slice: EndpointSlice,
  svc: Service,
  nodes: ReadonlyMap<string, Node>,
  nodeOfAddress: (address: string) => string | undefined,
): NodePortSlices {
  const family = slice.addressType === "IPv6" ? 6 : 4;
  const ports = svc.ports
    .filter((p) => p.nodePort !== undefined)
    .map((p) => ({ name: p.name, port: p.nodePort!, protocol: PROTO[p.protocol] }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.protocol - b.protocol));
  const byNode = new Map<string, BackendSlice["endpoints"][number]>();
  const direct: EndpointSlice["endpoints"] = [];
  let unreachable = 0;
  for (const e of slice.endpoints) {
    const address = e.addresses[0];
    if (address === undefined) continue;
    const onNodeAddress = e.nodeName
      ? (nodes.get(e.nodeName)?.addresses.includes(address) ?? false)
      : nodeOfAddress(address) !== undefined;
    if (onNodeAddress) {
      direct.push(e);
      continue;
    }
    const node = e.nodeName ? nodes.get(e.nodeName) : undefined;
    const ip = node?.addresses.find((a) => ipFamily(a) === family);
    if (!node || !ip) continue;
    if (ports.length === 0) {
      unreachable++;
      continue;
    }
    const cur = byNode.get(ip);
    byNode.set(ip, {
      addresses: [ip],
      nodeName: node.name,
      ready: (cur?.ready ?? false) || e.ready,
      serving: (cur?.serving ?? false) || e.serving,
      terminating: (cur?.terminating ?? true) && e.terminating,
      zone: node.zone ?? "",
      forZones: [],
    });
  }
  const endpoints = [...byNode.values()].sort((a, b) => (a.addresses[0]! < b.addresses[0]! ? -1 : 1));
  return {
    viaNodePorts: { service: serviceResourceName(svc), ports, endpoints },
    hostNetwork: computeBackendSlice({ ...slice, endpoints: direct }),
    unreachable,
  };
}
