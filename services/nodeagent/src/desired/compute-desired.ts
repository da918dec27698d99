/**
 * Pure: accepted resources + this node → the frontends this node must
 * resolve, each with its backend list in a canonical order.
 *
 * - Backends are matched to a frontend by the Service port *name* through
 *   the slice ports, so a named targetPort resolves per endpoint.
 * - Ready endpoints are used; when none is ready, serving-and-terminating
 *   ones (KEP-1669, as kube-proxy does).
 * - Local traffic policies keep only this node's backends: the internal one
 *   for ClusterIPs; for external frontends (NodePort, LoadBalancer and
 *   external IPs) of an externalTrafficPolicy: Local Service, the internal
 *   one too, because every connect seen here starts on this node (as
 *   kube-proxy treats local sources, and Cilium's socket LB) — unless the
 *   Service is strict (external_traffic_strict), then the external one. An
 *   endpoint without nodeName is local when its address is one of this
 *   node's addresses, else remote.
 * - NodePort frontends become one port-keyed entry that applies to every
 *   address in the node-IP set.
 * - Backend tiers (global Services, MCS imports): the first tier with a
 *   usable backend of the frontend's family wins, so the agent's own
 *   cluster is preferred and the others take over when it has none.
 * - trafficDistribution: within the chosen backends, those on this node
 *   (PreferSameNode) or in this node's zone are preferred when there are any.
 * - LocalRedirectPolicies (`lrp/…`, with this node's selected pods in
 *   `lrpb/…/<node>`): a policy's frontend replaces the Service's entry of the
 *   same key (LocalRedirect > Service). Its set is the node's ready, not
 *   terminating pods at the toPort of the frontend's port name; its
 *   fallback set is the Service's backends for that key (Service frontend)
 *   or the fallback Service's ClusterIP frontend of the fallback port name
 *   and the same family (address frontend), or none (refused).
 * - BalancingPolicies (`bp/…`, with `bpn/…/<node>` markers when they have a
 *   nodeSelector): their frontends replace the Service's entries of the same
 *   key too (desired/balancing.ts).
 */
import { createHash } from "node:crypto";
import { ipFamily } from "@switchyard/lib/ip";
import {
  NatMode,
  type Protocol,
  type Resource,
  type ServiceAssignment,
  TrafficDistribution,
} from "@switchyard/proto/assignment";
import { NatMode as BpfNatMode, NatType, Scope, SY_FE_LOCAL_ONLY, storedServiceName } from "../bpf/layout.ts";
import type { Backend, FrontendKeyModel } from "../bpf/maps.ts";
import { frontendKeyString } from "../bpf/maps.ts";
import { balancingNodeOf, computeBalancingFrontends } from "./balancing.ts";
import { compareBackends, type DesiredFrontend, protoNumber } from "./frontends.ts";
import { computePolicyFrontends, type FallbackDep, localBackendsOf } from "./local-redirect.ts";

// the entry type, for the planner and the reconciler
export type { DesiredFrontend } from "./frontends.ts";

export type NodeIdentity = { name: string; addresses: readonly string[]; zone?: string | undefined };

export type DesiredState = {
  frontends: Map<string, DesiredFrontend>;
  nodeIps: Set<string>;
  problems: string[];
};

const MODE: Record<number, number> = {
  [NatMode.NAT_MODE_CLUSTER_IP]: BpfNatMode.clusterIp,
  [NatMode.NAT_MODE_NODE_PORT]: BpfNatMode.nodePort,
  [NatMode.NAT_MODE_LOAD_BALANCER]: BpfNatMode.loadBalancer,
  [NatMode.NAT_MODE_EXTERNAL_IP]: BpfNatMode.externalIp,
};

/** Stable id of (service, port name, protocol): the session-affinity scope. */
export function computePortId(service: string, portName: string, protocol: Protocol): number {
  return createHash("sha256").update(`${service}\n${portName}\n${protocol}`).digest().readUInt32LE(0);
}

/** Whether a frontend keeps only this node's backends. */
function isLocalPolicy(svc: ServiceAssignment, mode: NatMode): boolean {
  if (mode === NatMode.NAT_MODE_CLUSTER_IP) return svc.internalTrafficLocal;
  return svc.externalTrafficLocal && (svc.externalTrafficStrict || svc.internalTrafficLocal);
}

