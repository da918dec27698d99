/**
 * Pure: the world (the clusters of one view) → the named, versioned
 * resources every agent of that view receives. Computed once per view and
 * shared by all its agents. A resource's version is a hash of its content,
 * so hub replicas agree on versions without talking to each other.
 */
import { createHash } from "node:crypto";
import { ipFamily } from "@switchyard/lib/ip";
import { formatDigest, resourceDigest } from "@switchyard/lib/view-digest";
import {
  BackendSlice,
  type BackendTier,
  NatMode,
  Protocol,
  type Resource,
  ServiceAssignment,
  TrafficDistribution,
} from "@switchyard/proto/assignment";
import type { EndpointSlice, Node, PolicyVerdict, Service, ServiceImport } from "../model/types.ts";
import type { ClusterState, WorldChange } from "../model/world.ts";
import { LocalRedirectTranslator, overlayNodeOf } from "./local-redirect.ts";

export type Diagnostic = { object: string; message: string };

export type ViewSnapshot = {
  /** hash over every resource name and version (with `overlay`: of both maps) */
  version: string;
  /** the resources every agent of the view shares */
  resources: Map<string, Resource>;
  /** one node's snapshot: that node's own resources (lrpb/…/<node>), sent to it after the shared ones */
  overlay?: ReadonlyMap<string, Resource>;
  /** one node's snapshot: the view's shared snapshot it extends */
  base?: ViewSnapshot;
  readonly diagnostics: Diagnostic[];
  /** why a Service got no resource or lost frontends (empty when fine) */
  diagnosticsOf(name: string): string[];
};

const PROTO = { TCP: Protocol.PROTOCOL_TCP, UDP: Protocol.PROTOCOL_UDP } as const;

export function serviceResourceName(s: { cluster: string; namespace: string; name: string }): string {
  return `svc/${s.cluster}/${s.namespace}/${s.name}`;
}

export function importResourceName(s: { cluster: string; namespace: string; name: string }): string {
  return `mcs/${s.cluster}/${s.namespace}/${s.name}`;
}

export function sliceResourceName(s: EndpointSlice): string {
  return `eps/${s.cluster}/${s.namespace}/${s.name}`;
}

function hash(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
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
      zone: e.zone ?? "",
      forZones: e.forZones ? [...e.forZones].sort() : [],
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
  const t = new ViewTranslator();
  t.rebuild(clusters);
  return t.snapshot();
}

export type ObjectChange = WorldChange;

function frontendKey(f: { ip: string; port: number; protocol: number; mode: NatMode }): string {
  return `${f.ip}|${f.port}|${f.protocol}|${f.mode === NatMode.NAT_MODE_NODE_PORT ? "node" : ""}`;
}

