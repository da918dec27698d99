/**
 * Small assignment resources and a readable view of the maps, for the
 * agent's unit tests (FakeMaps): one ClusterIP Service on port 80 and its
 * slice of backends on 8080.
 */
import {
  BackendSlice,
  NatMode,
  Protocol,
  type Resource,
  ServiceAssignment,
  StreamAssignmentsResponse,
} from "@switchyard/proto/assignment";
import type { MapState } from "../bpf/maps.ts";

export function svc(name: string, vip: string): Resource {
  const value = ServiceAssignment.fromPartial({
    cluster: "c",
    namespace: "ns",
    name,
    frontends: [
      {
        ip: vip,
        port: 80,
        protocol: Protocol.PROTOCOL_TCP,
        mode: NatMode.NAT_MODE_CLUSTER_IP,
        portName: "p",
      },
    ],
  });
  return { name: `svc/c/ns/${name}`, version: vip, body: { $case: "service", value } };
}

export function eps(service: string, ips: string[]): Resource {
  const value = BackendSlice.fromPartial({
    service: `svc/c/ns/${service}`,
    ports: [{ name: "p", port: 8080, protocol: Protocol.PROTOCOL_TCP }],
    endpoints: ips.map((ip) => ({ addresses: [ip], nodeName: "node-2", ready: true, serving: true })),
  });
  return { name: `eps/c/ns/${service}`, version: ips.join(","), body: { $case: "backendSlice", value } };
}

/** a hub message that completes the view */
export const complete = (resources: Resource[]) =>
  StreamAssignmentsResponse.fromPartial({ nonce: "n", resources, viewComplete: true });

/** VIP → backend IPs, as the maps hold them */
export function resolved(s: MapState): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const { key, value } of s.frontends.values())
    out[key.ip] = (s.backendSets.get(value.setId) ?? []).map((b) => b.ip);
  return out;
}