/** The frontends one Service (or ServiceImport) asks for, before frontend conflicts are settled. */
function computeServiceFrontends(
  svc: Resource,
  slicesOf: (service: string) => readonly Resource[],
  node: NodeIdentity,
  nodeIps: ReadonlySet<string>,
): Array<[string, DesiredFrontend]> {
  if (svc.body?.$case !== "service") return [];
  const out: Array<[string, DesiredFrontend]> = [];
  const seen = new Set<string>();
  const body = svc.body.value;
  for (const f of body.frontends) {
    const nodePort = f.mode === NatMode.NAT_MODE_NODE_PORT;
    // a ClusterIP (LB, external IP) of one family uses the endpoints of that family;
    // a NodePort gets one entry per family ("0.0.0.0" = any IPv4 node address, "::" = any IPv6 one)
    const entries: Array<{ ip: string; family: 4 | 6 }> = nodePort
      ? [
          { ip: "0.0.0.0", family: 4 },
          { ip: "::", family: 6 },
        ]
      : [{ ip: f.ip, family: ipFamily(f.ip) === 6 ? 6 : 4 }];
    const local = isLocalPolicy(body, f.mode);
    const tiers = body.backendTiers.length
      ? body.backendTiers.map((t) => t.services.flatMap((n) => slicesOf(n)))
      : [slicesOf(svc.name)];
    const candidates = tiers.map((t) =>
      selectBackends(t, f.portName, f.protocol, local ? node : undefined, nodeIps),
    );
    for (const entry of entries) {
      const key: FrontendKeyModel = {
        ip: entry.ip,
        port: f.port,
        proto: protoNumber(f.protocol),
        scope: nodePort ? Scope.nodePort : Scope.exact,
      };
      const ks = frontendKeyString(key);
      // a Service listing the same frontend twice keeps the first
      if (seen.has(ks)) continue;
      seen.add(ks);
      out.push([
        ks,
        {
          key,
          service: svc.name,
          natType: NatType.service,
          natMode: MODE[f.mode] ?? BpfNatMode.clusterIp,
          flags: local ? SY_FE_LOCAL_ONLY : 0,
          affinityTimeoutS: body.affinityTimeoutSeconds,
          portId: body.affinityTimeoutSeconds ? computePortId(svc.name, f.portName, f.protocol) : 0,
          backends: chooseBackends(candidates, entry.family, body.trafficDistribution, node),
        },
      ]);
    }
  }
  return out;
}

function servedBy(r: Resource | undefined): string | undefined {
  return r?.body?.$case === "backendSlice" ? r.body.value.service : undefined;
}

function tierRefs(r: Resource | undefined): string[] {
  return r?.body?.$case === "service" ? r.body.value.backendTiers.flatMap((t) => t.services) : [];
}

/**
 * The desired frontends, kept up to date resource by resource: a change
 * recomputes only the Services it touches (a slice → its Service and the
 * Services whose backend tiers name it), and says which frontend keys may
 * have changed, so the planner compares only those. One endpoint change in
 * a view of 10,000 Services costs one Service, not 10,000.
 *
 * A frontend claimed by several Services goes to the first by name (the
 * others are reported as problems).
 */
export class DesiredIndex {
  private readonly node: NodeIdentity;
  /** the node's addresses (the node-IP map) */
  readonly nodeIps: ReadonlySet<string>;
  private readonly services = new Map<string, Resource>();
  /** service name → slice name → slice */
  private readonly slices = new Map<string, Map<string, Resource>>();
  /** a service name named in backend tiers → the Services whose tiers name it */
  private readonly tierOwners = new Map<string, Set<string>>();
  /** each Service's frontends before conflicts are settled */
  private readonly wanted = new Map<string, Map<string, DesiredFrontend>>();
  /** frontend key → the Services that want it */
  private readonly claims = new Map<string, Set<string>>();
  /** the desired state: frontend key → the winning Service's frontend */
  readonly frontends = new Map<string, DesiredFrontend>();
  /** frontends owned per Service, by stored name (a name unused by every frontend can go from the maps) */
  private readonly owned = new Map<string, number>();
  /** LocalRedirectPolicies and BalancingPolicies by resource name */
  private readonly policies = new Map<string, Resource>();
  /** BalancingPolicies (by resource name) whose nodeSelector takes this node: their bpn marker, by its name */
  private readonly balancingNodes = new Map<string, string>();
  /** policy name → this node's local backends (another node's are ignored) */
  private readonly localBackends = new Map<string, Resource>();
  /** each policy's frontends; they win over a Service's entry of the same key */
  private readonly policyWanted = new Map<string, Map<string, DesiredFrontend>>();
  /** frontend key → the policies that want it */
  private readonly policyClaims = new Map<string, Set<string>>();
  /** what each policy's fallbacks were computed from: a Service by name, a Service entry by key */
  private readonly policyDeps = new Map<string, FallbackDep[]>();
  private readonly fallbackByService = new Map<string, Set<string>>();
  private readonly fallbackByKey = new Map<string, Set<string>>();

