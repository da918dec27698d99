/**
 * Pure: the world (the clusters of one view) → the named, versioned
 * resources every agent of that view receives, kept up to date object
 * change by object change. Computed once per view and shared by all its
 * agents. What each object becomes is in service-assignment.ts and
 * backend-slices.ts; the resource map and its versions in
 * view-resources.ts; who serves a shared frontend in frontend-claims.ts.
 */
import type { BackendTier, Resource } from "@switchyard/proto/assignment";
import type { PolicyVerdict, Service, ServiceImport } from "../model/types.ts";
import type { ClusterState, WorldChange } from "../model/world.ts";
import {
  computeBackendSlice,
  computeNodePortSlices,
  hostNetworkSliceName,
  type Reach,
} from "./backend-slices.ts";
import { FrontendClaims } from "./frontend-claims.ts";
import { LocalRedirectTranslator } from "./local-redirect.ts";
import {
  computeImportAssignment,
  computeServiceAssignment,
  computeTiers,
  importResourceName,
  importSkipReason,
  serviceResourceName,
  skipReason,
  type TranslateOptions,
} from "./service-assignment.ts";
import { parseSliceKey, SliceIndex, sliceKey } from "./slice-index.ts";
import { serviceResource, sliceResource, ViewResources, type ViewSnapshot } from "./view-resources.ts";

/** The translator's API types, where its callers import them. */
export type { Reach } from "./backend-slices.ts";
export type { TranslateOptions } from "./service-assignment.ts";
export type { Diagnostic, ViewSnapshot } from "./view-resources.ts";

export function computeViewSnapshot(clusters: readonly ClusterState[]): ViewSnapshot {
  const t = new ViewTranslator();
  t.rebuild(clusters);
  return t.snapshot();
}

export type ObjectChange = WorldChange;

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
export class ViewTranslator {
  private readonly home: string | undefined;
  private readonly reach: Reach;
  /** settings; a change takes a rebuild */
  options: TranslateOptions;
  constructor(homeCluster?: string, reach: Reach = "pod", options: TranslateOptions = {}) {
    this.home = homeCluster;
    this.reach = reach;
    this.options = options;
    this.claims = new FrontendClaims(homeCluster);
    this.slices = new SliceIndex(reach);
    this.redirects =
      homeCluster === undefined ? undefined : new LocalRedirectTranslator(homeCluster, { reach });
  }
  /** the resource map, its notes and versions */
  private readonly store = new ViewResources();
  /** who serves a frontend several resources claim */
  private readonly claims: FrontendClaims;
  /** which slices a Service or Node change reaches */
  private readonly slices: SliceIndex;
  private states = new Map<string, ClusterState>();
  /** the home cluster's LocalRedirectPolicies and BalancingPolicies (only a view's home cluster's policies apply) */
  private readonly redirects: LocalRedirectTranslator | undefined;

  /** the resources every agent of the view shares (live) */
  get resources(): Map<string, Resource> {
    return this.store.resources;
  }

