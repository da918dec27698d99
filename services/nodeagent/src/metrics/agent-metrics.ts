/**
 * The agent's Prometheus metrics, read from live state at scrape time
 * (nothing is counted twice): events and where they went, map fill,
 * resolutions per Service from the kernel's per-Service counters, sync with
 * the hub, and the process. Every source is a function, so a test passes
 * fakes.
 */
import client from "prom-client";
import { EVENT_DROP_REASONS, type EventCounts } from "../events/event-counts.ts";

export type AgentMetricsSources = {
  /** undefined while events are off */
  events: () => EventCounts | undefined;
  /** sy_counters summed over the CPUs (cumulative since the maps were created) */
  datapathCounters: () => Record<string, bigint>;
  /** entries the agent wrote, per map (maps the programs fill are not counted) */
  mapEntries: () => Record<string, number>;
  /** max_entries per map */
  mapCapacity: () => ReadonlyMap<string, number>;
  /** per Service name, resolutions per result; undefined when the build has no per-Service counters */
  resolutions: () => Iterable<[service: string, counts: Record<string, bigint>]> | undefined;
  sync: () => {
    /** a complete view from a hub has been applied since the agent started */
    synced: boolean;
    hubConnected: boolean;
    /** ms epoch of the last change applied to the maps (undefined: none since start) */
    lastAppliedAt: number | undefined;
    pendingChanges: number;
    failingEntries: number;
  };
  now?: () => number;
};

/** counters of sy_counters shown as datapath totals (the event ones have metrics of their own) */
const DATAPATH_COUNTERS = [
  "translated",
  "miss",
  "failed",
  "reversed",
  "affinity_hit",
  "udp_destroyed",
  "tcp_slot_taken",
];

export function createAgentMetrics(src: AgentMetricsSources): client.Registry {
  const registry = new client.Registry();
  const now = src.now ?? Date.now;
  const startedAt = now();
  client.collectDefaultMetrics({ register: registry, prefix: "switchyard_agent_" });
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: client.Gauge) => void) =>
    new client.Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        fill(this);
      },
    });
  const counter = (name: string, help: string, labelNames: string[], fill: (c: client.Counter) => void) =>
    new client.Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        fill(this);
      },
    });
  // one read of each source per scrape, shared by the metrics made from it: prom-client calls the
  // collect functions in the order the metrics were made, the first of each group reads
  let events: EventCounts | undefined;
  counter(
    "switchyard_agent_events_emitted_total",
    "NAT events the programs emitted since the agent started (read from the ring, plus those the full ring refused); = published + buffered + dropped",
    [],
    (c) => {
      events = src.events();
      if (events) c.inc(events.emitted);
    },
  );
  counter(
    "switchyard_agent_events_published_total",
    "NAT events the NATS server confirmed (a flush answered after they were written)",
    [],
    (c) => events && c.inc(events.published),
  );
  counter(
    "switchyard_agent_events_dropped_total",
    "NAT events lost, by reason: ring_full (the kernel ring buffer was full: the agent read too slowly), buffer_full (NATS away and the --events-buffer-bytes budget used up), publish_error (the NATS client refused the event), stopped (held when the agent stopped)",
    ["reason"],
    (c) => {
      if (events) for (const r of EVENT_DROP_REASONS) c.inc({ reason: r }, events.dropped[r]);
    },
  );
  counter(
    "switchyard_agent_events_sampled_out_total",
    "translations that emitted no event because of sampling (--event-sample, `events --sample`)",
    [],
    (c) => events && c.inc(events.sampledOut),
  );
  gauge(
    "switchyard_agent_events_buffered",
    "NAT events held by the agent, not yet confirmed by NATS",
    [],
    (g) => events && g.set(events.held),
  );
  gauge(
    "switchyard_agent_events_buffered_bytes",
    "bytes of the events buffer in use",
    [],
    (g) => events && g.set(events.heldBytes),
  );
  gauge(
    "switchyard_agent_events_buffer_capacity_bytes",
    "the events buffer's budget (--events-buffer-bytes)",
    [],
    (g) => events && g.set(events.budgetBytes),
  );
  gauge(
    "switchyard_agent_nats_connected",
    "1 while the agent is connected to NATS (0 with events off, as every events metric)",
    [],
    (g) => events && g.set(events.nats === "connected" ? 1 : 0),
  );
  counter(
    "switchyard_agent_datapath_total",
    "the programs' counters since the maps were created: translated, miss (no frontend), failed (no backend), reversed (replies and getpeername restored), affinity_hit, udp_destroyed, tcp_slot_taken (a TCP connect whose reverse-translation slot another open socket held)",
    ["counter"],
    (c) => {
      const all = src.datapathCounters();
      for (const name of DATAPATH_COUNTERS) c.inc({ counter: name }, Number(all[name] ?? 0n));
    },
  );
  let resolutions: Array<[string, Record<string, bigint>]> = [];
  counter(
    "switchyard_agent_resolutions_total",
    "connects and datagrams resolved per Service and result (ok, noBackend, backendMissing, noLocalBackend, familyMismatch), from the kernel's per-Service per-CPU counters: exact with events on, off or sampled; since the Service's name was written",
    ["service", "result"],
    (c) => {
      resolutions = [...(src.resolutions() ?? [])];
      for (const [service, counts] of resolutions)
        for (const [result, n] of Object.entries(counts))
          if (result !== "fallback") c.inc({ service, result }, Number(n));
    },
  );
  counter(
    "switchyard_agent_resolutions_fallback_total",
    "of those, the local-redirect resolutions that went to the fallback set",
    ["service"],
    (c) => {
      for (const [service, counts] of resolutions) c.inc({ service }, Number(counts["fallback"] ?? 0n));
    },
  );
  gauge(
    "switchyard_agent_map_entries",
    "entries in each map the agent writes (from its mirror of them)",
    ["map"],
    (g) => {
      for (const [map, n] of Object.entries(src.mapEntries())) g.set({ map }, n);
    },
  );
  gauge(
    "switchyard_agent_map_capacity",
    "max_entries of each map (sy_events: the ring's size in bytes)",
    ["map"],
    (g) => {
      for (const [map, n] of src.mapCapacity()) g.set({ map }, n);
    },
  );
  let sync: ReturnType<AgentMetricsSources["sync"]> | undefined;
  gauge(
    "switchyard_agent_hub_connected",
    "1 while the agent holds an assignment stream to a hub",
    [],
    (g) => {
      sync = src.sync();
      g.set(sync.hubConnected ? 1 : 0);
    },
  );
  gauge(
    "switchyard_agent_serving_pinned_without_hub",
    "1 while the agent serves the pinned maps as it found them, with no complete view from a hub since it started",
    [],
    (g) => sync && g.set(sync.synced ? 0 : 1),
  );
  gauge(
    "switchyard_agent_last_change_age_seconds",
    "seconds since the agent last applied a change from a hub to the maps (since it started, before the first)",
    [],
    (g) => {
      if (sync) g.set((now() - (sync.lastAppliedAt ?? startedAt)) / 1000);
    },
  );
  gauge(
    "switchyard_agent_changes_pending",
    "resource changes received from a hub and acknowledged, not in the maps yet (their view is not complete)",
    [],
    (g) => sync && g.set(sync.pendingChanges),
  );
  gauge(
    "switchyard_agent_entries_failing",
    "map entries whose write failed and is retried with backoff",
    [],
    (g) => sync && g.set(sync.failingEntries),
  );
  return registry;
}