  constructor(node: NodeIdentity) {
    this.node = node;
    this.nodeIps = new Set(node.addresses);
  }

  /** Whether this index was built for the same node identity (else build a new one). */
  isFor(node: NodeIdentity): boolean {
    return (
      node.name === this.node.name &&
      node.zone === this.node.zone &&
      node.addresses.length === this.node.addresses.length &&
      node.addresses.every((a, i) => a === this.node.addresses[i])
    );
  }

  private readonly slicesOf = (service: string): readonly Resource[] => [
    ...(this.slices.get(service)?.values() ?? []),
  ];

  /**
   * Applies resources that changed (`after` undefined: removed; `before`:
   * what was held until now). Returns the frontend keys whose desired entry
   * may differ.
   */
  update(changes: Iterable<{ before: Resource | undefined; after: Resource | undefined }>): Set<string> {
    const affected = new Set<string>();
    const affectedPolicies = new Set<string>();
    const touchService = (name: string | undefined) => {
      if (name === undefined) return;
      affected.add(name);
      for (const o of this.tierOwners.get(name) ?? []) affected.add(o);
    };
    for (const { before, after } of changes) {
      const name = (after ?? before)?.name;
      if (name === undefined) continue;
      const isPolicy = (r: Resource | undefined) =>
        r?.body?.$case === "localRedirect" || r?.body?.$case === "balancing";
      if (isPolicy(before) || isPolicy(after)) {
        if (after && isPolicy(after)) this.policies.set(name, after);
        else this.policies.delete(name);
        affectedPolicies.add(name);
      }
      const bnBefore = balancingNodeOf(before, this.node.name);
      const bnAfter = balancingNodeOf(after, this.node.name);
      if (bnBefore !== undefined && this.balancingNodes.get(bnBefore) === name) {
        this.balancingNodes.delete(bnBefore);
        affectedPolicies.add(bnBefore);
      }
      if (bnAfter !== undefined) {
        this.balancingNodes.set(bnAfter, name);
        affectedPolicies.add(bnAfter);
      }
      const lbBefore = localBackendsOf(before, this.node.name);
      const lbAfter = localBackendsOf(after, this.node.name);
      if (lbBefore && this.localBackends.get(lbBefore.policy)?.name === name) {
        this.localBackends.delete(lbBefore.policy);
        affectedPolicies.add(lbBefore.policy);
      }
      if (lbAfter && after) {
        this.localBackends.set(lbAfter.policy, after);
        affectedPolicies.add(lbAfter.policy);
      }
      if (before?.body?.$case === "service" || after?.body?.$case === "service") {
        for (const ref of tierRefs(before)) this.tierOwners.get(ref)?.delete(name);
        for (const ref of tierRefs(after)) {
          const set = this.tierOwners.get(ref) ?? new Set<string>();
          set.add(name);
          this.tierOwners.set(ref, set);
        }
        if (after?.body?.$case === "service") this.services.set(name, after);
        else this.services.delete(name);
        affected.add(name);
      }
      const was = servedBy(before);
      const is = servedBy(after);
      if (was !== undefined) {
        this.slices.get(was)?.delete(name);
        touchService(was);
      }
      if (is !== undefined && after) {
        const m = this.slices.get(is) ?? new Map<string, Resource>();
        m.set(name, after);
        this.slices.set(is, m);
        touchService(is);
      }
    }
    const keys = new Set<string>();
    // in name order: new frontends enter the map (and get map ids) in an order that does not depend on arrival
    for (const svcName of [...affected].sort()) {
      const old = this.wanted.get(svcName);
      for (const ks of old?.keys() ?? []) {
        keys.add(ks);
        const c = this.claims.get(ks);
        c?.delete(svcName);
        if (c?.size === 0) this.claims.delete(ks);
      }
      this.wanted.delete(svcName);
      const svc = this.services.get(svcName);
      if (!svc) continue;
      const fes = new Map(computeServiceFrontends(svc, this.slicesOf, this.node, this.nodeIps));
      if (fes.size > 0) this.wanted.set(svcName, fes);
      for (const ks of fes.keys()) {
        keys.add(ks);
        const c = this.claims.get(ks) ?? new Set<string>();
        c.add(svcName);
        this.claims.set(ks, c);
      }
    }
    // policies whose fallback is a Service entry that may have changed
    for (const svcName of affected)
      for (const p of this.fallbackByService.get(svcName) ?? []) affectedPolicies.add(p);
    for (const ks of keys) for (const p of this.fallbackByKey.get(ks) ?? []) affectedPolicies.add(p);
    for (const p of [...affectedPolicies].sort()) this.recomputePolicy(p, keys);
    for (const ks of keys) {
      const prev = this.frontends.get(ks);
      const prevName = prev && storedServiceName(prev.service);
      if (prevName) this.owned.set(prevName, (this.owned.get(prevName) ?? 1) - 1);
      const fe = this.policyEntry(ks) ?? this.serviceEntry(ks);
      if (fe) {
        this.frontends.set(ks, fe);
        const name = storedServiceName(fe.service);
        this.owned.set(name, (this.owned.get(name) ?? 0) + 1);
      } else this.frontends.delete(ks);
      if (prevName && (this.owned.get(prevName) ?? 0) <= 0) this.owned.delete(prevName);
    }
    return keys;
  }

