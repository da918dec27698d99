/**
 * Pure: a cluster's BalancingPolicies that won their frontends (decided
 * together with the LocalRedirectPolicies, oldest first, in
 * translate/local-redirect.ts) → one shared resource per winner
 * (`bp/<cluster>/<ns>/<name>`, BalancingAssignment) with its backends
 * addressed the way the view's agents reach them, and, for a policy with a
 * nodeSelector, one marker per selected node (`bpn/<cluster>/<ns>/<name>/<node>`,
 * BalancingNode). docs/policies.md is the design.
 *
 * Backend addressing (redirectMode):
 * - podEndpoint: each selected pod's IPs at the toPort;
 * - hostPort: the pod's node's address (Node.addresses) at the toPort, one
 *   backend per node, ready when any of its pods is;
 * - nodeProxy: the pod's node's entry address (`nodeEntryAddresses`) at the
 *   toPort (the agent on that node DNATs entry:port to its pods);
 * - addressEndpoint: the listed addresses at the toPort.
 * Agents that reach backends through node ports (view reach "nodeport":
 * hosts, edges) cannot reach pod IPs: a podEndpoint policy is not sent to
 * their view (its frontends stay as the Service has them there).
 *
 * Incremental: a winner's resource is computed again when the policy or its
 * frontends change, when a Pod of its namespace that it selects (or did)
 * changes, and (hostPort, nodeProxy) when a Node changes.
 */
import { createHash } from "node:crypto";
import { ipFamily } from "@switchyard/lib/ip";
import {
  BalancingAssignment,
  BalancingMode,
  BalancingNode,
  type Endpoint,
  type RedirectFrontend,
  RedirectFrontendKind,
  type Resource,
} from "@switchyard/proto/assignment";
import type { BalancingPolicy, LabelSelector, Pod } from "../model/types.ts";
import type { ClusterState } from "../model/world.ts";
import type { Reach } from "./backend-slices.ts";
import { computeEntryPorts, NodeEntries } from "./node-entry.ts";
import { resolvePodPorts } from "./policy-ports.ts";

/** put(name, resource | undefined): sets or removes one resource of the view */
type Put = (name: string, r: Resource | undefined) => void;

const MODE = {
  podEndpoint: BalancingMode.BALANCING_MODE_POD_ENDPOINT,
  hostPort: BalancingMode.BALANCING_MODE_HOST_PORT,
  nodeProxy: BalancingMode.BALANCING_MODE_NODE_PROXY,
} as const;

type BalancingMode_ = "podEndpoint" | "hostPort" | "nodeProxy" | "addressEndpoint";

/** At most this many node names in a status message (then "and N more"). */
const SHOW_NODES = 3;

export function balancingResourceName(p: { cluster: string; namespace: string; name: string }): string {
  return `bp/${p.cluster}/${p.namespace}/${p.name}`;
}

export function balancingNodeResourceName(
  p: { cluster: string; namespace: string; name: string },
  node: string,
): string {
  return `bpn/${p.cluster}/${p.namespace}/${p.name}/${node}`;
}

/**
 * A node's entry addresses (v4 and/or v6): where nodeProxy backends on it
 * are reached. Its annotation switchyard.io/entry-addresses
 * (Node.entryAddresses) when set — the operator's word wins — else what
 * its agent reports from the interface the hub's entryInterface setting
 * names (ClusterState.reportedEntryAddresses). The one place every caller asks.
 */
export function nodeEntryAddresses(cluster: ClusterState, node: string): readonly string[] {
  return cluster.nodes.get(node)?.entryAddresses ?? cluster.reportedEntryAddresses?.get(node) ?? [];
}

/** The mode's name as a policy spells it. */
export function balancingModeOf(p: BalancingPolicy): BalancingMode_ {
  return p.backend.kind === "addressEndpoint" ? "addressEndpoint" : p.backend.redirectMode;
}

