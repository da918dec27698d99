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
  /** sessionAffinity ClientIP timeout; 0 = no affinity */
  affinityTimeoutSeconds: number;
};

export type SlicePort = { name: string; port: number; protocol: Protocol };

export type SliceEndpoint = {
  addresses: string[];
  nodeName: string | undefined;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
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

export type Node = { cluster: string; name: string; addresses: string[] };

export type KubeKind = "Service" | "EndpointSlice" | "Node";

/** A reference to one object of a cluster. */
export type ObjectRef = { kind: KubeKind; namespace: string; name: string };

export function refKey(r: ObjectRef): string {
  return `${r.kind}/${r.namespace}/${r.name}`;
}
