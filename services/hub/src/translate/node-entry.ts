/**
 * Pure: what each node's agent DNATs from its entry addresses — the
 * per-node resource `entry/<cluster>/<node>` (NodeEntry) — from the
 * accepted nodeProxy BalancingPolicies. A client node's agent sends a
 * nodeProxy frontend to <pod's node entry address>:<port>
 * (translate/balancing.ts); the agent on that node makes entry:port reach
 * the policy's selected ready pods there, at <pod IP>:<same port>
 * (docs/dataplane.md, "Node entry DNAT"). Sent to that node's agents only,
 * as the LocalRedirectPolicies' `lrpb/…/<node>` are.
 */
import { createHash } from "node:crypto";
import { ipFamily } from "@switchyard/lib/ip";
import {
  type BalancingAssignment,
  type EntryPort,
  NodeEntry,
  type Resource,
} from "@switchyard/proto/assignment";
import type { BalancingPolicy, Pod } from "../model/types.ts";
import type { ClusterState } from "../model/world.ts";
import { balancingResourceName, nodeEntryAddresses } from "./balancing.ts";

type Put = (name: string, r: Resource | undefined) => void;

export function nodeEntryResourceName(cluster: string, node: string): string {
  return `entry/${cluster}/${node}`;
}

/**
 * The entry ports a nodeProxy policy takes in its cluster's conflict space
 * (translate/local-redirect.ts decides both policy kinds there): one key per
 * toPort, `entry|<port>|<protocol>`. An entry node DNATs entry:port to one
 * policy's pods only, so two policies of a cluster on the same port and
 * protocol conflict (on every node: which nodes hold pods of each changes
 * with the pods, the verdict must not) and the older wins.
 */
export function entryPortClaims(p: BalancingPolicy): string[] {
  const be = p.backend;
  if (be.kind !== "serviceEndpoint" || be.redirectMode !== "nodeProxy") return [];
  return [...new Set(be.toPorts.map((t) => `entry|${t.port}|${t.protocol}`))].sort();
}

/**
 * One nodeProxy policy's entry ports, by node: for each node with selected
 * ready (not terminating) pods and an entry address of a frontend family,
 * every port of the policy (as resolved in its BalancingAssignment) on that
 * address → those pods' addresses of the family at the same port. A pod
 * without a named toPort at the resolved number is left out, as the
 * assignment leaves it out.
 */
export function computeEntryPorts(
  p: BalancingPolicy,
  body: BalancingAssignment,
  state: ClusterState,
  pods: readonly Pod[],
): Map<string, EntryPort[]> {
  const out = new Map<string, EntryPort[]>();
  const be = p.backend;
  if (be.kind !== "serviceEndpoint" || be.redirectMode !== "nodeProxy") return out;
  const policy = balancingResourceName(p);
  const families = new Set(body.frontends.map((f) => ipFamily(f.ip)).filter((f) => f !== undefined));
  const named = be.toPorts.filter((t) => t.targetName !== undefined);
  const byNode = new Map<string, Pod[]>();
  for (const pod of pods) {
    if (!pod.ready || pod.terminating || pod.nodeName === undefined) continue;
    const hasPorts = named.every((t) => {
      const resolved = body.ports.find((x) => x.name === t.name)?.port;
      return pod.containerPorts.some(
        (c) => c.name === t.targetName && c.protocol === t.protocol && c.port === resolved,
      );
    });
    if (!hasPorts) continue;
    const list = byNode.get(pod.nodeName) ?? [];
    list.push(pod);
    byNode.set(pod.nodeName, list);
  }
  for (const [node, list] of byNode) {
    const ports: EntryPort[] = [];
    for (const address of nodeEntryAddresses(state, node)) {
      const family = ipFamily(address);
      if (family === undefined || !families.has(family)) continue;
      const ips = [...new Set(list.flatMap((pod) => pod.ips.filter((ip) => ipFamily(ip) === family)))].sort();
      if (ips.length === 0) continue;
      for (const sp of body.ports)
        ports.push({
          address,
          port: sp.port,
          protocol: sp.protocol,
          targets: ips.map((ip) => ({ ip, port: sp.port })),
          policy,
        });
    }
    if (ports.length > 0) out.set(node, ports);
  }
  return out;
}

function compareEntry(a: EntryPort, b: EntryPort): number {
  const ka = `${a.address}|${a.protocol}|${String(a.port).padStart(5, "0")}|${a.policy}`;
  const kb = `${b.address}|${b.protocol}|${String(b.port).padStart(5, "0")}|${b.policy}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/**
 * The per-node entry resources of one cluster, kept incrementally: each
 * nodeProxy winner's entry ports by node; a node's resource is written again
 * only when a policy's ports on it changed, and removed when none is left.
 */
export class NodeEntries {
  /** policy ns/name → node → its entry ports there */
  private readonly byPolicy = new Map<string, Map<string, EntryPort[]>>();
  /** node → the policies with entry ports on it */
  private readonly onNode = new Map<string, Set<string>>();

  clear(): void {
    this.byPolicy.clear();
    this.onNode.clear();
  }

  /** Sets (or, with undefined, drops) one policy's entry ports and rewrites the nodes that changed. */
  set(policyKey: string, cluster: string, perNode: Map<string, EntryPort[]> | undefined, put: Put): void {
    const before = this.byPolicy.get(policyKey) ?? new Map<string, EntryPort[]>();
    const after = perNode ?? new Map<string, EntryPort[]>();
    if (after.size > 0) this.byPolicy.set(policyKey, after);
    else this.byPolicy.delete(policyKey);
    for (const node of new Set([...before.keys(), ...after.keys()])) {
      if (JSON.stringify(before.get(node)) === JSON.stringify(after.get(node))) continue;
      let set = this.onNode.get(node);
      if (after.has(node)) {
        if (!set) {
          set = new Set();
          this.onNode.set(node, set);
        }
        set.add(policyKey);
      } else if (set?.delete(policyKey) && set.size === 0) this.onNode.delete(node);
      put(nodeEntryResourceName(cluster, node), this.resourceOf(cluster, node));
    }
  }

  private resourceOf(cluster: string, node: string): Resource | undefined {
    const ports: EntryPort[] = [];
    for (const k of this.onNode.get(node) ?? []) ports.push(...(this.byPolicy.get(k)?.get(node) ?? []));
    if (ports.length === 0) return undefined;
    ports.sort(compareEntry);
    const body: NodeEntry = { ports };
    const name = nodeEntryResourceName(cluster, node);
    return {
      name,
      version: createHash("sha256").update(NodeEntry.encode(body).finish()).digest("hex").slice(0, 16),
      body: { $case: "nodeEntry", value: body },
    };
  }
}