function hash(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

function familiesOf(frontends: readonly RedirectFrontend[]): Array<4 | 6> {
  const out = new Set<4 | 6>();
  for (const f of frontends) out.add(ipFamily(f.ip) === 6 ? 6 : 4);
  return [...out].sort();
}

function listNodes(names: readonly string[]): string {
  const shown = names.slice(0, SHOW_NODES).join(", ");
  return names.length > SHOW_NODES ? `${shown} and ${names.length - SHOW_NODES} more` : shown;
}

/**
 * What the policy's status says about which nodes can be served, from the
 * cluster's Nodes only (no Pod is looked at): hostPort needs the pod's node
 * to have an address of each frontend family, nodeProxy an entry address;
 * podEndpoint cannot serve agents that reach backends through node ports.
 * It depends only on the mode, the frontends' families and the Nodes: `memo`
 * (one per decision pass over the policies) keeps it per mode and families,
 * so a pass walks the Nodes once per kind, not once per policy.
 */
export function computeBalancingReach(
  p: BalancingPolicy,
  frontends: readonly RedirectFrontend[],
  state: ClusterState,
  memo?: Map<string, string[]>,
): string[] {
  const mode = balancingModeOf(p);
  if (mode === "addressEndpoint") return [];
  if (mode === "podEndpoint")
    return [
      "agents that reach backends through node ports (hosts, edges) cannot reach pod IPs: they are not served (a Service frontend keeps the Service's own backends there); use redirectMode hostPort or nodeProxy to serve them",
    ];
  const memoKey = `${mode}|${familiesOf(frontends).join(",")}`;
  const known = memo?.get(memoKey);
  if (known) return known;
  const notes: string[] = [];
  const nodes = [...state.nodes.keys()].sort();
  for (const family of familiesOf(frontends)) {
    const lacking = nodes.filter((n) => {
      const addrs =
        mode === "hostPort" ? (state.nodes.get(n)?.addresses ?? []) : nodeEntryAddresses(state, n);
      return !addrs.some((a) => ipFamily(a) === family);
    });
    if (lacking.length === 0) continue;
    const what =
      mode === "hostPort"
        ? `no IPv${family} address`
        : `no IPv${family} entry address (annotation switchyard.io/entry-addresses)`;
    notes.push(
      `${lacking.length} of ${nodes.length} nodes cannot be served over IPv${family}, they have ${what}: ${listNodes(lacking)}; pods there are left out`,
    );
  }
  if (notes.length === 0 && nodes.length > 0)
    notes.push(`all ${nodes.length} nodes can be served, by every agent (node-port agents too)`);
  memo?.set(memoKey, notes);
  return notes;
}

/** Whether labels satisfy a label selector (matchLabels and matchExpressions, all of them). */
export type SelectorMatch = (sel: LabelSelector, labels: Readonly<Record<string, string>>) => boolean;

type Winner = {
  policy: BalancingPolicy;
  frontends: RedirectFrontend[];
  /** what its resources depend on besides Pods and Nodes */
  key: string;
};

/**
 * The resources of the winning BalancingPolicies of one view's home
 * cluster. The deciding translator (LocalRedirectTranslator) calls `begin`,
 * `win` for each winner in age order, then `end`; Pod and Node changes come
 * through `podChanged` and `nodeChanged`.
 */
export class BalancingResources {
  private readonly reach: Reach;
  private readonly matches: SelectorMatch;
  /** namespace → node → its Pods (the deciding translator's index) */
  private readonly podsIn: (namespace: string) => ReadonlyMap<string, readonly Pod[]> | undefined;
  private winners = new Map<string, Winner>();
  private before = new Map<string, Winner>();
  /** winner ns/name → the Pods (ns/name) its resource was computed from */
  private readonly selected = new Map<string, Set<string>>();
  /** winner ns/name → the nodes it has a bpn marker on */
  private readonly marked = new Map<string, Set<string>>();
  /** node → its addresses and entry addresses as last seen: a Node change that keeps them rebuilds nothing */
  private readonly nodeAddresses = new Map<string, string>();
  /** the nodeProxy winners' entry ports: entry/<cluster>/<node> (translate/node-entry.ts) */
  private readonly entries = new NodeEntries();

  constructor(
    reach: Reach,
    matches: SelectorMatch,
    podsIn: (namespace: string) => ReadonlyMap<string, readonly Pod[]> | undefined,
  ) {
    this.reach = reach;
    this.matches = matches;
    this.podsIn = podsIn;
  }

  clear(): void {
    this.winners.clear();
    this.before.clear();
    this.selected.clear();
    this.marked.clear();
    this.nodeAddresses.clear();
    this.entries.clear();
  }

  begin(): void {
    this.before = this.winners;
    this.winners = new Map();
  }

  /** A winner (in age order): its resources again when it is new or changed. */
  win(p: BalancingPolicy, frontends: RedirectFrontend[], state: ClusterState, put: Put): void {
    const k = `${p.namespace}/${p.name}`;
    const w: Winner = {
      policy: p,
      frontends,
      key: JSON.stringify([p.frontend, p.backend, p.nodeSelector ?? null, frontends]),
    };
    this.winners.set(k, w);
    if (this.before.get(k)?.key === w.key) return;
    this.compute(w, state, put);
    this.markAll(w, state, put);
  }

  /** Winners no more: their resources go. */
  end(put: Put): void {
    for (const [k, old] of this.before) {
      if (this.winners.has(k)) continue;
      put(balancingResourceName(old.policy), undefined);
      this.entries.set(k, old.policy.cluster, undefined, put);
      this.selected.delete(k);
      for (const node of this.marked.get(k) ?? [])
        put(balancingNodeResourceName(old.policy, node), undefined);
      this.marked.delete(k);
    }
    this.before = new Map();
  }

  /** A Pod of `namespace` changed (`pod`: its new state, undefined when gone). */
  podChanged(state: ClusterState, namespace: string, podKey: string, pod: Pod | undefined, put: Put): void {
    for (const [k, w] of this.winners) {
      if (w.policy.namespace !== namespace || w.policy.backend.kind !== "serviceEndpoint") continue;
      const had = this.selected.get(k)?.has(podKey) ?? false;
      if (had || (pod && this.matches(w.policy.backend.selector, pod.labels))) this.compute(w, state, put);
    }
  }

  /**
   * Whether a Node's addresses or entry addresses differ from when last
   * asked (a Node's status update mostly changes neither: then no verdict or
   * node-addressed backend is computed again).
   */
  nodeAddressesChanged(state: ClusterState, node: string): boolean {
    const n = state.nodes.get(node);
    const now = n ? JSON.stringify([n.addresses, nodeEntryAddresses(state, node)]) : "";
    const before = this.nodeAddresses.get(node) ?? "";
    if (now === "") this.nodeAddresses.delete(node);
    else this.nodeAddresses.set(node, now);
    return now !== before;
  }

  /** A Node changed (`addressesChanged`: see nodeAddressesChanged): node-addressed backends, and the node's markers. */
  nodeChanged(state: ClusterState, node: string, addressesChanged: boolean, put: Put): void {
    for (const w of this.winners.values()) {
      const mode = balancingModeOf(w.policy);
      if (addressesChanged && (mode === "hostPort" || mode === "nodeProxy")) this.compute(w, state, put);
      if (w.policy.nodeSelector) this.mark(w, state, node, put);
    }
  }

  private markAll(w: Winner, state: ClusterState, put: Put): void {
    const k = `${w.policy.namespace}/${w.policy.name}`;
    // no nodeSelector and no marker left from an earlier one: nothing to walk the Nodes for
    if (w.policy.nodeSelector === undefined && !this.marked.has(k)) return;
    const nodes = new Set([...(this.marked.get(k) ?? []), ...state.nodes.keys()]);
    for (const node of nodes) this.mark(w, state, node, put);
  }

  private mark(w: Winner, state: ClusterState, node: string, put: Put): void {
    const k = `${w.policy.namespace}/${w.policy.name}`;
    const name = balancingNodeResourceName(w.policy, node);
    const sel = w.policy.nodeSelector;
    const on = sel !== undefined && this.matches(sel, state.nodes.get(node)?.labels ?? {});
    let set = this.marked.get(k);
    if (!on) {
      if (set?.delete(node)) {
        put(name, undefined);
        if (set.size === 0) this.marked.delete(k);
      }
      return;
    }
    if (!set) {
      set = new Set();
      this.marked.set(k, set);
    }
    set.add(node);
    const body: BalancingNode = { policy: balancingResourceName(w.policy) };
    put(name, {
      name,
      version: hash(BalancingNode.encode(body).finish()),
      body: { $case: "balancingNode", value: body },
    });
  }

  private compute(w: Winner, state: ClusterState, put: Put): void {
    const p = w.policy;
    const k = `${p.namespace}/${p.name}`;
    const name = balancingResourceName(p);
    const mode = balancingModeOf(p);
    const pods = this.selectedPods(p);
    this.selected.set(k, new Set(pods.map((pod) => `${pod.namespace}/${pod.name}`)));
    if (mode === "podEndpoint" && this.reach === "nodeport") {
      put(name, undefined);
      this.entries.set(k, p.cluster, undefined, put);
      return;
    }
    const body = computeBalancingAssignment(p, w.frontends, state, pods);
    this.entries.set(k, p.cluster, computeEntryPorts(p, body, state, pods), put);
    put(name, {
      name,
      version: hash(BalancingAssignment.encode(body).finish()),
      body: { $case: "balancing", value: body },
    });
  }

  private selectedPods(p: BalancingPolicy): Pod[] {
    const be = p.backend;
    if (be.kind !== "serviceEndpoint") return [];
    const out: Pod[] = [];
    for (const pods of this.podsIn(p.namespace)?.values() ?? [])
      for (const pod of pods) if (pod.ips.length > 0 && this.matches(be.selector, pod.labels)) out.push(pod);
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

/**
 * One winner's BalancingAssignment: its frontends, the toPorts as numbers
 * (a named container port takes the number of the first selected pod, by
 * name, that has it; a pod without it at that number is left out) and its
 * backends addressed by mode. `pods`: the selected pods with an address,
 * sorted by name.
 */
export function computeBalancingAssignment(
  p: BalancingPolicy,
  frontends: RedirectFrontend[],
  state: ClusterState,
  pods: readonly Pod[],
): BalancingAssignment {
  const be = p.backend;
  const { ports, kept } = resolvePodPorts(be.toPorts, pods);
  const endpoints: Endpoint[] = [];
  const endpoint = (
    address: string,
    nodeName: string,
    ready: boolean,
    serving: boolean,
    terminating: boolean,
  ) =>
    endpoints.push({
      addresses: [address],
      nodeName,
      ready,
      serving,
      terminating,
      zone: state.nodes.get(nodeName)?.zone ?? "",
      forZones: [],
    });
  if (be.kind === "addressEndpoint") {
    for (const a of be.addresses) endpoint(a, "", true, true, false);
  } else if (be.redirectMode === "podEndpoint") {
    for (const pod of kept)
      for (const ip of pod.ips)
        endpoint(ip, pod.nodeName ?? "", pod.ready && !pod.terminating, pod.ready, pod.terminating);
  } else {
    // one backend per node address: ready when any of its pods is, terminating when all are
    const byAddress = new Map<
      string,
      { node: string; ready: boolean; serving: boolean; terminating: boolean }
    >();
    const families = familiesOf(frontends);
    for (const pod of kept) {
      const node = pod.nodeName;
      if (node === undefined) continue;
      const addrs =
        be.redirectMode === "hostPort"
          ? (state.nodes.get(node)?.addresses ?? [])
          : nodeEntryAddresses(state, node);
      for (const family of families) {
        const a = addrs.find((x) => ipFamily(x) === family);
        if (a === undefined) continue;
        const cur = byAddress.get(a);
        byAddress.set(a, {
          node,
          ready: (cur?.ready ?? false) || (pod.ready && !pod.terminating),
          serving: (cur?.serving ?? false) || pod.ready,
          terminating: (cur?.terminating ?? true) && pod.terminating,
        });
      }
    }
    for (const [a, e] of byAddress) endpoint(a, e.node, e.ready, e.serving, e.terminating);
  }
  endpoints.sort((a, b) =>
    a.addresses[0]! < b.addresses[0]!
      ? -1
      : a.addresses[0]! > b.addresses[0]!
        ? 1
        : a.nodeName < b.nodeName
          ? -1
          : 1,
  );
  return {
    cluster: p.cluster,
    namespace: p.namespace,
    name: p.name,
    frontends,
    frontendKind:
      p.frontend.kind === "service"
        ? RedirectFrontendKind.REDIRECT_FRONTEND_KIND_SERVICE
        : RedirectFrontendKind.REDIRECT_FRONTEND_KIND_ADDRESS,
    mode:
      be.kind === "addressEndpoint" ? BalancingMode.BALANCING_MODE_ADDRESS_ENDPOINT : MODE[be.redirectMode],
    ports,
    endpoints,
    selectedNodesOnly: p.nodeSelector !== undefined,
  };
}
