/**
 * Pure: accepted resources + this node → the frontends this node must
 * resolve, each with its backend list in a canonical order.
 *
 * - Backends are matched to a frontend by the Service port *name* through
 *   the slice ports, so a named targetPort resolves per endpoint.
 * - Ready endpoints are used; when none is ready, serving-and-terminating
 *   ones (KEP-1669, as kube-proxy does).
 * - Local traffic policies (internal for ClusterIP, external for NodePort,
 *   LoadBalancer and external IPs) keep only this node's backends. An
 *   endpoint without nodeName is local when its address is one of this
 *   node's addresses, else remote.
 * - NodePort frontends become one port-keyed entry that applies to every
 *   address in the node-IP set.
 * - Backend tiers (global Services, MCS imports): the first tier with a
 *   usable backend of the frontend's family wins, so the agent's own
 *   cluster is preferred and the others take over when it has none.
 * - trafficDistribution: within the chosen backends, those on this node
 *   (PreferSameNode) or in this node's zone are preferred when there are any.
 */
import { createHash } from "node:crypto";
import { ipFamily } from "@switchyard/lib/ip";
import {
  NatMode,
  Protocol,
  type Resource,
  type ServiceAssignment,
  TrafficDistribution,
} from "@switchyard/proto/assignment";
import {
  NatMode as BpfNatMode,
  IPPROTO_TCP,
  IPPROTO_UDP,
  NatType,
  Scope,
  SY_FE_LOCAL_ONLY,
} from "../bpf/layout.ts";
import type { Backend, FrontendKeyModel } from "../bpf/maps.ts";
import { frontendKeyString } from "../bpf/maps.ts";

export type DesiredFrontend = {
  key: FrontendKeyModel;
  service: string;
  natType: number;
  natMode: number;
  flags: number;
  affinityTimeoutS: number;
  portId: number;
  backends: Backend[];
};

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

export function protoNumber(p: Protocol): number {
  return p === Protocol.PROTOCOL_UDP ? IPPROTO_UDP : IPPROTO_TCP;
}

export function compareBackends(a: Backend, b: Backend): number {
  return a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : a.port - b.port;
}

/** Stable id of (service, port name, protocol): the session-affinity scope. */
export function computePortId(service: string, portName: string, protocol: Protocol): number {
  return createHash("sha256").update(`${service}\n${portName}\n${protocol}`).digest().readUInt32LE(0);
}

function isLocalPolicy(svc: ServiceAssignment, mode: NatMode): boolean {
  return mode === NatMode.NAT_MODE_CLUSTER_IP ? svc.internalTrafficLocal : svc.externalTrafficLocal;
}

export function computeDesired(resources: Iterable<Resource>, node: NodeIdentity): DesiredState {
  const services: Resource[] = [];
  const slicesByService = new Map<string, Resource[]>();
  for (const r of resources) {
    if (r.body?.$case === "service") services.push(r);
    else if (r.body?.$case === "backendSlice") {
      const list = slicesByService.get(r.body.value.service) ?? [];
      list.push(r);
      slicesByService.set(r.body.value.service, list);
    }
  }
  services.sort((a, b) => (a.name < b.name ? -1 : 1));
  const nodeIps = new Set(node.addresses);
  const frontends = new Map<string, DesiredFrontend>();
  const problems: string[] = [];
  for (const svc of services) {
    if (svc.body?.$case !== "service") continue;
    const slices = slicesByService.get(svc.name) ?? [];
    for (const f of svc.body.value.frontends) {
      const nodePort = f.mode === NatMode.NAT_MODE_NODE_PORT;
      // a ClusterIP (LB, external IP) of one family uses the endpoints of that family;
      // a NodePort gets one entry per family ("0.0.0.0" = any IPv4 node address, "::" = any IPv6 one)
      const entries: Array<{ ip: string; family: 4 | 6 }> = nodePort
        ? [
            { ip: "0.0.0.0", family: 4 },
            { ip: "::", family: 6 },
          ]
        : [{ ip: f.ip, family: ipFamily(f.ip) === 6 ? 6 : 4 }];
      const local = isLocalPolicy(svc.body.value, f.mode);
      const tiers = svc.body.value.backendTiers.length
        ? svc.body.value.backendTiers.map((t) => t.services.flatMap((n) => slicesByService.get(n) ?? []))
        : [slices];
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
        const owner = frontends.get(ks);
        if (owner) {
          problems.push(
            `frontend ${nodePort ? "node port" : f.ip}:${f.port} is claimed by ${owner.service} and ${svc.name}; kept ${owner.service}`,
          );
          continue;
        }
        frontends.set(ks, {
          key,
          service: svc.name,
          natType: NatType.service,
          natMode: MODE[f.mode] ?? BpfNatMode.clusterIp,
          flags: local ? SY_FE_LOCAL_ONLY : 0,
          affinityTimeoutS: svc.body.value.affinityTimeoutSeconds,
          portId: svc.body.value.affinityTimeoutSeconds ? computePortId(svc.name, f.portName, f.protocol) : 0,
          backends: chooseBackends(candidates, entry.family, svc.body.value.trafficDistribution, node),
        });
      }
    }
  }
  return { frontends, nodeIps, problems };
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
  slices: Resource[],
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
