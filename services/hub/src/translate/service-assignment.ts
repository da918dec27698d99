/**
 * Pure: one Service or MCS ServiceImport → its ServiceAssignment (the
 * frontends an agent resolves, the traffic policy, the backend tiers), and
 * why an object yields none.
 */
import {
  type BackendTier,
  NatMode,
  Protocol,
  type ServiceAssignment,
  TrafficDistribution,
} from "@switchyard/proto/assignment";
import type { Service, ServiceImport } from "../model/types.ts";

export const PROTO = { TCP: Protocol.PROTOCOL_TCP, UDP: Protocol.PROTOCOL_UDP } as const;

export function serviceResourceName(s: { cluster: string; namespace: string; name: string }): string {
  return `svc/${s.cluster}/${s.namespace}/${s.name}`;
}

export function importResourceName(s: { cluster: string; namespace: string; name: string }): string {
  return `mcs/${s.cluster}/${s.namespace}/${s.name}`;
}

const DISTRIBUTION = {
  "": TrafficDistribution.TRAFFIC_DISTRIBUTION_UNSPECIFIED,
  PreferSameZone: TrafficDistribution.TRAFFIC_DISTRIBUTION_PREFER_SAME_ZONE,
  PreferSameNode: TrafficDistribution.TRAFFIC_DISTRIBUTION_PREFER_SAME_NODE,
} as const;

function sortFrontends(frontends: ServiceAssignment["frontends"]): void {
  frontends.sort((a, b) => (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port || a.protocol - b.protocol));
}

/** Hub-wide settings of translation (the hub's config file). */
export type TranslateOptions = {
  /**
   * externalTrafficPolicy: Local stays strict for connects that start on an
   * agent's node, for every Service (else only for those annotated
   * switchyard.io/external-traffic-strict: "true")
   */
  externalTrafficStrict?: boolean;
};
export function computeServiceAssignment(
  s: Service,
  backendTiers: BackendTier[] = [],
  options: TranslateOptions = {},
): ServiceAssignment {
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
  sortFrontends(frontends);
  return {
    cluster: s.cluster,
    namespace: s.namespace,
    name: s.name,
    frontends,
    externalTrafficLocal: s.externalTrafficLocal,
    internalTrafficLocal: s.internalTrafficLocal,
    affinityTimeoutSeconds: s.affinityTimeoutSeconds,
    backendTiers,
    trafficDistribution: DISTRIBUTION[s.trafficDistribution],
    // only where it means something, so the hub setting changes no other Service's version
    externalTrafficStrict:
      s.externalTrafficLocal && (s.externalTrafficStrict || options.externalTrafficStrict === true),
  };
}

/** An MCS ServiceImport: its clusterset IPs resolve to the exporting clusters' backends. */
export function computeImportAssignment(imp: ServiceImport, backendTiers: BackendTier[]): ServiceAssignment {
  // a ClusterIP Service whose ClusterIPs are the clusterset IPs
  const asService: Service = {
    cluster: imp.cluster,
    namespace: imp.namespace,
    name: imp.name,
    type: "ClusterIP",
    clusterIPs: imp.ips,
    headless: imp.headless,
    ports: imp.ports,
    externalIPs: [],
    loadBalancerIPs: [],
    externalTrafficLocal: false,
    internalTrafficLocal: false,
    externalTrafficStrict: false,
    affinityTimeoutSeconds: imp.affinityTimeoutSeconds,
    global: false,
    trafficDistribution: "",
  };
  return computeServiceAssignment(asService, backendTiers);
}

/**
 * Local preference across clusters: the home cluster's resource alone
 * first (when it is one of them), then all the others; without a home
 * among them, all together.
 */
export function computeTiers(members: readonly string[], local: string | undefined): BackendTier[] {
  const sorted = [...members].sort();
  if (local === undefined || !sorted.includes(local)) return [{ services: sorted }];
  const rest = sorted.filter((m) => m !== local);
  return rest.length === 0 ? [{ services: [local] }] : [{ services: [local] }, { services: rest }];
}

/** Why a Service yields no resource, or undefined when it does. */
export function skipReason(s: Service): string | undefined {
  if (s.type === "ExternalName")
    return "ExternalName Services are DNS aliases; nothing to resolve at the socket";
  if (s.headless) return "headless Service (clusterIP: None): clients reach pods by DNS, nothing to resolve";
  if (s.ports.length === 0) return "Service has no TCP or UDP port";
  return undefined;
}

/** Why a ServiceImport yields no resource, or undefined when it does. */
export function importSkipReason(imp: ServiceImport): string | undefined {
  if (imp.headless) return "headless ServiceImport: clients reach pods by DNS, nothing to resolve";
  if (imp.ips.length === 0) return "ServiceImport has no clusterset IP (spec.ips) yet";
  if (imp.ports.length === 0) return "ServiceImport has no TCP or UDP port";
  return undefined;
}