  /** the Service's entry of a frontend key, before any policy takes it over */
  private serviceEntry(ks: string): DesiredFrontend | undefined {
    const winner = this.winner(ks);
    return winner === undefined ? undefined : this.wanted.get(winner)?.get(ks);
  }

  /** the policy's entry of a frontend key (the first policy by name, should the hub send two) */
  private policyEntry(ks: string): DesiredFrontend | undefined {
    let best: string | undefined;
    for (const p of this.policyClaims.get(ks) ?? []) if (best === undefined || p < best) best = p;
    return best === undefined ? undefined : this.policyWanted.get(best)?.get(ks);
  }

  /** Computes one policy's frontends again (after the Services it falls back to); adds the keys it touches. */
  private recomputePolicy(name: string, keys: Set<string>): void {
    for (const ks of this.policyWanted.get(name)?.keys() ?? []) {
      keys.add(ks);
      const c = this.policyClaims.get(ks);
      c?.delete(name);
      if (c?.size === 0) this.policyClaims.delete(ks);
    }
    this.policyWanted.delete(name);
    for (const d of this.policyDeps.get(name) ?? []) {
      const m = d.service !== undefined ? this.fallbackByService : this.fallbackByKey;
      const k = d.service ?? d.key!;
      const set = m.get(k);
      set?.delete(name);
      if (set?.size === 0) m.delete(k);
    }
    this.policyDeps.delete(name);
    const lrp = this.policies.get(name);
    if (lrp?.body?.$case === "balancing") {
      this.claimForPolicy(
        name,
        computeBalancingFrontends(name, lrp.body.value, this.balancingNodes.has(name)),
        keys,
      );
      return;
    }
    if (lrp?.body?.$case !== "localRedirect") return;
    const lb = this.localBackends.get(name);
    const { frontends, deps } = computePolicyFrontends(
      name,
      lrp.body.value,
      lb?.body?.$case === "localBackends" ? lb.body.value : undefined,
      (ks) => this.serviceEntry(ks),
      (svc) => this.services.get(svc),
      (svc, ks) => this.wanted.get(svc)?.get(ks),
    );
    this.claimForPolicy(name, frontends, keys);
    this.policyDeps.set(name, deps);
    for (const d of deps) {
      const m = d.service !== undefined ? this.fallbackByService : this.fallbackByKey;
      const k = d.service ?? d.key!;
      const set = m.get(k) ?? new Set<string>();
      set.add(name);
      m.set(k, set);
    }
  }

  /** Records a policy's frontends and the keys they claim; adds the keys. */
  private claimForPolicy(name: string, frontends: Array<[string, DesiredFrontend]>, keys: Set<string>): void {
    this.policyWanted.set(name, new Map(frontends));
    for (const [ks] of frontends) {
      keys.add(ks);
      const c = this.policyClaims.get(ks) ?? new Set<string>();
      c.add(name);
      this.policyClaims.set(ks, c);
    }
  }

