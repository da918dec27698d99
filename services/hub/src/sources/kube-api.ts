/**
 * What the hub asks of a member cluster's API server, as data: every kind
 * it lists and watches, and the status subresources it patches (its only
 * writes). KubeSource takes its watch paths from this table and its status
 * client takes the plural from it; the hub's ClusterRole
 * (deploy/rbac/hub.yaml, which deploy/kubernetes includes) is tested against
 * `computeHubClusterRoleRules()` (test/deploy/kubernetes-manifests.test.ts), so a
 * kind watched without RBAC, or RBAC granted for nothing, fails `npm test`.
 */
import type { KubeKind } from "../model/types.ts";
import { POLICY_API } from "./policy-objects.ts";

export type KubeResource = {
  kind: KubeKind;
  /** "" for the core group */
  group: string;
  version: string;
  /** the plural resource name, as RBAC names it */
  resource: string;
  /** a CRD that may not be installed in a member cluster (404 is not an outage) */
  optional: boolean;
  /** the hub writes this kind's status subresource (JSON merge patch) */
  statusPatched: boolean;
};

const MCS = { group: "multicluster.x-k8s.io", version: "v1alpha1" } as const;

export const WATCHED_RESOURCES: readonly KubeResource[] = [
  { kind: "Service", group: "", version: "v1", resource: "services", optional: false, statusPatched: false },
  {
    kind: "EndpointSlice",
    group: "discovery.k8s.io",
    version: "v1",
    resource: "endpointslices",
    optional: false,
    statusPatched: false,
  },
  { kind: "Node", group: "", version: "v1", resource: "nodes", optional: false, statusPatched: false },
  { kind: "ServiceExport", ...MCS, resource: "serviceexports", optional: true, statusPatched: false },
  { kind: "ServiceImport", ...MCS, resource: "serviceimports", optional: true, statusPatched: false },
  { kind: "Pod", group: "", version: "v1", resource: "pods", optional: false, statusPatched: false },
  {
    kind: "LocalRedirectPolicy",
    ...POLICY_API,
    resource: "localredirectpolicies",
    optional: true,
    statusPatched: true,
  },
  {
    kind: "BalancingPolicy",
    ...POLICY_API,
    resource: "balancingpolicies",
    optional: true,
    statusPatched: true,
  },
];

/** The verbs the informers use (list + watch); `get` is never asked for. */
export const READ_VERBS = ["list", "watch"] as const;

export function watchedResource(kind: KubeKind): KubeResource {
  const r = WATCHED_RESOURCES.find((x) => x.kind === kind);
  if (!r) throw new Error(`${kind} is not in WATCHED_RESOURCES (sources/kube-api.ts): add it there`);
  return r;
}

/** The cluster-wide collection path of a resource: /api/v1/services, /apis/GROUP/VERSION/RESOURCE. */
export function resourcePath(r: KubeResource): string {
  return r.group === "" ? `/api/${r.version}/${r.resource}` : `/apis/${r.group}/${r.version}/${r.resource}`;
}

export type PolicyRule = { apiGroups: string[]; resources: string[]; verbs: string[] };

/**
 * The rules of the hub's ClusterRole in a member cluster, exactly: list and
 * watch on every watched resource, patch on the status of the ones it
 * writes back. One rule per API group (resources sorted), then one per
 * group for the status subresources.
 */
export function computeHubClusterRoleRules(): PolicyRule[] {
  const byGroup = (pick: (r: KubeResource) => string | undefined, verbs: readonly string[]) => {
    const groups = new Map<string, string[]>();
    for (const r of WATCHED_RESOURCES) {
      const res = pick(r);
      if (res === undefined) continue;
      groups.set(r.group, [...(groups.get(r.group) ?? []), res]);
    }
    return [...groups].map(([g, resources]) => ({
      apiGroups: [g],
      resources: resources.sort(),
      verbs: [...verbs],
    }));
  };
  return [
    ...byGroup((r) => r.resource, READ_VERBS),
    ...byGroup((r) => (r.statusPatched ? `${r.resource}/status` : undefined), ["patch"]),
  ];
}