  rebuild(clusters: readonly ClusterState[]): Set<string> {
    const before = this.store.clear();
    this.claims.clear();
    this.slices.clear();
    this.states = new Map(clusters.map((c) => [c.name, c]));
    const changed = new Set<string>(before);
    for (const c of clusters) {
      for (const sl of c.slices.values()) this.slices.addSlice(c.name, sl);
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
      this.redirects.rebuild(this.states.get(this.home!), (n, r) => this.store.put(n, r, changed));
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
        const sl = c?.slices.get(nsName(ch.namespace, ch.name));
        // forget where it was, then index where it is
        this.slices.removeSlice(sliceKey(ch.cluster, ch.namespace, ch.name));
        if (sl) this.slices.addSlice(ch.cluster, sl);
        for (const n of this.computeSlice(ch.cluster, ch.namespace, ch.name)) changed.add(n);
      } else if (ch.kind === "Node" && this.reach === "nodeport") {
        // a node's IP is every node-port backend on it, and says which endpoints are on the host network
        const addresses = this.states.get(ch.cluster)?.nodes.get(ch.name)?.addresses ?? [];
        for (const key of this.slices.nodeChanged(ch.cluster, ch.name, addresses)) {
          const k = parseSliceKey(key);
          for (const n of this.computeSlice(k.cluster, k.namespace, k.name)) changed.add(n);
        }
      }
    }
    // claims of changed services may move frontends between services: recompute everyone involved
    const affected = new Set<string>();
    for (const resName of services) {
      const [kind, cluster, ns, name] = resName.split("/") as [string, string, string, string];
      const nn = nsName(ns, name);
      for (const other of this.claims.sharing(resName)) affected.add(other);
      this.claims.drop(resName);
      if (kind === "svc") {
        const svc = this.states.get(cluster)?.services.get(nn);
        if (svc) this.setClaims(svc);
      } else {
        const imp = this.states.get(cluster)?.imports.get(nn);
        if (imp) this.setImportClaims(imp);
      }
      for (const other of this.claims.sharing(resName)) affected.add(other);
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
      this.redirects.update(this.states.get(this.home!), changes, (n, r) => this.store.put(n, r, changed));
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

  /** What one node's agents receive (see ViewResources.nodeSnapshot). */
  nodeSnapshot(node: string): ViewSnapshot {
    return this.store.nodeSnapshot(node);
  }

  /** The view's shared snapshot (see ViewResources.snapshot). */
  snapshot(): ViewSnapshot {
    return this.store.snapshot();
  }

  /** Indexes a Node's addresses as the world holds them now. */
  private indexNode(cluster: string, name: string): void {
    this.slices.setNode(cluster, name, this.states.get(cluster)?.nodes.get(name)?.addresses ?? []);
  }

  private setClaims(s: Service): void {
    if (skipReason(s)) return;
    this.claims.claim(serviceResourceName(s), computeServiceAssignment(s).frontends);
  }

  private setImportClaims(imp: ServiceImport): void {
    if (importSkipReason(imp)) return;
    this.claims.claim(importResourceName(imp), computeImportAssignment(imp, []).frontends);
  }

  /** A cluster whose backends other clusters' agents no longer receive (stale past its grace). */
  private isWithdrawn(cluster: string): boolean {
    return cluster !== this.home && this.states.get(cluster)?.health.withdrawn === true;
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
    const wasLive = this.store.resources.has(resName);
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
        this.claims.ownFrontends(resName, body, notes);
        if (this.isWithdrawn(cluster)) {
          const h = this.states.get(cluster)!.health;
          notes.push(
            `cluster ${cluster} is unreachable (${h.reason ?? "stale"}) for longer than its grace period; its backends are withdrawn`,
          );
        }
        resource = serviceResource(resName, body);
      }
    }
    this.store.put(resName, resource, changed);
    this.store.note(resName, notes, changed);
    const isLive = resource !== undefined;
    // node-port views also take their ports from the Service, so any change reaches its slices
    if (wasLive !== isLive || (this.reach === "nodeport" && changed.has(resName))) {
      for (const key of this.slices.slicesOfService(resName)) {
        const k = parseSliceKey(key);
        for (const n of this.computeSlice(k.cluster, k.namespace, k.name)) changed.add(n);
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
        this.claims.ownFrontends(resName, body, notes);
        resource = serviceResource(resName, body);
      }
    }
    this.store.put(resName, resource, changed);
    this.store.note(resName, notes, changed);
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
      if (body.ports.length > 0 && this.store.resources.has(body.service))
        resource = sliceResource(resName, body);
    } else if (sl) {
      const svc = this.states.get(cluster)?.services.get(nsName(namespace, sl.service));
      if (svc && this.store.resources.has(serviceResourceName(svc))) {
        const parts = computeNodePortSlices(sl, svc, this.states.get(cluster)!.nodes, (a) =>
          this.slices.nodeOfAddress(cluster, a),
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
    this.store.put(resName, resource, changed);
    if (this.reach === "nodeport") {
      this.store.put(hostNetworkSliceName(resName), hostNetwork, changed);
      this.store.note(resName, notes, changed);
    }
    return changed;
  }
}
