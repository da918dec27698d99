/**
 * Pure: one BalancingPolicy (`bp/…`, BalancingAssignment) → the frontends
 * it takes on this node. The hub has addressed the backends already (pod
 * IPs, node addresses, entry addresses or explicit addresses, by mode), so
 * the agent only picks, per frontend, the backends of the frontend's family
 * at the port of the frontend's port name: ready ones, else serving and
 * terminating ones (as for Services).
 *
 * - A policy with a nodeSelector (selected_nodes_only) applies only on a
 *   node holding its `bpn/…/<node>` marker; elsewhere it takes nothing.
 * - A Service frontend with no usable backend here is not taken: the
 *   Service's own entry stays (the policy falls back to the Service). An
 *   address frontend with none is written with an empty set: connects to it
 *   are refused (ECONNREFUSED, noBackend).
 * - Its entries win over a Service's entry of the same key, as a
 *   LocalRedirectPolicy's do (the hub never sends two policies for one
 *   frontend).
 */
import { ipFamily } from "@switchyard/lib/ip";
import { type BalancingAssignment, RedirectFrontendKind, type Resource } from "@switchyard/proto/assignment";
import { NatMode as BpfNatMode, NatType } from "../bpf/layout.ts";
import type { Backend } from "../bpf/maps.ts";
import { compareBackends, type DesiredFrontend, policyFrontendKeys } from "./frontends.ts";

/** The policy a `bpn/<cluster>/<ns>/<name>/<node>` marker names, when it is this node's (others' are ignored). */
export function balancingNodeOf(r: Resource | undefined, node: string): string | undefined {
  if (r?.body?.$case !== "balancingNode") return undefined;
  return r.name.slice(r.name.lastIndexOf("/") + 1) === node ? r.body.value.policy : undefined;
}

/** One BalancingPolicy's frontends on this node (`selected`: this node holds its bpn marker). */
export function computeBalancingFrontends(
  name: string,
  bp: BalancingAssignment,
  selected: boolean,
): Array<[string, DesiredFrontend]> {
  if (bp.selectedNodesOnly && !selected) return [];
  const out: Array<[string, DesiredFrontend]> = [];
  const byService = bp.frontendKind === RedirectFrontendKind.REDIRECT_FRONTEND_KIND_SERVICE;
  for (const { f, family, key, ks } of policyFrontendKeys(bp.frontends)) {
    const port = bp.ports.find((p) => p.name === f.portName && p.protocol === f.protocol);
    const ready: Backend[] = [];
    const terminating: Backend[] = [];
    if (port)
      for (const e of bp.endpoints) {
        const ip = e.addresses[0];
        if (ip === undefined || ipFamily(ip) !== family) continue;
        if (e.ready) ready.push({ ip, port: port.port });
        else if (e.serving && e.terminating) terminating.push({ ip, port: port.port });
      }
    const chosen = ready.length > 0 ? ready : terminating;
    const unique = new Map(chosen.map((b) => [`${b.ip}|${b.port}`, b]));
    const backends = [...unique.values()].sort(compareBackends);
    // no usable backend: a Service frontend stays the Service's
    if (backends.length === 0 && byService) continue;
    out.push([
      ks,
      {
        key,
        service: name,
        natType: NatType.balancing,
        // TODO(datapath): BalancingService/BalancingAddress nat modes once switchyard.h names them
        natMode: BpfNatMode.clusterIp,
        flags: 0,
        affinityTimeoutS: 0,
        portId: 0,
        backends,
      },
    ]);
  }
  return out;
}
