/**
 * The hub's model of what clusters hold: only the fields translation needs,
 * validated at the boundary (sources/kube-objects.ts).
 */

export type Protocol = "TCP" | "UDP";

export type ServicePort = {
  name: string;
  port: number;
  protocol: Protocol;
  nodePort: number | undefined;
};

export type ServiceType = "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName";

export type Service = {
  cluster: string;
  namespace: string;
  name: string;
  type: ServiceType;
  /** empty for headless Services */
  clusterIPs: string[];
  headless: boolean;
  ports: ServicePort[];
  externalIPs: string[];
  loadBalancerIPs: string[];
  externalTrafficLocal: boolean;
  internalTrafficLocal: boolean;
  /**
   * externalTrafficPolicy Local applies to connects that start on the agent's
   * node too (annotation switchyard.io/external-traffic-strict: "true");
   * without it they follow the internal policy, as kube-proxy does
   */
  externalTrafficStrict: boolean;
  /** sessionAffinity ClientIP timeout; 0 = no affinity */
  affinityTimeoutSeconds: number;
  /** opted in to cross-cluster merging (annotation switchyard.io/global: "true") */
  global: boolean;
  /** spec.trafficDistribution: prefer endpoints close to the client */
  trafficDistribution: TrafficDistribution;
};

/** "" = any endpoint; PreferClose is PreferSameZone's older name. */
export type TrafficDistribution = "" | "PreferSameZone" | "PreferSameNode";

export type SlicePort = { name: string; port: number; protocol: Protocol };

export type SliceEndpoint = {
  addresses: string[];
  nodeName: string | undefined;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** topology zone of the endpoint */
  zone: string | undefined;
  /** hints.forZones: the zones this endpoint should serve (topology-aware routing) */
  forZones: string[] | undefined;
};

export type EndpointSlice = {
  cluster: string;
  namespace: string;
  name: string;
  /** kubernetes.io/service-name label */
  service: string;
  addressType: "IPv4" | "IPv6";
  ports: SlicePort[];
  endpoints: SliceEndpoint[];
};

export type Node = { cluster: string; name: string; addresses: string[]; zone: string | undefined };

/** MCS API (multicluster.x-k8s.io): this cluster's Service of the same name is exported to the clusterset. */
export type ServiceExport = { cluster: string; namespace: string; name: string };

/** MCS API: the clusterset-wide Service as one cluster sees it (its clusterset IPs and ports). */
export type ServiceImport = {
  cluster: string;
  namespace: string;
  name: string;
  /** empty for type Headless */
  ips: string[];
  headless: boolean;
  ports: ServicePort[];
  affinityTimeoutSeconds: number;
};

export type KubeKind = "Service" | "EndpointSlice" | "Node" | "ServiceExport" | "ServiceImport";

/** A reference to one object of a cluster. */
export type ObjectRef = { kind: KubeKind; namespace: string; name: string };

export function refKey(r: ObjectRef): string {
  return `${r.kind}/${r.namespace}/${r.name}`;
}
