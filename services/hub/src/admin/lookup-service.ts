/**
 * The admin API's Lookup: finds the node's cluster and view, reads the
 * snapshot that node's agents receive, and asks the pure computeLookup.
 */
import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import type { LookupRequest, LookupResponse } from "@switchyard/proto/admin";
import type { World } from "../model/world.ts";
import type { PolicyBook } from "../status/policy-status.ts";
import type { Reach } from "../translate/compute-resources.ts";
import type { SnapshotCache, View } from "../xds/snapshots.ts";
import { computeLookup } from "./lookup.ts";

export type LookupDeps = {
  world: World;
  snapshots: Pick<SnapshotCache, "get">;
  viewOf: (cluster: string, reach: Reach) => View;
  clusterNames: () => string[];
  /** the agents connected to this hub */
  agents: () => ReadonlyArray<{ node: string; cluster: string }>;
  policies?: Pick<PolicyBook, "rows"> | undefined;
};

function invalid(message: string): Error & { code: grpc.status } {
  return Object.assign(new Error(message), { code: grpc.status.INVALID_ARGUMENT });
}

export function answerLookup(deps: LookupDeps, req: LookupRequest): LookupResponse {
  if (!req.node) throw invalid("give --node NODE: the node whose view to look in");
  if (!net.isIP(req.ip)) throw invalid(`"${req.ip}" is not an IP address (IP:PORT[/tcp|udp])`);
  if (!Number.isInteger(req.port) || req.port < 1 || req.port > 65535)
    throw invalid(`port ${req.port} is not from 1 to 65535`);
  const protocol = (req.protocol || "tcp").toLowerCase();
  if (protocol !== "tcp" && protocol !== "udp") throw invalid(`protocol "${req.protocol}" is not tcp or udp`);
  const reach = req.reach || "pod";
  if (reach !== "pod" && reach !== "nodeport") throw invalid(`reach "${req.reach}" is not pod or nodeport`);
  const names = deps.clusterNames();
  let cluster = req.cluster;
  if (!cluster) {
    const of = [
      ...new Set(
        deps
          .agents()
          .filter((a) => a.node === req.node)
          .map((a) => a.cluster),
      ),
    ];
    if (of.length === 1) cluster = of[0]!;
    else if (names.length === 1) cluster = names[0]!;
    else
      throw invalid(
        of.length > 1
          ? `node ${req.node} has agents in clusters ${of.join(", ")}: give --cluster`
          : `no agent named ${req.node} is connected to this hub: give --cluster (one of ${names.join(", ")})`,
      );
  }
  if (!names.includes(cluster))
    throw invalid(`cluster "${cluster}" is not a cluster of this hub (${names.join(", ")})`);
  const view = deps.viewOf(cluster, reach);
  const snap = deps.snapshots.get(view, req.node);
  const shared = snap.base ?? snap;
  const servicesWithIp: string[] = [];
  for (const [c, st] of deps.world.clusters)
    for (const s of st.services.values())
      if (
        [...s.clusterIPs, ...s.externalIPs, ...s.loadBalancerIPs].some(
          (a) => a.toLowerCase() === req.ip.toLowerCase(),
        )
      )
        servicesWithIp.push(`${c}/${s.namespace}/${s.name}`);
  return computeLookup({
    node: req.node,
    cluster,
    view: view.clusters,
    ip: req.ip,
    port: req.port,
    protocol,
    nodeAddresses: deps.world.clusters.get(cluster)?.nodes.get(req.node)?.addresses ?? [],
    resources: [...shared.resources.values(), ...(snap.overlay?.values() ?? [])],
    policies: deps.policies?.rows() ?? [],
    servicesWithIp,
    diagnosticsOf: (name) => shared.diagnosticsOf(name),
  });
}
