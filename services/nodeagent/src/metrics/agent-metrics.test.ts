import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { computeEventCounts } from "../events/event-counts.ts";
import { EventOutbox } from "../events/event-outbox.ts";
import { createAgentMetrics } from "./agent-metrics.ts";
import { computeAgentReadiness } from "./serve-agent-metrics.ts";

describe("agent metrics", () => {
  it("shows the sources' figures, read at scrape time", async () => {
    const outbox = new EventOutbox(1000);
    for (let seq = 1; seq <= 12; seq++) outbox.offer({ seq, subject: "s", data: new Uint8Array(100) });
    outbox.take(3, 1 << 20);
    outbox.confirm();
    const registry = createAgentMetrics({
      events: () =>
        computeEventCounts(
          outbox.counts(),
          1000,
          "disconnected",
          { events_dropped: 7n, events_sampled_out: 9n },
          { events_dropped: 2n, events_sampled_out: 0n },
        ),
      datapathCounters: () => ({ translated: 40n, miss: 1n }),
      mapEntries: () => ({ sy_frontends: 3 }),
      mapCapacity: () => new Map([["sy_frontends", 65536]]),
      resolutions: () => [["east/shop/web", { ok: 30n, noBackend: 2n, fallback: 1n }]],
      sync: () => ({
        synced: false,
        hubConnected: false,
        lastAppliedAt: 1000,
        pendingChanges: 4,
        failingEntries: 1,
      }),
      now: () => 3500,
    });
    const text = await registry.metrics();
    const want = [
      // 12 offered + 5 refused by the full ring since start; 1000 bytes hold 6 events of 165: 3 published, 3 held
      "switchyard_agent_events_emitted_total 17",
      "switchyard_agent_events_published_total 3",
      'switchyard_agent_events_dropped_total{reason="ring_full"} 5',
      'switchyard_agent_events_dropped_total{reason="buffer_full"} 6',
      "switchyard_agent_events_buffered 3",
      "switchyard_agent_events_sampled_out_total 9",
      "switchyard_agent_nats_connected 0",
      'switchyard_agent_datapath_total{counter="translated"} 40',
      'switchyard_agent_resolutions_total{service="east/shop/web",result="ok"} 30',
      'switchyard_agent_resolutions_total{service="east/shop/web",result="noBackend"} 2',
      'switchyard_agent_resolutions_fallback_total{service="east/shop/web"} 1',
      'switchyard_agent_map_entries{map="sy_frontends"} 3',
      'switchyard_agent_map_capacity{map="sy_frontends"} 65536',
      "switchyard_agent_hub_connected 0",
      "switchyard_agent_serving_pinned_without_hub 1",
      "switchyard_agent_last_change_age_seconds 2.5",
      "switchyard_agent_changes_pending 4",
      "switchyard_agent_entries_failing 1",
    ];
    for (const line of want) assert.ok(text.split("\n").includes(line), `${line} in:\n${text}`);
    assert.ok(!text.includes('result="fallback"'), "fallback is a metric of its own, not a result");
  });

  it("reads 0 for events while they are off, and the change age from the start before any change", async () => {
    let t = 10_000;
    const registry = createAgentMetrics({
      events: () => undefined,
      datapathCounters: () => ({}),
      mapEntries: () => ({}),
      mapCapacity: () => new Map(),
      resolutions: () => undefined,
      sync: () => ({
        synced: true,
        hubConnected: true,
        lastAppliedAt: undefined,
        pendingChanges: 0,
        failingEntries: 0,
      }),
      now: () => t,
    });
    t += 4000;
    const text = await registry.metrics();
    assert.ok(text.includes("switchyard_agent_events_emitted_total 0"));
    assert.ok(text.includes("switchyard_agent_last_change_age_seconds 4"));
    assert.ok(text.includes("switchyard_agent_serving_pinned_without_hub 0"));
  });

  it("is ready with something to serve", () => {
    const base = { synced: false, mapsStartedEmpty: true, viewInMaps: false, upgradeStaged: false };
    assert.equal(computeAgentReadiness(base).ready, false);
    assert.equal(computeAgentReadiness({ ...base, synced: true }).ready, true);
    assert.equal(computeAgentReadiness({ ...base, mapsStartedEmpty: false }).ready, true, "pinned maps");
    assert.equal(computeAgentReadiness({ ...base, viewInMaps: true }).ready, true, "the held view");
    assert.equal(
      computeAgentReadiness({ ...base, upgradeStaged: true }).ready,
      true,
      "the previous build serves",
    );
  });
});
