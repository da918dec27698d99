/**
 * Pure: the world (the clusters of one view) → the named, versioned
 * resources every agent of that view receives. Computed once per view and
 * shared by all its agents. A resource's version is a hash of its content,
 * so hub replicas agree on versions without talking to each other.
 */
import { createHash } from "node:crypto";
import {
  BackendSlice,
  NatMode,
  Protocol,
  type Resource,
  ServiceAssignment,
} from "@switchyard/proto/assignment";
import type { EndpointSlice, Service } from "../model/types.ts";
import type { ClusterState } from "../model/world.ts";

export type Diagnostic = { object: string; message: string };

export type ViewSnapshot = {
  /** hash over every resource name and version */
  version: string;
  resources: Map<string, Resource>;
  diagnostics: Diagnostic[];
};

const PROTO = { TCP: Protocol.PROTOCOL_TCP, UDP: Protocol.PROTOCOL_UDP } as const;

export function serviceResourceName(s: { cluster: string; namespace: string; name: string }): string {
  return `svc/${s.cluster}/${s.namespace}/${s.name}`;
}

export function sliceResourceName(s: EndpointSlice): string {
  return `eps/${s.cluster}/${s.namespace}/${s.name}`;
}

function hash(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

export function computeServiceAssignment(s: Service): ServiceAssignment {
  const frontends: ServiceAssignment["frontends"] = [];
  const add = (ip: string, mode: NatMode) => {
    for (const p of s.ports)
      frontends.push({ ip, port: p.port, protocol: PROTO[p.protocol], mode, portName: p.name });
  };
  for (const ip of s.clusterIPs) add(ip, NatMode.NAT_MODE_CLUSTER_IP);
  for (const ip of s.externalIPs) add(ip, NatMode.NAT_MODE_EXTERNAL_IP);
  if (s.type === "LoadBalancer") for (const ip of s.loadBalancerIPs) add(ip, NatMode.NAT_MODE_LOAD_BALANCER);
  if (s.type === "NodePort" || s.type === "LoadBalancer") {
    for (const p of s.ports) {
      if (p.nodePort)
        frontends.push({
          ip: "",
          port: p.nodePort,
          protocol: PROTO[p.protocol],
          mode: NatMode.NAT_MODE_NODE_PORT,
          portName: p.name,
        });
    }
  }
  frontends.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port || a.protocol - b.protocol));
  return {
    cluster: s.cluster,
    namespace: s.namespace,
    name: s.name,
    frontends,
    externalTrafficLocal: s.externalTrafficLocal,
    internalTrafficLocal: s.internalTrafficLocal,
    affinityTimeoutSeconds: s.affinityTimeoutSeconds,
  };
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
    }))
    .sort((a, b) => (a.addresses[0]! < b.addresses[0]! ? -1 : a.addresses[0]! > b.addresses[0]! ? 1 : 0));
  return {
    service: serviceResourceName({ cluster: slice.cluster, namespace: slice.namespace, name: slice.service }),
    ports,
    endpoints,
  };
}

/** Why a Service yields no resource, or undefined when it does. */
export function skipReason(s: Service): string | undefined {
  if (s.type === "ExternalName")
    return "ExternalName Services are DNS aliases; nothing to resolve at the socket";
  if (s.headless) return "headless Service (clusterIP: None): clients reach pods by DNS, nothing to resolve";
  if (s.ports.length === 0) return "Service has no TCP or UDP port";
  return undefined;
}

export function computeViewSnapshot(clusters: readonly ClusterState[]): ViewSnapshot {
  const resources = new Map<string, Resource>();
  const diagnostics: Diagnostic[] = [];
  const owners = new Map<string, string>();
  const ordered = [...clusters].sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const c of ordered) {
    const services = [...c.services.values()].sort((a, b) =>
      serviceResourceName(a) < serviceResourceName(b) ? -1 : 1,
    );
    const live = new Set<string>();
    for (const s of services) {
      const name = serviceResourceName(s);
      const why = skipReason(s);
      if (why) {
        diagnostics.push({ object: name, message: why });
        continue;
      }
      const body = computeServiceAssignment(s);
      // a frontend claimed by two Services is given to neither silently: first (by name) keeps it, the other is told
      body.frontends = body.frontends.filter((f) => {
        const k = `${f.ip}|${f.port}|${f.protocol}|${f.mode === NatMode.NAT_MODE_NODE_PORT ? "node" : ""}`;
        const owner = owners.get(k);
        if (owner && owner !== name) {
          diagnostics.push({
            object: name,
            message: `frontend ${f.ip}:${f.port} is already served by ${owner}; not assigned`,
          });
          return false;
        }
        owners.set(k, name);
        return true;
      });
      resources.set(name, {
        name,
        version: hash(ServiceAssignment.encode(body).finish()),
        body: { $case: "service", value: body },
      });
      live.add(name);
    }
    for (const slice of c.slices.values()) {
      const body = computeBackendSlice(slice);
      if (!live.has(body.service)) continue;
      const name = sliceResourceName(slice);
      resources.set(name, {
        name,
        version: hash(BackendSlice.encode(body).finish()),
        body: { $case: "backendSlice", value: body },
      });
    }
  }
  const names = [...resources.keys()].sort();
  const version = hash(names.map((n) => `${n}@${resources.get(n)!.version}`).join("\n"));
  return { version, resources, diagnostics };
}
