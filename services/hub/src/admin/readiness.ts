/**
 * Pure: the hub's /readyz. Ready once its state is loaded (the metrics port
 * opens after it is) and every configured cluster has been listed or
 * restored from its last known state — or its source failed to start (the
 * hub serves the others; `switchyard_hub_cluster_failed` and `clusters` say
 * why), so one bad kubeconfig does not take every agent's hub away.
 */
import type { Readiness } from "@switchyard/lib/metrics-server";
import type { ClusterSync } from "../model/world.ts";

export type ClusterReadiness = { name: string; sync: ClusterSync | undefined; failed: boolean };

export function computeHubReadiness(clusters: readonly ClusterReadiness[]): Readiness {
  const waiting = clusters.filter((c) => !c.failed && (c.sync === undefined || c.sync === "pending"));
  if (waiting.length === 0) return { ready: true };
  return {
    ready: false,
    reason: `clusters not listed yet and with no last known state: ${waiting.map((c) => c.name).join(", ")}`,
  };
}
