/**
 * Pure: a cluster's policies of both kinds → their verdicts, decided in one
 * conflict space (translate/policy-conflicts.ts); for each
 * LocalRedirectPolicy winner its shared resource
 * (`lrp/<cluster>/<ns>/<name>`, LocalRedirectAssignment) and one resource
 * per node that has selected pods (`lrpb/<cluster>/<ns>/<name>/<node>`,
 * LocalBackends); a BalancingPolicy winner's resources come from
 * translate/balancing.ts (BalancingResources). docs/policies.md is the design.
 *
 * Incremental: a policy change (or a change of a Service a policy names)
 * decides every policy again (cheap: no Pod is looked at) and recomputes
 * only the resources of policies whose result changed; a Pod change
 * recomputes the resources of its node (old and new) for the winners of
 * its namespace; a Node change those of that node for winners with a
 * nodeSelector.
 */
import { createHash } from "node:crypto";
import {
  LocalBackends,
  type LocalPod,
  LocalRedirectAssignment,
  RedirectFrontendKind,
  type Resource,
} from "@switchyard/proto/assignment";
import type { LocalRedirectPolicy, Pod, PolicyVerdict } from "../model/types.ts";
import type { ClusterState, WorldChange } from "../model/world.ts";
import type { Reach } from "./backend-slices.ts";
import { BalancingResources, computeBalancingReach } from "./balancing.ts";
import { selectorMatches } from "./label-selector.ts";
import { decidePolicies, policyVerdict, showFrontend } from "./policy-conflicts.ts";
import { resolvePodPorts } from "./policy-ports.ts";

export function localRedirectResourceName(p: { cluster: string; namespace: string; name: string }): string {
  return `lrp/${p.cluster}/${p.namespace}/${p.name}`;
}

export function localBackendsResourceName(
  p: { cluster: string; namespace: string; name: string },
  node: string,
): string {
  return `lrpb/${p.cluster}/${p.namespace}/${p.name}/${node}`;
}

