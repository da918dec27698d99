/**
 * The member cluster's side of `cluster join` / `cluster leave`, through
 * @kubernetes/client-node with the admin kubeconfig: create (or bring up to
 * date) the objects of member-objects.ts, wait for the token controller to
 * fill the token Secret; delete what join made.
 */
import fs from "node:fs";
import * as k8s from "@kubernetes/client-node";
import { SwitchyardError } from "@switchyard/lib/errors";
import { MANAGED_BY, type MemberObjects } from "./member-objects.ts";

export type AdminCluster = {
  kc: k8s.KubeConfig;
  server: string;
  /** base64 PEM of the API server's CA, or undefined when the admin kubeconfig skips TLS verification */
  caData: string | undefined;
};

/** Loads the admin kubeconfig (its current context) and the API server's address and CA. */
export function loadAdminKubeconfig(file: string): AdminCluster {
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromFile(file);
  } catch (e) {
    throw new SwitchyardError("invalid_argument", `--kubeconfig ${file}: ${(e as Error).message}`);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster)
    throw new SwitchyardError("invalid_argument", `--kubeconfig ${file}: no current context with a cluster`);
  let caData = cluster.caData;
  if (!caData && cluster.caFile) {
    try {
      caData = fs.readFileSync(cluster.caFile).toString("base64");
    } catch (e) {
      throw new SwitchyardError(
        "invalid_argument",
        `--kubeconfig ${file}: its CA ${cluster.caFile}: ${(e as Error).message}`,
      );
    }
  }
  if (!caData && !cluster.skipTLSVerify)
    // the system's roots verified the server: the hub's kubeconfig must say which CA, and none is named
    throw new SwitchyardError(
      "invalid_argument",
      `--kubeconfig ${file}: cluster ${cluster.name} names no certificate-authority; the hub's kubeconfig needs one`,
    );
  return { kc, server: cluster.server, caData };
}

const codeOf = (e: unknown) => (e instanceof k8s.ApiException ? e.code : undefined);

function apiError(what: string, server: string, e: unknown): SwitchyardError {
  const code = codeOf(e);
  const body = e instanceof k8s.ApiException ? (e.body as { message?: string } | string) : undefined;
  const msg = typeof body === "object" && body?.message ? body.message : (e as Error).message;
  const hint =
    code === 401 || code === 403 ? " (the --kubeconfig must be a cluster admin's: it creates RBAC)" : "";
  return new SwitchyardError(
    "unavailable",
    `${what} in ${server}: ${code ?? ""} ${msg}${hint}`.replace(/ {2,}/g, " "),
  );
}

/** Creates an object, or on AlreadyExists runs `update` (which may replace it). */
async function ensure(
  what: string,
  server: string,
  create: () => Promise<unknown>,
  update?: () => Promise<unknown>,
): Promise<"created" | "kept"> {
  try {
    await create();
    return "created";
  } catch (e) {
    if (codeOf(e) !== 409) throw apiError(`cannot create ${what}`, server, e);
    try {
      await update?.();
    } catch (e2) {
      throw apiError(`cannot update ${what}`, server, e2);
    }
    return "kept";
  }
}