  /**
   * skipRedirectFromBackend: for each such policy with frontends here, the
   * UIDs of its selected pods on this node (ready or not: a pod starting up
   * must not be sent to itself either).
   */
  skipPods(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [name, r] of this.policies) {
      if (r.body?.$case !== "localRedirect" || !r.body.value.skipRedirectFromBackend) continue;
      if ((this.policyWanted.get(name)?.size ?? 0) === 0) continue;
      const lb = this.localBackends.get(name);
      const uids =
        lb?.body?.$case === "localBackends" ? lb.body.value.pods.map((p) => p.uid).filter(Boolean) : [];
      if (uids.length > 0) out.set(name, [...new Set(uids)].sort());
    }
    return out;
  }

  private winner(ks: string): string | undefined {
    let best: string | undefined;
    for (const s of this.claims.get(ks) ?? []) if (best === undefined || s < best) best = s;
    return best;
  }

  /**
   * Whether the Service owns any desired frontend (its name is still needed
   * in the maps). Asked with a name as the maps hold it: whole, or cut with
   * a hash when too long (`storedServiceName`), and either form answers.
   */
  ownsFrontends(service: string): boolean {
    return (this.owned.get(storedServiceName(service)) ?? 0) > 0;
  }

  /** Frontends claimed by more than one Service (or policy), among `keys` (all when omitted). */
  problems(keys?: Iterable<string>): string[] {
    const out: Array<[string, string]> = [];
    for (const ks of keys ?? this.claims.keys()) {
      const c = this.claims.get(ks);
      if (!c || c.size < 2) continue;
      const owner = this.winner(ks)!;
      const fe = this.frontends.get(ks)!;
      const where = fe.key.scope === Scope.nodePort ? "node port" : fe.key.ip;
      for (const s of [...c].sort())
        if (s !== owner)
          out.push([s, `frontend ${where}:${fe.key.port} is claimed by ${owner} and ${s}; kept ${owner}`]);
    }
    // the hub sends one policy per frontend; should two arrive, the first by name is kept
    for (const ks of keys ?? this.policyClaims.keys()) {
      const c = this.policyClaims.get(ks);
      if (!c || c.size < 2) continue;
      const [owner, ...others] = [...c].sort();
      const fe = this.frontends.get(ks)!;
      for (const p of others)
        out.push([
          p,
          `frontend ${fe.key.ip}:${fe.key.port} is claimed by policies ${owner} and ${p}; kept ${owner}`,
        ]);
    }
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map(([, m]) => m);
  }

  state(): DesiredState {
    return { frontends: this.frontends, nodeIps: new Set(this.nodeIps), problems: this.problems() };
  }
}

export function computeDesired(resources: Iterable<Resource>, node: NodeIdentity): DesiredState {
  const d = new DesiredIndex(node);
  d.update(Array.from(resources, (r) => ({ before: undefined, after: r })));
  return d.state();
}

type Candidate = Backend & { node: string; zone: string; forZones: readonly string[] };

function isSameZone(c: Candidate, zone: string): boolean {
  return c.forZones.length > 0 ? c.forZones.includes(zone) : c.zone === zone;
}

/** The first tier with a backend of the family; within it, the closest backends when the Service asks. */
function chooseBackends(
  tiers: Candidate[][],
  family: 4 | 6,
  distribution: TrafficDistribution,
  node: NodeIdentity,
): Backend[] {
  for (const t of tiers) {
    const usable = t.filter((b) => ipFamily(b.ip) === family);
    if (usable.length === 0) continue;
    let chosen = usable;
    if (distribution === TrafficDistribution.TRAFFIC_DISTRIBUTION_PREFER_SAME_NODE) {
      const same = usable.filter((b) => b.node !== "" && b.node === node.name);
      if (same.length > 0) chosen = same;
    }
    if (
      chosen === usable &&
      node.zone &&
      (distribution === TrafficDistribution.TRAFFIC_DISTRIBUTION_PREFER_SAME_ZONE ||
        distribution === TrafficDistribution.TRAFFIC_DISTRIBUTION_PREFER_SAME_NODE)
    ) {
      const zone = node.zone;
      const near = usable.filter((b) => isSameZone(b, zone));
      if (near.length > 0) chosen = near;
    }
    return chosen.map((b) => ({ ip: b.ip, port: b.port }));
  }
  return [];
}

function selectBackends(
  slices: readonly Resource[],
  portName: string,
  protocol: Protocol,
  onlyNode: NodeIdentity | undefined,
  nodeIps: ReadonlySet<string>,
): Candidate[] {
  const ready: Candidate[] = [];
  const terminating: Candidate[] = [];
  for (const s of slices) {
    if (s.body?.$case !== "backendSlice") continue;
    const port = s.body.value.ports.find((p) => p.name === portName && p.protocol === protocol);
    if (!port) continue;
    for (const e of s.body.value.endpoints) {
      const ip = e.addresses[0];
      if (!ip) continue;
      if (onlyNode) {
        const local = e.nodeName ? e.nodeName === onlyNode.name : nodeIps.has(ip);
        if (!local) continue;
      }
      const c = { ip, port: port.port, node: e.nodeName, zone: e.zone, forZones: e.forZones };
      if (e.ready) ready.push(c);
      else if (e.serving && e.terminating) terminating.push(c);
    }
  }
  const chosen = ready.length > 0 ? ready : terminating;
  const seen = new Set<string>();
  return chosen
    .filter((b) => {
      const k = `${b.ip}|${b.port}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort(compareBackends);
}