function hash(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

function nsName(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

type Winner = {
  policy: LocalRedirectPolicy;
  /** what its per-node resources depend on besides Pods and Nodes */
  backendKey: string;
};

/** put(name, resource | undefined): sets or removes one resource of the view */
export type Put = (name: string, r: Resource | undefined) => void;

export class LocalRedirectTranslator {
  private readonly cluster: string;
  private state: ClusterState | undefined;
  readonly verdicts = new Map<string, PolicyVerdict>();
  /** the verdicts on the BalancingPolicies, by namespace/name (decided with the LocalRedirectPolicies) */
  readonly balancingVerdicts = new Map<string, PolicyVerdict>();
  /** the BalancingPolicy winners' resources */
  private readonly balancing: BalancingResources;
  private readonly winners = new Map<string, Winner>();
  private readonly winnersByNs = new Map<string, Set<string>>();
  /** ns/name of Services some policy names (frontend or fallback): a change to one decides again */
  private referenced = new Set<string>();
  /** namespace → node → its Pods there (the objects the world holds now; arrays: a few per node, lighter than maps) */
  private readonly podsAt = new Map<string, Map<string, Pod[]>>();
  /** ns/name of a Pod → the node it was indexed on */
  private readonly podNode = new Map<string, string>();
  /** winner ns/name → nodes it has a per-node resource on */
  private readonly nodesOf = new Map<string, Set<string>>();

  /** verdicts only: Pods are not indexed, no per-node resource is computed */
  private readonly verdictsOnly: boolean;

  constructor(cluster: string, opts: { verdictsOnly?: boolean; reach?: Reach } = {}) {
    this.cluster = cluster;
    this.verdictsOnly = opts.verdictsOnly ?? false;
    this.balancing = new BalancingResources(opts.reach ?? "pod", selectorMatches, (ns) =>
      this.podsAt.get(ns),
    );
  }

  /** Everything again (the caller has dropped every resource). */
  rebuild(state: ClusterState | undefined, put: Put): void {
    this.state = state;
    this.verdicts.clear();
    this.balancingVerdicts.clear();
    this.balancing.clear();
    this.winners.clear();
    this.winnersByNs.clear();
    this.podsAt.clear();
    this.podNode.clear();
    this.nodesOf.clear();
    this.referenced = new Set();
    if (!state) return;
    if (!this.verdictsOnly) {
      // the world's own key strings: 100k Pods, no copies
      for (const [key, pod] of state.pods) this.indexPod(key, pod);
      for (const node of state.nodes.keys()) this.balancing.nodeAddressesChanged(state, node);
    }
    this.decide(put);
  }

  /** Applies changes of the cluster (the state already holds their new values). */
  update(state: ClusterState | undefined, changes: readonly WorldChange[], put: Put): void {
    this.state = state;
    let decide = false;
    const podMoves: Array<{ namespace: string; nodes: string[] }> = [];
    const podChanges: Array<{ namespace: string; key: string; pod: Pod | undefined }> = [];
    const nodes = new Set<string>();
    for (const ch of changes) {
      if (ch.cluster !== this.cluster) continue;
      if (ch.kind === "LocalRedirectPolicy" || ch.kind === "BalancingPolicy") decide = true;
      else if (ch.kind === "Service") decide ||= this.referenced.has(nsName(ch.namespace, ch.name));
      else if (ch.kind === "Pod" && !this.verdictsOnly) {
        const key = nsName(ch.namespace, ch.name);
        const before = this.podNode.get(key);
        this.unindexPod(key, ch.namespace);
        const pod = state?.pods.get(key);
        if (pod) this.indexPod(key, pod);
        podChanges.push({ namespace: ch.namespace, key, pod });
        const after = pod?.nodeName;
        const touched = [before, after].filter((n): n is string => n !== undefined);
        if (touched.length > 0) podMoves.push({ namespace: ch.namespace, nodes: [...new Set(touched)] });
      } else if (ch.kind === "Node") nodes.add(ch.name);
    }
    // a Node's addresses are in BalancingPolicies' verdicts (which nodes can be served) and backends
    const moved = new Set<string>();
    if (state?.balancing.size)
      for (const node of nodes) if (this.balancing.nodeAddressesChanged(state, node)) moved.add(node);
    if (moved.size > 0) decide = true;
    if (decide) this.decide(put);
    if (state && !this.verdictsOnly) {
      for (const c of podChanges) this.balancing.podChanged(state, c.namespace, c.key, c.pod, put);
      for (const node of nodes) this.balancing.nodeChanged(state, node, moved.has(node), put);
    }
    for (const m of podMoves)
      for (const w of this.winnersByNs.get(m.namespace) ?? [])
        for (const node of m.nodes) this.computeNode(this.winners.get(w)!, node, put);
    for (const node of nodes)
      for (const w of this.winners.values()) if (w.policy.nodeSelector) this.computeNode(w, node, put);
  }

  private indexPod(key: string, pod: Pod): void {
    if (pod.nodeName === undefined) return;
    let byNode = this.podsAt.get(pod.namespace);
    if (!byNode) {
      byNode = new Map();
      this.podsAt.set(pod.namespace, byNode);
    }
    const pods = byNode.get(pod.nodeName);
    if (pods) pods.push(pod);
    else byNode.set(pod.nodeName, [pod]);
    this.podNode.set(key, pod.nodeName);
  }

  private unindexPod(key: string, namespace: string): void {
    const node = this.podNode.get(key);
    if (node === undefined) return;
    this.podNode.delete(key);
    const byNode = this.podsAt.get(namespace);
    const pods = byNode?.get(node);
    if (!byNode || !pods) return;
    const name = key.slice(namespace.length + 1);
    const i = pods.findIndex((p) => p.name === name);
    if (i >= 0) pods.splice(i, 1);
    if (pods.length === 0) byNode.delete(node);
    if (byNode.size === 0) this.podsAt.delete(namespace);
  }

  /** Decides every policy, oldest first; puts the shared resources and recomputes the per-node ones that changed. */
  private decide(put: Put): void {
    const state = this.state;
    const { decisions, referenced } = decidePolicies(state);
    const before = new Map(this.winners);
    this.verdicts.clear();
    this.balancingVerdicts.clear();
    this.winners.clear();
    this.winnersByNs.clear();
    this.balancing.begin();
    const reach = new Map<string, string[]>();
    for (const d of decisions) {
      const item = d.item;
      const verdicts = item.kind === "LocalRedirectPolicy" ? this.verdicts : this.balancingVerdicts;
      if (!d.won) {
        verdicts.set(d.key, d.verdict);
        continue;
      }
      const { key, frontends } = d;
      if (item.kind === "BalancingPolicy") {
        const bp = item.p;
        const mode = bp.backend.kind === "addressEndpoint" ? "addressEndpoint" : bp.backend.redirectMode;
        const message = [
          `balances ${frontends.map(showFrontend).join(", ")} (${mode})`,
          ...d.notes,
          ...computeBalancingReach(bp, frontends, state!, reach),
        ].join("; ");
        verdicts.set(key, policyVerdict(item, "Accepted", message, undefined, frontends));
        if (!this.verdictsOnly) this.balancing.win(bp, frontends, state!, put);
        continue;
      }
      const p = item.p;
      const fe = p.frontend;
      const message = [`redirects ${frontends.map(showFrontend).join(", ")}`, ...d.notes].join("; ");
      verdicts.set(key, policyVerdict(item, "Accepted", message, undefined, frontends));
      const body: LocalRedirectAssignment = {
        cluster: p.cluster,
        namespace: p.namespace,
        name: p.name,
        frontends,
        qosPerSecond: p.qosPerSecond,
        skipRedirectFromBackend: p.skipRedirectFromBackend,
        frontendKind:
          fe.kind === "service"
            ? RedirectFrontendKind.REDIRECT_FRONTEND_KIND_SERVICE
            : RedirectFrontendKind.REDIRECT_FRONTEND_KIND_ADDRESS,
      };
      const name = localRedirectResourceName(p);
      put(name, {
        name,
        version: hash(LocalRedirectAssignment.encode(body).finish()),
        body: { $case: "localRedirect", value: body },
      });
      const w: Winner = { policy: p, backendKey: JSON.stringify([p.backend, p.nodeSelector ?? null]) };
      this.winners.set(key, w);
      let set = this.winnersByNs.get(p.namespace);
      if (!set) {
        set = new Set();
        this.winnersByNs.set(p.namespace, set);
      }
      set.add(key);
      const old = before.get(key);
      if (old?.backendKey !== w.backendKey) this.computeAllNodes(w, put);
    }
    this.referenced = referenced;
    this.balancing.end(put);
    // winners no more: their resources go
    for (const [key, old] of before) {
      if (this.winners.has(key)) continue;
      put(localRedirectResourceName(old.policy), undefined);
      for (const node of this.nodesOf.get(key) ?? [])
        put(localBackendsResourceName(old.policy, node), undefined);
      this.nodesOf.delete(key);
    }
  }

  /** Every per-node resource of a winner: on the nodes with a Pod it selects, and those it had. */
  private computeAllNodes(w: Winner, put: Put): void {
    const nodes = new Set(this.nodesOf.get(nsName(w.policy.namespace, w.policy.name)));
    const selector = w.policy.backend.selector;
    for (const [node, pods] of this.podsAt.get(w.policy.namespace) ?? [])
      for (const pod of pods)
        if (selectorMatches(selector, pod.labels)) {
          nodes.add(node);
          break;
        }
    for (const node of nodes) this.computeNode(w, node, put);
  }

  /** One winner's resource on one node: its selected Pods there, or none. */
  private computeNode(w: Winner, node: string, put: Put): void {
    const p = w.policy;
    const key = nsName(p.namespace, p.name);
    const name = localBackendsResourceName(p, node);
    const body = this.localBackends(p, node);
    let nodes = this.nodesOf.get(key);
    if (!body) {
      put(name, undefined);
      if (nodes?.delete(node) && nodes.size === 0) this.nodesOf.delete(key);
      return;
    }
    if (!nodes) {
      nodes = new Set();
      this.nodesOf.set(key, nodes);
    }
    nodes.add(node);
    put(name, {
      name,
      version: hash(LocalBackends.encode(body).finish()),
      body: { $case: "localBackends", value: body },
    });
  }

  /**
   * The selected Pods of a node (with an address), sorted by name, and the
   * toPorts as numbers. A toPort naming a container port takes the number of
   * the first Pod (by name) that has it; a Pod without that port at that
   * number is left out (it could not serve it).
   */
  private localBackends(p: LocalRedirectPolicy, node: string): LocalBackends | undefined {
    const state = this.state;
    if (!state) return undefined;
    if (p.nodeSelector && !selectorMatches(p.nodeSelector, state.nodes.get(node)?.labels ?? {}))
      return undefined;
    const onNode = this.podsAt.get(p.namespace)?.get(node);
    if (!onNode) return undefined;
    const pods: Pod[] = [];
    for (const pod of onNode)
      if (pod.ips.length > 0 && selectorMatches(p.backend.selector, pod.labels)) pods.push(pod);
    if (pods.length === 0) return undefined;
    pods.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const { ports, kept } = resolvePodPorts(p.backend.toPorts, pods);
    if (kept.length === 0 || ports.length === 0) return undefined;
    const out: LocalPod[] = kept.map((pod) => ({
      name: pod.name,
      addresses: [...pod.ips],
      ready: pod.ready,
      terminating: pod.terminating,
      uid: pod.uid,
    }));
    return { policy: localRedirectResourceName(p), ports, pods: out };
  }
}

/**
 * The verdicts on a cluster's policies, decided from scratch (for a cluster
 * no view is built for: status and `switchyard-hub policies` need them too).
 */
export function localRedirectVerdicts(state: ClusterState): Map<string, PolicyVerdict> {
  return policyVerdicts(state).localRedirect;
}

/** The verdicts on a cluster's policies of both kinds, keyed "Kind/namespace/name" (status/policy-status.ts PolicyJudge). */
export function clusterPolicyVerdicts(state: ClusterState): Map<string, PolicyVerdict> {
  const { localRedirect, balancing } = policyVerdicts(state);
  const out = new Map<string, PolicyVerdict>();
  for (const v of [...localRedirect.values(), ...balancing.values()])
    out.set(`${v.kind}/${v.namespace}/${v.name}`, v);
  return out;
}

/** The verdicts on a cluster's policies of both kinds, each by namespace/name, decided from scratch. */
export function policyVerdicts(state: ClusterState): {
  localRedirect: Map<string, PolicyVerdict>;
  balancing: Map<string, PolicyVerdict>;
} {
  const t = new LocalRedirectTranslator(state.name, { verdictsOnly: true });
  t.rebuild(state, () => {});
  return { localRedirect: t.verdicts, balancing: t.balancingVerdicts };
}
