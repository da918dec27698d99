/**
 * The agent's metrics port: /metrics from live state, /healthz, and /readyz
 * (ready when the maps are loaded and hold something to serve: a complete
 * view from a hub, the held view, or what an earlier run pinned).
 */
import type http from "node:http";
import { type Readiness, serveMetricsAndHealth } from "@switchyard/lib/metrics-server";
import type { AgentCore } from "../agent.ts";
import type { LibbpfDatapath } from "../bpf/datapath.ts";
import { readMapCapacities } from "../bpf/map-stats.ts";
import type { EventCounts } from "../events/event-counts.ts";
import { serviceDisplayName } from "../events/nat-event.ts";
import { createAgentMetrics } from "./agent-metrics.ts";

export type AgentMetricsDeps = {
  dp: LibbpfDatapath;
  core: AgentCore;
  events: (() => EventCounts) | undefined;
  hubConnected: () => boolean;
  lastAppliedAt: () => number | undefined;
};

/** Pure: /readyz's answer from the agent's state. */
export function computeAgentReadiness(s: {
  synced: boolean;
  mapsStartedEmpty: boolean;
  viewInMaps: boolean;
  upgradeStaged: boolean;
}): Readiness {
  if (s.synced || s.viewInMaps || !s.mapsStartedEmpty || s.upgradeStaged) return { ready: true };
  return {
    ready: false,
    reason: "no complete view from a hub yet and the maps held nothing at start: nothing to serve",
  };
}

export async function serveAgentMetrics(
  deps: AgentMetricsDeps,
  host: string,
  port: number,
): Promise<http.Server> {
  const { dp, core } = deps;
  const capacity = readMapCapacities(dp.maps);
  const registry = createAgentMetrics({
    events: () => deps.events?.(),
    datapathCounters: () => dp.maps.counters(),
    mapEntries: () => core.mapEntries,
    mapCapacity: () => capacity,
    resolutions: () => {
      return [...dp.maps.readResolutionCounters()].map(([svcId, counts]) => {
        const name = core.serviceName(svcId);
        return [name ? serviceDisplayName(name) : `unknown(${svcId})`, counts] as [
          string,
          Record<string, bigint>,
        ];
      });
    },
    sync: () => ({
      synced: core.syncState.state === "synced",
      hubConnected: deps.hubConnected(),
      lastAppliedAt: deps.lastAppliedAt(),
      pendingChanges: core.pendingChanges,
      failingEntries: core.retries.size,
    }),
  });
  return serveMetricsAndHealth(
    {
      metrics: async () => ({ contentType: registry.contentType, text: await registry.metrics() }),
      ready: () =>
        computeAgentReadiness({
          synced: core.syncState.state === "synced",
          mapsStartedEmpty: core.mapsStartedEmpty,
          viewInMaps: core.viewInMaps,
          upgradeStaged: dp.staged,
        }),
    },
    host,
    port,
  );
}
