/**
 * Pure: what `switchyard-hub cluster join` creates in a member cluster (a
 * ServiceAccount, the hub's read-only ClusterRole — its rules from
 * computeHubClusterRoleRules(), the one source of truth that
 * deploy/rbac/hub.yaml is tested against — a binding, and a long-lived
 * token Secret), the scoped kubeconfig it writes for the hub, and the edit
 * of the hub's config file that registers or removes the cluster.
 */
import { err, ok, type Result } from "@switchyard/lib/errors";
import YAML from "yaml";
import { parseHubConfig } from "../config.ts";
import { computeHubClusterRoleRules } from "../sources/kube-api.ts";

/** Set on every object join creates; leave deletes only objects that carry it. */
export const MANAGED_BY = { "app.kubernetes.io/managed-by": "switchyard-hub" } as const;

export type MemberNames = { namespace: string; serviceAccount: string };

/** a DNS label: what the hub's config asks of a cluster name, and Kubernetes of these objects' names */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Checks a cluster name and the member-side names (DNS labels, as Kubernetes requires). */
export function checkMemberNames(cluster: string, n: MemberNames): string | undefined {
  if (!DNS_LABEL.test(cluster))
    return `cluster name "${cluster}" must be lower-case letters, digits and - (as in the hub's config)`;
  if (!DNS_LABEL.test(n.namespace)) return `--namespace "${n.namespace}" is not a valid namespace name`;
  if (!DNS_LABEL.test(n.serviceAccount))
    return `--service-account "${n.serviceAccount}" is not a valid ServiceAccount name`;
  return undefined;
}

export type MemberObjects = ReturnType<typeof computeMemberObjects>;

/** The objects, named after the ServiceAccount (ClusterRole and binding are cluster-wide). */
export function computeMemberObjects(cluster: string, n: MemberNames) {
  const labels = { ...MANAGED_BY, "switchyard.io/hub-cluster-name": cluster };
  const roleName = n.serviceAccount;
  const bindingName = `${n.serviceAccount}-${n.namespace}`;
  const secretName = `${n.serviceAccount}-token`;
  return {
    namespace: { apiVersion: "v1", kind: "Namespace", metadata: { name: n.namespace, labels } },
    serviceAccount: {
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: n.serviceAccount, namespace: n.namespace, labels },
    },
    clusterRole: {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: roleName, labels },
      rules: computeHubClusterRoleRules(),
    },
    clusterRoleBinding: {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: bindingName, labels },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: roleName },
      subjects: [{ kind: "ServiceAccount", name: n.serviceAccount, namespace: n.namespace }],
    },
    tokenSecret: {
      apiVersion: "v1",
      kind: "Secret",
      type: "kubernetes.io/service-account-token",
      metadata: {
        name: secretName,
        namespace: n.namespace,
        labels,
        annotations: { "kubernetes.io/service-account.name": n.serviceAccount },
      },
    },
  };
}

/** The hub's kubeconfig for one member: its API server and CA, the ServiceAccount's token, nothing else. */
export function computeScopedKubeconfig(o: {
  cluster: string;
  server: string;
  /** base64 PEM, or undefined to skip TLS verification (as the admin kubeconfig did) */
  caData: string | undefined;
  token: string;
  user: string;
}): string {
  const cluster: Record<string, unknown> = { server: o.server };
  if (o.caData) cluster["certificate-authority-data"] = o.caData;
  else cluster["insecure-skip-tls-verify"] = true;
  return YAML.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: o.cluster, cluster }],
    users: [{ name: o.user, user: { token: o.token } }],
    contexts: [{ name: o.cluster, context: { cluster: o.cluster, user: o.user } }],
    "current-context": o.cluster,
  });
}

/**
 * The hub's config file with cluster NAME reading KUBECONFIG (added, or its
 * kubeconfig path replaced), comments kept. Refused when NAME is there with
 * another kind of source (a directory, inCluster), or the result is not a
 * valid config.
 */
export function computeConfigWithCluster(
  text: string,
  file: string,
  name: string,
  kubeconfig: string,
): Result<string> {
  const doc = YAML.parseDocument(text || "clusters: []\n");
  if (doc.errors.length > 0) return err(`${file}: ${doc.errors[0]!.message}`);
  if (!doc.has("clusters")) doc.set("clusters", doc.createNode([]));
  const clusters = doc.get("clusters");
  if (!YAML.isSeq(clusters)) return err(`${file}: clusters must be a list`);
  const at = clusters.items.findIndex((c) => YAML.isMap(c) && c.get("name") === name);
  if (at >= 0) {
    const c = clusters.items[at] as YAML.YAMLMap;
    if (!c.has("kubeconfig"))
      return err(
        `${file}: cluster ${name} is there with another source (not a kubeconfig); pick another name`,
      );
    c.set("kubeconfig", kubeconfig);
  } else clusters.add(doc.createNode({ name, kubeconfig }));
  const out = doc.toString();
  const check = parseHubConfig(out, file);
  if (!check.ok) return err(check.error);
  return ok(out);
}

/** The config file without cluster NAME (and NAME out of other clusters' imports), and the kubeconfig it named. */
export function computeConfigWithoutCluster(
  text: string,
  file: string,
  name: string,
): Result<{ text: string; kubeconfig: string | undefined; found: boolean }> {
  const doc = YAML.parseDocument(text);
  if (doc.errors.length > 0) return err(`${file}: ${doc.errors[0]!.message}`);
  const clusters = doc.get("clusters");
  if (!YAML.isSeq(clusters)) return ok({ text, kubeconfig: undefined, found: false });
  const at = clusters.items.findIndex((c) => YAML.isMap(c) && c.get("name") === name);
  if (at < 0) return ok({ text, kubeconfig: undefined, found: false });
  const kc = (clusters.items[at] as YAML.YAMLMap).get("kubeconfig");
  clusters.delete(at);
  for (const c of clusters.items) {
    const imports = YAML.isMap(c) ? c.get("imports") : undefined;
    if (YAML.isSeq(imports)) {
      const i = imports.items.findIndex((x) => (YAML.isScalar(x) ? x.value : x) === name);
      if (i >= 0) imports.delete(i);
    }
  }
  const out = doc.toString();
  const check = parseHubConfig(out, file);
  if (!check.ok) return err(check.error);
  return ok({ text: out, kubeconfig: typeof kc === "string" ? kc : undefined, found: true });
}