/** Creates the objects and returns the ServiceAccount's token once the token controller has filled it. */
export async function applyMemberObjects(
  admin: AdminCluster,
  o: MemberObjects,
  opts: { timeoutMs: number; log: (line: string) => void },
): Promise<string> {
  const core = admin.kc.makeApiClient(k8s.CoreV1Api);
  const rbac = admin.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const ns = o.namespace.metadata.name;
  const s = admin.server;
  const r1 = await ensure(`namespace ${ns}`, s, () => core.createNamespace({ body: o.namespace }));
  const r2 = await ensure(`serviceaccount ${ns}/${o.serviceAccount.metadata.name}`, s, () =>
    core.createNamespacedServiceAccount({ namespace: ns, body: o.serviceAccount }),
  );
  // the role's rules follow this hub's version: replaced when it exists
  const r3 = await ensure(
    `clusterrole ${o.clusterRole.metadata.name}`,
    s,
    () => rbac.createClusterRole({ body: o.clusterRole }),
    () => rbac.replaceClusterRole({ name: o.clusterRole.metadata.name, body: o.clusterRole }),
  );
  const r4 = await ensure(
    `clusterrolebinding ${o.clusterRoleBinding.metadata.name}`,
    s,
    () => rbac.createClusterRoleBinding({ body: o.clusterRoleBinding }),
    () =>
      rbac.replaceClusterRoleBinding({
        name: o.clusterRoleBinding.metadata.name,
        body: o.clusterRoleBinding,
      }),
  );
  const r5 = await ensure(`secret ${ns}/${o.tokenSecret.metadata.name}`, s, () =>
    core.createNamespacedSecret({ namespace: ns, body: o.tokenSecret }),
  );
  opts.log(
    `namespace ${ns} ${r1}, serviceaccount ${o.serviceAccount.metadata.name} ${r2}, clusterrole ${o.clusterRole.metadata.name} ${r3 === "kept" ? "updated" : r3}, clusterrolebinding ${o.clusterRoleBinding.metadata.name} ${r4 === "kept" ? "updated" : r4}, secret ${o.tokenSecret.metadata.name} ${r5}`,
  );
  // the token controller fills data.token shortly after the Secret exists
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    let secret: k8s.V1Secret;
    try {
      secret = await core.readNamespacedSecret({ namespace: ns, name: o.tokenSecret.metadata.name });
    } catch (e) {
      throw apiError(`cannot read secret ${ns}/${o.tokenSecret.metadata.name}`, s, e);
    }
    if (secret.type !== "kubernetes.io/service-account-token")
      throw new SwitchyardError(
        "invalid_object",
        `secret ${ns}/${o.tokenSecret.metadata.name} in ${s} exists with type ${secret.type ?? "Opaque"}, not a service-account token: remove it or choose another --service-account`,
      );
    const token = secret.data?.["token"];
    if (token) return Buffer.from(token, "base64").toString("utf8");
    if (Date.now() > deadline)
      throw new SwitchyardError(
        "unavailable",
        `the token of secret ${ns}/${o.tokenSecret.metadata.name} in ${s} was not filled within ${opts.timeoutMs / 1000}s: is the cluster's token controller (kube-controller-manager) running?`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Deletes what join made: the token Secret, the binding, the ServiceAccount,
 * the ClusterRole and the Namespace, each only when it carries join's label
 * (what was there before join, e.g. from deploy/rbac/hub.yaml, is left).
 * Returns what it deleted.
 */
export async function deleteMemberObjects(admin: AdminCluster, o: MemberObjects): Promise<string[]> {
  const core = admin.kc.makeApiClient(k8s.CoreV1Api);
  const rbac = admin.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const ns = o.namespace.metadata.name;
  const deleted: string[] = [];
  const ours = (labels: Record<string, string> | undefined) =>
    Object.entries(MANAGED_BY).every(([k, v]) => labels?.[k] === v);
  const secret = o.tokenSecret.metadata.name;
  const sa = o.serviceAccount.metadata.name;
  const role = o.clusterRole.metadata.name;
  const binding = o.clusterRoleBinding.metadata.name;
  // the token first (it stops working at once), the namespace last
  const steps: Array<[string, () => Promise<{ metadata?: k8s.V1ObjectMeta }>, () => Promise<unknown>]> = [
    [
      `secret ${ns}/${secret}`,
      () => core.readNamespacedSecret({ namespace: ns, name: secret }),
      () => core.deleteNamespacedSecret({ namespace: ns, name: secret }),
    ],
    [
      `clusterrolebinding ${binding}`,
      () => rbac.readClusterRoleBinding({ name: binding }),
      () => rbac.deleteClusterRoleBinding({ name: binding }),
    ],
    [
      `serviceaccount ${ns}/${sa}`,
      () => core.readNamespacedServiceAccount({ namespace: ns, name: sa }),
      () => core.deleteNamespacedServiceAccount({ namespace: ns, name: sa }),
    ],
    [
      `clusterrole ${role}`,
      () => rbac.readClusterRole({ name: role }),
      () => rbac.deleteClusterRole({ name: role }),
    ],
    [`namespace ${ns}`, () => core.readNamespace({ name: ns }), () => core.deleteNamespace({ name: ns })],
  ];
  for (const [what, read, del] of steps) {
    try {
      if (!ours((await read()).metadata?.labels)) continue;
      await del();
      deleted.push(what);
    } catch (e) {
      if (codeOf(e) !== 404) throw apiError(`cannot delete ${what}`, admin.server, e);
    }
  }
  return deleted;
}
