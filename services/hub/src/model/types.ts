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

export type Node = {
  cluster: string;
  name: string;
  addresses: string[];
  zone: string | undefined;
  /** the Node's labels, for a policy's nodeSelector (undefined where a source does not keep them) */
  labels?: Record<string, string>;
  /**
   * The node's entry addresses (v4 and/or v6) for BalancingPolicy nodeProxy
   * backends, from its annotation switchyard.io/entry-addresses; read them
   * through `nodeEntryAddresses` (translate/balancing.ts), which also knows
   * other sources. Absent = none.
   */
  entryAddresses?: string[];
};

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

/**
 * A Pod, only what policies need (kept compact: a cluster with 100k Pods
 * must not double the hub's memory).
 */
export type Pod = {
  cluster: string;
  namespace: string;
  name: string;
  uid: string;
  labels: Record<string, string>;
  /** spec.nodeName; undefined until scheduled */
  nodeName: string | undefined;
  /** status.podIPs (v4 and/or v6) */
  ips: string[];
  /** condition Ready is True */
  ready: boolean;
  /** metadata.deletionTimestamp is set */
  terminating: boolean;
  /** containers' named ports: name → number and protocol (a toPort may name one) */
  containerPorts: Array<{ name: string; port: number; protocol: Protocol }>;
};

/** A Kubernetes label selector (matchLabels and matchExpressions), validated. */
export type LabelSelector = {
  matchLabels: Record<string, string>;
  matchExpressions: Array<{
    key: string;
    operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    values: string[];
  }>;
};

/** A port of a policy: by name and/or number (a Service frontend's port may be named either way). */
export type PolicyPort = { name: string; port: number; protocol: Protocol };

/**
 * LocalRedirectPolicy (switchyard.io/v1alpha1), validated: docs/policies.md.
 * `createdAt` and the name order decide conflicts (oldest wins).
 */
export type LocalRedirectPolicy = {
  cluster: string;
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  createdAt: string;
  frontend:
    | {
        kind: "service";
        /** a Service of the policy's namespace */
        service: string;
        /** its ports by name or number; empty = every port */
        ports: Array<{ name: string } | { port: number }>;
      }
    | {
        kind: "address";
        ip: string;
        ports: PolicyPort[];
        /** a Service of the policy's namespace whose port of the same name takes what is not redirected */
        fallbackService: string | undefined;
      };
  backend: {
    selector: LabelSelector;
    /** paired with the frontend's ports by name; `port` 0 with `targetName`: the pods' container port of that name */
    toPorts: Array<{ name: string; port: number; targetName: string | undefined; protocol: Protocol }>;
  };
  skipRedirectFromBackend: boolean;
  /** redirects per second per node per frontend; 0 = no limit */
  qosPerSecond: number;
  /** which nodes apply it (their labels); undefined = every node */
  nodeSelector: LabelSelector | undefined;
};

/** How a BalancingPolicy's serviceEndpoint backends are addressed (docs/policies.md). */
export type BalancingMode = "podEndpoint" | "hostPort" | "nodeProxy";

/**
 * BalancingPolicy (switchyard.io/v1alpha1), validated: docs/policies.md.
 * Its frontend is written as a LocalRedirectPolicy's (without fallbackService).
 */
export type BalancingPolicy = {
  cluster: string;
  namespace: string;
  name: string;
  uid: string;
  generation: number;
  createdAt: string;
  frontend: LocalRedirectPolicy["frontend"];
  backend:
    | {
        kind: "serviceEndpoint";
        selector: LabelSelector;
        redirectMode: BalancingMode;
        /** as LocalRedirectPolicy's; a named container port (targetName) only with podEndpoint */
        toPorts: LocalRedirectPolicy["backend"]["toPorts"];
      }
    | {
        kind: "addressEndpoint";
        /** 1..256 IPs, v4 and/or v6 */
        addresses: string[];
        toPorts: LocalRedirectPolicy["backend"]["toPorts"];
      };
  /** which nodes' agents apply it (their labels); undefined = every node */
  nodeSelector: LabelSelector | undefined;
};

/** The policy kinds (their verdicts share one conflict space: docs/policies.md). */
export type PolicyKind = "LocalRedirectPolicy" | "BalancingPolicy";

/**
 * What the translator decided about one policy (translate/local-redirect.ts),
 * for its status (the Accepted condition, observedGeneration) and
 * `switchyard-hub policies`. Only an "Accepted" policy is sent to agents.
 */
export type PolicyVerdict = {
  kind: PolicyKind;
  cluster: string;
  namespace: string;
  name: string;
  /** the generation decided on (status.observedGeneration) */
  generation: number;
  reason: "Accepted" | "Conflict" | "ServiceNotFound" | "InvalidSpec";
  /** what was decided and, when not accepted, what to fix */
  message: string;
  /** Conflict: the policy that holds the frontend, "namespace/name" (prefixed by its kind when it is of the other kind) */
  winner: string | undefined;
  /** the resolved frontends, "ip:port/PROTO" (what it takes, or would take) */
  frontends: string[];
};

export type KubeKind =
  | "Service"
  | "EndpointSlice"
  | "Node"
  | "ServiceExport"
  | "ServiceImport"
  | "Pod"
  | "LocalRedirectPolicy"
  | "BalancingPolicy";

/** A reference to one object of a cluster. */
export type ObjectRef = { kind: KubeKind; namespace: string; name: string };

export function refKey(r: ObjectRef): string {
  return `${r.kind}/${r.namespace}/${r.name}`;
}