function nsName(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * Incremental translation of one view (pure: no I/O, no time). A change to
 * one object recomputes only the resources it affects, so one endpoint
 * change costs one slice, not the world. A frontend claimed by several
 * Services goes to the first by resource name; the others are told, and get
 * it when the owner lets go.
 */
/**
 * How the agents of a view reach backends: "pod" — pod IPs directly (cluster
 * nodes, hosts on a routable pod network); "nodeport" — the node IP of the
 * pod's node and the Service's NodePort (KubeEdge edge nodes without CNI,
 * hosts that cannot route to pods).
 */
export type Reach = "pod" | "nodeport";

/** The resource of a slice's endpoints on node addresses, in a node-port view (beside the slice's own). */
export function hostNetworkSliceName(sliceResource: string): string {
  return `${sliceResource}/host-network`;
}

/** A slice as a node-port agent sees it. */
export type NodePortSlices = {
  /** endpoints on pod IPs: one backend per node that hosts any, its node IP and the Service's NodePorts */
  viaNodePorts: BackendSlice;
  /** endpoints on node addresses (host network, the API servers): their own address and port, as in a pod view */
  hostNetwork: BackendSlice;
  /** endpoints on pod IPs of a Service without NodePort: unreachable for node-port agents */
  unreachable: number;
};

/**
 * A slice as a node-port agent sees it. An endpoint is on the host network
 * when its address is an address of its Node — or, when it names no node
 * (the API servers' endpoints of default/kubernetes), of any Node of the
 * cluster (`nodeOfAddress`); such an endpoint is reached directly, whether
 * or not the Service has a NodePort. The others go through their node's
 * NodePorts, one backend per node: ready when the node has a ready
 * endpoint, which is what a NodePort of an externalTrafficPolicy: Local
 * Service needs (a node without one drops the connection).
 */
export function computeNodePortSlices(
  slice: EndpointSlice,
  svc: Service,
  nodes: ReadonlyMap<string, Node>,
  nodeOfAddress: (address: string) => string | undefined,
): NodePortSlices {
  const family = slice.addressType === "IPv6" ? 6 : 4;
  const ports = svc.ports
    .filter((p) => p.nodePort !== undefined)
    .map((p) => ({ name: p.name, port: p.nodePort!, protocol: PROTO[p.protocol] }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.protocol - b.protocol));
  const byNode = new Map<string, BackendSlice["endpoints"][number]>();
  const direct: EndpointSlice["endpoints"] = [];
  let unreachable = 0;
  for (const e of slice.endpoints) {
    const address = e.addresses[0];
    if (address === undefined) continue;
    const onNodeAddress = e.nodeName
      ? (nodes.get(e.nodeName)?.addresses.includes(address) ?? false)
      : nodeOfAddress(address) !== undefined;
    if (onNodeAddress) {
      direct.push(e);
      continue;
    }
    const node = e.nodeName ? nodes.get(e.nodeName) : undefined;
    const ip = node?.addresses.find((a) => ipFamily(a) === family);
    if (!node || !ip) continue;
    if (ports.length === 0) {
      unreachable++;
      continue;
    }
    const cur = byNode.get(ip);
    byNode.set(ip, {
      addresses: [ip],
      nodeName: node.name,
      ready: (cur?.ready ?? false) || e.ready,
      serving: (cur?.serving ?? false) || e.serving,
      terminating: (cur?.terminating ?? true) && e.terminating,
      zone: node.zone ?? "",
      forZones: [],
    });
  }
  const endpoints = [...byNode.values()].sort((a, b) => (a.addresses[0]! < b.addresses[0]! ? -1 : 1));
  return {
    viaNodePorts: { service: serviceResourceName(svc), ports, endpoints },
    hostNetwork: computeBackendSlice({ ...slice, endpoints: direct }),
    unreachable,
  };
}

export class ViewTranslator {
  private readonly home: string | undefined;
  private readonly reach: Reach;
  /** settings; a change takes a rebuild */
  options: TranslateOptions;
  constructor(homeCluster?: string, reach: Reach = "pod", options: TranslateOptions = {}) {
    this.home = homeCluster;
    this.reach = reach;
    this.options = options;
    this.redirects =
      homeCluster === undefined ? undefined : new LocalRedirectTranslator(homeCluster, { reach });
  }
  /** slice key → its service's resource name, and node key → slices with endpoints on it (node-port views) */
  private readonly serviceOfSlice = new Map<string, string>();
  private readonly slicesOnNode = new Map<string, Set<string>>();
  /** node-port views: cluster|address → slices with an endpoint at that address that names no node */
  private readonly slicesOnAddress = new Map<string, Set<string>>();
  /** node-port views: cluster|address → the Nodes that have it, and cluster|node → its addresses as indexed */
  private readonly nodesOfAddress = new Map<string, Set<string>>();
  private readonly addressesOfNode = new Map<string, readonly string[]>();
  readonly resources = new Map<string, Resource>();
  private readonly diagnostics = new Map<string, string[]>();
  /** frontend key → services claiming it */
  private readonly claims = new Map<string, Set<string>>();
  /** service resource name → the frontend keys it claims */
  private readonly claimedBy = new Map<string, string[]>();
  /** service resource name → slice keys (cluster|ns/name) of its EndpointSlices */
  private readonly slicesOf = new Map<string, Set<string>>();
  private states = new Map<string, ClusterState>();
  /** XOR of per-resource digests: an order-free version of the whole view, O(1) to update */
  private acc = 0n;
  /** bumped on every change to the resource map (its order too: a delete and re-add moves an entry) */
  private mutations = 0;
  private lastSnapshot: { acc: bigint; mutations: number; snap: ViewSnapshot } | undefined;
  /** the home cluster's LocalRedirectPolicies and BalancingPolicies (only a view's home cluster's policies apply) */
  private readonly redirects: LocalRedirectTranslator | undefined;
  /**
   * Per-node resources (lrpb/…/<node>): node → its resources, their XOR
   * digest, a mutation count and its last snapshot. A node's agents get the
   * shared map and its overlay; the others never hear of it.
   */
  private readonly overlays = new Map<
    string,
    {
      resources: Map<string, Resource>;
      acc: bigint;
      mutations: number;
      last: { base: ViewSnapshot; mutations: number; snap: ViewSnapshot } | undefined;
    }
  >();

  rebuild(clusters: readonly ClusterState[]): Set<string> {
    const before = new Set(this.resources.keys());
    for (const o of this.overlays.values()) for (const n of o.resources.keys()) before.add(n);
    this.overlays.clear();
    this.resources.clear();
    this.mutations++;
    this.diagnostics.clear();
    this.claims.clear();
    this.claimedBy.clear();
    this.slicesOf.clear();
    this.serviceOfSlice.clear();
    this.slicesOnNode.clear();
    this.slicesOnAddress.clear();
    this.nodesOfAddress.clear();
    this.addressesOfNode.clear();
    this.acc = 0n;
    this.states = new Map(clusters.map((c) => [c.name, c]));
    const changed = new Set<string>(before);
    for (const c of clusters) {
      for (const sl of c.slices.values()) this.indexSlice(c.name, sl);
      if (this.reach === "nodeport") for (const n of c.nodes.keys()) this.indexNode(c.name, n);
    }
    // claims first, so owners are known before any service is computed
    for (const c of clusters) {
      for (const s of c.services.values()) this.setClaims(s);
      for (const imp of c.imports.values()) this.setImportClaims(imp);
    }
    for (const c of clusters) {
      for (const s of c.services.values())
        for (const n of this.computeService(c.name, s.namespace, s.name)) changed.add(n);
      for (const imp of c.imports.values())
        for (const n of this.computeImport(c.name, imp.namespace, imp.name)) changed.add(n);
    }
    if (this.redirects)
      this.redirects.rebuild(this.states.get(this.home!), (n, r) => this.put(n, r, changed));
    return changed;
  }

  /** Applies object changes (the world already holds their new state); returns changed resource names. */
  update(clusters: readonly ClusterState[], changes: readonly ObjectChange[]): Set<string> {
    this.states = new Map(clusters.map((c) => [c.name, c]));
    const changed = new Set<string>();
    const services = new Set<string>();
    /** ns/name of Services, exports and imports that changed: their cross-cluster groups are recomputed */
    const groups = new Set<string>();
    for (const ch of changes) {
      if (ch.kind === "Service" || ch.kind === "ServiceImport") {
        services.add(`${ch.kind === "Service" ? "svc" : "mcs"}/${ch.cluster}/${ch.namespace}/${ch.name}`);
        groups.add(nsName(ch.namespace, ch.name));
      } else if (ch.kind === "ServiceExport") {
        groups.add(nsName(ch.namespace, ch.name));
      } else if (ch.kind === "Cluster") {
        // stale/withdrawn: every slice of the cluster, and its services' notes
        const c = this.states.get(ch.cluster);
        for (const sl of c?.slices.values() ?? [])
          for (const n of this.computeSlice(ch.cluster, sl.namespace, sl.name)) changed.add(n);
        for (const sv of c?.services.values() ?? [])
          for (const n of this.computeService(ch.cluster, sv.namespace, sv.name)) changed.add(n);
      } else if (ch.kind === "EndpointSlice") {
        const c = this.states.get(ch.cluster);
        const key = `${ch.cluster}|${nsName(ch.namespace, ch.name)}`;
        const sl = c?.slices.get(nsName(ch.namespace, ch.name));
        // forget where it was, then index where it is
        this.unindexSlice(key);
        if (sl) this.indexSlice(ch.cluster, sl);
        for (const n of this.computeSlice(ch.cluster, ch.namespace, ch.name)) changed.add(n);
      } else if (ch.kind === "Node" && this.reach === "nodeport") {
        // a node's IP is every node-port backend on it, and says which endpoints are on the host network
        const keys = new Set(this.slicesOnNode.get(`${ch.cluster}|${ch.name}`));
        for (const a of this.indexNode(ch.cluster, ch.name))
          for (const key of this.slicesOnAddress.get(`${ch.cluster}|${a}`) ?? []) keys.add(key);
        for (const key of keys) {
          const [c, nn] = key.split("|") as [string, string];
          const [ns, sn] = nn.split("/") as [string, string];
          for (const n of this.computeSlice(c, ns, sn)) changed.add(n);
        }
      }
    }
    // claims of changed services may move frontends between services: recompute everyone involved
    const affected = new Set<string>();
    for (const resName of services) {
      const [kind, cluster, ns, name] = resName.split("/") as [string, string, string, string];
      const nn = nsName(ns, name);
      for (const k of this.claimedBy.get(resName) ?? [])
        for (const other of this.claims.get(k) ?? []) affected.add(other);
      this.dropClaims(resName);
      if (kind === "svc") {
        const svc = this.states.get(cluster)?.services.get(nn);
        if (svc) this.setClaims(svc);
      } else {
        const imp = this.states.get(cluster)?.imports.get(nn);
        if (imp) this.setImportClaims(imp);
      }
      for (const k of this.claimedBy.get(resName) ?? [])
        for (const other of this.claims.get(k) ?? []) affected.add(other);
      affected.add(resName);
    }
    // a global Service or an import lists its peers in its backend tiers
    for (const nn of groups) {
      const [ns, name] = nn.split("/") as [string, string];
      for (const c of this.states.keys()) {
        affected.add(serviceResourceName({ cluster: c, namespace: ns, name }));
        affected.add(importResourceName({ cluster: c, namespace: ns, name }));
      }
    }
    for (const resName of affected) {
      const [kind, cluster, ns, name] = resName.split("/") as [string, string, string, string];
      const out =
        kind === "svc" ? this.computeService(cluster, ns, name) : this.computeImport(cluster, ns, name);
      for (const n of out) changed.add(n);
    }
    if (this.redirects)
      this.redirects.update(this.states.get(this.home!), changes, (n, r) => this.put(n, r, changed));
    return changed;
  }

  /** The verdicts on the home cluster's LocalRedirectPolicies, by namespace/name (empty without a home). */
  get policyVerdicts(): ReadonlyMap<string, PolicyVerdict> {
    return this.redirects?.verdicts ?? new Map();
  }

  /** The verdicts on the home cluster's BalancingPolicies, by namespace/name (empty without a home). */
  get balancingVerdicts(): ReadonlyMap<string, PolicyVerdict> {
    return this.redirects?.balancingVerdicts ?? new Map();
  }

  /**
   * What one node's agents receive: the shared snapshot, extended by the
   * node's own resources when it has any (version: the XOR of both digests,
   * which is what an agent computes over all it holds). The same object
   * until either map changes; the shared snapshot itself for a node with
   * none.
   */
  nodeSnapshot(node: string): ViewSnapshot {
    const base = this.snapshot();
    const o = this.overlays.get(node);
    if (!o) return base;
    const last = o.last;
    if (last?.base === base && last.mutations === o.mutations) return last.snap;
    const snap: ViewSnapshot = {
      version: formatDigest(this.acc ^ o.acc),
      resources: this.resources,
      overlay: o.resources,
      base,
      get diagnostics() {
        return base.diagnostics;
      },
      diagnosticsOf: base.diagnosticsOf,
    };
    o.last = { base, mutations: o.mutations, snap };
    return snap;
  }

  /**
   * Cheap: the resource map is shared and live; diagnostics are listed only
   * when asked for; the same object until the resource map changes (every
   * pump of every agent asks for it), so the object stands for one exact
   * content and order of the map — a new object even when a change and its
   * undo leave the version as it was.
   */
  snapshot(): ViewSnapshot {
    const last = this.lastSnapshot;
    if (last?.acc === this.acc && last.mutations === this.mutations) return last.snap;
    const all = this.diagnostics;
    const snap: ViewSnapshot = {
      version: formatDigest(this.acc),
      resources: this.resources,
      get diagnostics() {
        const out: Diagnostic[] = [];
        for (const [object, msgs] of all) for (const message of msgs) out.push({ object, message });
        return out;
      },
      diagnosticsOf: (name: string) => all.get(name) ?? [],
    };
    this.lastSnapshot = { acc: this.acc, mutations: this.mutations, snap };
    return snap;
  }

  private indexSlice(cluster: string, sl: EndpointSlice): void {
    const svc = serviceResourceName({ cluster, namespace: sl.namespace, name: sl.service });
    const key = `${cluster}|${nsName(sl.namespace, sl.name)}`;
    const set = this.slicesOf.get(svc) ?? new Set<string>();
    set.add(key);
    this.slicesOf.set(svc, set);
    this.serviceOfSlice.set(key, svc);
    if (this.reach === "nodeport") {
      for (const e of sl.endpoints) {
        const address = e.addresses[0];
        if (!e.nodeName && address === undefined) continue;
        const index = e.nodeName ? this.slicesOnNode : this.slicesOnAddress;
        const nk = `${cluster}|${e.nodeName || address}`;
        const on = index.get(nk) ?? new Set<string>();
        on.add(key);
        index.set(nk, on);
      }
    }
  }

  /** Indexes a Node's addresses as the world holds them now; returns the addresses gained or lost. */
  private indexNode(cluster: string, name: string): string[] {
    const key = `${cluster}|${name}`;
    const before = this.addressesOfNode.get(key) ?? [];
    const after = this.states.get(cluster)?.nodes.get(name)?.addresses ?? [];
    const moved = [...before.filter((a) => !after.includes(a)), ...after.filter((a) => !before.includes(a))];
    for (const a of before) {
      const set = this.nodesOfAddress.get(`${cluster}|${a}`);
      if (set?.delete(name) && set.size === 0) this.nodesOfAddress.delete(`${cluster}|${a}`);
    }
    for (const a of after) {
      const set = this.nodesOfAddress.get(`${cluster}|${a}`) ?? new Set<string>();
      set.add(name);
      this.nodesOfAddress.set(`${cluster}|${a}`, set);
    }
    if (after.length > 0) this.addressesOfNode.set(key, [...after]);
    else this.addressesOfNode.delete(key);
    return moved;
  }

  /** A Node of the cluster that has this address, if any. */
  private nodeOfAddress(cluster: string, address: string): string | undefined {
    const set = this.nodesOfAddress.get(`${cluster}|${address}`);
    return set === undefined ? undefined : set.values().next().value;
  }

  private unindexSlice(key: string): void {
    const svc = this.serviceOfSlice.get(key);
    if (svc) {
      const set = this.slicesOf.get(svc);
      if (set?.delete(key) && set.size === 0) this.slicesOf.delete(svc);
      this.serviceOfSlice.delete(key);
    }
    if (this.reach === "nodeport") {
      for (const index of [this.slicesOnNode, this.slicesOnAddress])
        for (const [nk, on] of index) if (on.delete(key) && on.size === 0) index.delete(nk);
    }
  }

  private setClaims(s: Service): void {
    if (skipReason(s)) return;
    this.claim(serviceResourceName(s), computeServiceAssignment(s).frontends);
  }

  private setImportClaims(imp: ServiceImport): void {
    if (importSkipReason(imp)) return;
    this.claim(importResourceName(imp), computeImportAssignment(imp, []).frontends);
  }

  private claim(resName: string, frontends: ServiceAssignment["frontends"]): void {
    const keys = frontends.map(frontendKey);
    this.claimedBy.set(resName, keys);
    for (const k of keys) {
      const set = this.claims.get(k) ?? new Set<string>();
      set.add(resName);
      this.claims.set(k, set);
    }
  }

  private dropClaims(resName: string): void {
    for (const k of this.claimedBy.get(resName) ?? []) {
      const set = this.claims.get(k);
      set?.delete(resName);
      if (set && set.size === 0) this.claims.delete(k);
    }
    this.claimedBy.delete(resName);
  }

  /**
   * Who serves a frontend several Services claim: a Service of the view's
   * home cluster first (an agent reaches its own cluster's ClusterIP as its
   * cluster does), then the first by resource name. The others are told.
   */
  private owner(key: string): string | undefined {
    let best: string | undefined;
    const home = this.home;
    const isHome = (n: string) => home !== undefined && n.split("/", 2)[1] === home;
    for (const n of this.claims.get(key) ?? []) {
      if (best === undefined) best = n;
      else {
        const nHome = isHome(n);
        const bHome = isHome(best);
        if ((nHome && !bHome) || (nHome === bHome && n < best)) best = n;
      }
    }
    return best;
  }

  /** A cluster whose backends other clusters' agents no longer receive (stale past its grace). */
  private isWithdrawn(cluster: string): boolean {
    return cluster !== this.home && this.states.get(cluster)?.health.withdrawn === true;
  }

  private put(name: string, r: Resource | undefined, changed: Set<string>): void {
    const node = overlayNodeOf(name);
    if (node !== undefined) {
      this.putOverlay(node, name, r, changed);
      return;
    }
    const cur = this.resources.get(name);
    if (cur?.version === r?.version) return;
    if (cur) this.acc ^= digest(cur);
    this.mutations++;
    if (r) {
      this.resources.set(name, r);
      this.acc ^= digest(r);
    } else this.resources.delete(name);
    changed.add(name);
  }

  private putOverlay(node: string, name: string, r: Resource | undefined, changed: Set<string>): void {
    let o = this.overlays.get(node);
    const cur = o?.resources.get(name);
    if (cur?.version === r?.version) return;
    if (!o) {
      o = { resources: new Map(), acc: 0n, mutations: 0, last: undefined };
      this.overlays.set(node, o);
    }
    if (cur) o.acc ^= digest(cur);
    o.mutations++;
    if (r) {
      o.resources.set(name, r);
      o.acc ^= digest(r);
    } else o.resources.delete(name);
    // a node left with nothing of its own is served the shared snapshot again
    if (o.resources.size === 0) this.overlays.delete(node);
    changed.add(name);
  }

  /** Sets a resource's notes; a new reason (or none) is news for the logs even when the version stays. */
  private note(resName: string, notes: string[], changed: Set<string>): void {
    const before = JSON.stringify(this.diagnostics.get(resName) ?? []);
    if (notes.length) this.diagnostics.set(resName, notes);
    else this.diagnostics.delete(resName);
    if (JSON.stringify(notes) !== before) changed.add(resName);
  }

  /** Drops frontends another resource owns, saying so. */
  private ownFrontends(resName: string, body: ServiceAssignment, notes: string[]): void {
    body.frontends = body.frontends.filter((f) => {
      const owner = this.owner(frontendKey(f));
      if (owner && owner !== resName) {
        notes.push(`frontend ${f.ip || "<node>"}:${f.port} is already served by ${owner}; not assigned`);
        return false;
      }
      return true;
    });
  }

  /** The resource names, across the view, of the global Services named namespace/name. */
  private globalPeers(namespace: string, name: string): string[] {
    const out: string[] = [];
    for (const [c, st] of this.states) {
      const s = st.services.get(nsName(namespace, name));
      if (s?.global && !skipReason(s)) out.push(serviceResourceName({ cluster: c, namespace, name }));
    }
    return out;
  }

  /** Recomputes one Service's resource and (when it appears or goes) its slices. */
  private computeService(cluster: string, namespace: string, name: string): Set<string> {
    const changed = new Set<string>();
    const resName = serviceResourceName({ cluster, namespace, name });
    const s = this.states.get(cluster)?.services.get(nsName(namespace, name));
    const wasLive = this.resources.has(resName);
    const notes: string[] = [];
    let resource: Resource | undefined;
    if (s) {
      const why = skipReason(s);
      if (why) notes.push(why);
      else {
        let tiers: BackendTier[] = [];
        if (s.global) {
          const peers = this.globalPeers(namespace, name);
          if (peers.length > 1) {
            const local = this.home !== undefined && this.states.has(this.home) ? this.home : cluster;
            tiers = computeTiers(peers, serviceResourceName({ cluster: local, namespace, name }));
          }
        }
        const body = computeServiceAssignment(s, tiers, this.options);
        this.ownFrontends(resName, body, notes);
        if (this.isWithdrawn(cluster)) {
          const h = this.states.get(cluster)!.health;
          notes.push(
            `cluster ${cluster} is unreachable (${h.reason ?? "stale"}) for longer than its grace period; its backends are withdrawn`,
          );
        }
        resource = serviceResource(resName, body);
      }
    }
    this.put(resName, resource, changed);
    this.note(resName, notes, changed);
    const isLive = resource !== undefined;
    // node-port views also take their ports from the Service, so any change reaches its slices
    if (wasLive !== isLive || (this.reach === "nodeport" && changed.has(resName))) {
      for (const key of this.slicesOf.get(resName) ?? []) {
        const [c, nn] = key.split("|") as [string, string];
        const [ns, sn] = nn.split("/") as [string, string];
        for (const n of this.computeSlice(c, ns, sn)) changed.add(n);
      }
    }
    return changed;
  }

  /** Recomputes one MCS ServiceImport's resource: its clusterset IPs over the exporters' backends. */
  private computeImport(cluster: string, namespace: string, name: string): Set<string> {
    const changed = new Set<string>();
    const resName = importResourceName({ cluster, namespace, name });
    const imp = this.states.get(cluster)?.imports.get(nsName(namespace, name));
    const notes: string[] = [];
    let resource: Resource | undefined;
    if (imp) {
      const why = importSkipReason(imp);
      if (why) notes.push(why);
      else {
        const exporters: string[] = [];
        for (const [c, st] of this.states) {
          const s = st.services.get(nsName(namespace, name));
          if (st.exports.has(nsName(namespace, name)) && s && !skipReason(s))
            exporters.push(serviceResourceName({ cluster: c, namespace, name }));
        }
        if (exporters.length === 0)
          notes.push(
            `no cluster of the view exports ${namespace}/${name} (ServiceExport + Service); connects are refused`,
          );
        const local = this.home ?? cluster;
        const tiers =
          exporters.length === 0
            ? [{ services: [] }]
            : computeTiers(exporters, serviceResourceName({ cluster: local, namespace, name }));
        const body = computeImportAssignment(imp, tiers);
        this.ownFrontends(resName, body, notes);
        resource = serviceResource(resName, body);
      }
    }
    this.put(resName, resource, changed);
    this.note(resName, notes, changed);
    return changed;
  }

  private computeSlice(cluster: string, namespace: string, name: string): Set<string> {
    const changed = new Set<string>();
    const resName = `eps/${cluster}/${namespace}/${name}`;
    const sl = this.isWithdrawn(cluster)
      ? undefined
      : this.states.get(cluster)?.slices.get(nsName(namespace, name));
    let resource: Resource | undefined;
    let hostNetwork: Resource | undefined;
    const notes: string[] = [];
    if (sl && this.reach === "pod") {
      const body = computeBackendSlice(sl);
      if (body.ports.length > 0 && this.resources.has(body.service)) resource = sliceResource(resName, body);
    } else if (sl) {
      const svc = this.states.get(cluster)?.services.get(nsName(namespace, sl.service));
      if (svc && this.resources.has(serviceResourceName(svc))) {
        const parts = computeNodePortSlices(sl, svc, this.states.get(cluster)!.nodes, (a) =>
          this.nodeOfAddress(cluster, a),
        );
        if (parts.viaNodePorts.ports.length > 0) resource = sliceResource(resName, parts.viaNodePorts);
        if (parts.hostNetwork.ports.length > 0 && parts.hostNetwork.endpoints.length > 0)
          hostNetwork = sliceResource(hostNetworkSliceName(resName), parts.hostNetwork);
        if (parts.unreachable > 0)
          notes.push(
            `${parts.unreachable} endpoint(s) on pod IPs are unreachable for agents that reach backends through node ports: Service ${svc.namespace}/${svc.name} has no NodePort (only endpoints on node addresses, the host network, are reached directly)`,
          );
      }
    }
    this.put(resName, resource, changed);
    if (this.reach === "nodeport") {
      this.put(hostNetworkSliceName(resName), hostNetwork, changed);
      this.note(resName, notes, changed);
    }
    return changed;
  }
}

/** A named resource whose version is the hash of its encoded body. */
function serviceResource(name: string, body: ServiceAssignment): Resource {
  return {
    name,
    version: hash(ServiceAssignment.encode(body).finish()),
    body: { $case: "service", value: body },
  };
}

function sliceResource(name: string, body: BackendSlice): Resource {
  return {
    name,
    version: hash(BackendSlice.encode(body).finish()),
    body: { $case: "backendSlice", value: body },
  };
}

/** Why a ServiceImport yields no resource, or undefined when it does. */
export function importSkipReason(imp: ServiceImport): string | undefined {
  if (imp.headless) return "headless ServiceImport: clients reach pods by DNS, nothing to resolve";
  if (imp.ips.length === 0) return "ServiceImport has no clusterset IP (spec.ips) yet";
  if (imp.ports.length === 0) return "ServiceImport has no TCP or UDP port";
  return undefined;
}

function digest(r: Resource): bigint {
  return resourceDigest(r.name, r.version);
}
