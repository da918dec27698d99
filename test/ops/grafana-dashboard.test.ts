/**
 * deploy/grafana/switchyard.json: a Grafana dashboard whose every PromQL
 * expression names only metrics the hub and the agent export (their
 * prom-client registries, built with placeholder sources: only the names
 * are read, nothing is collected), with the data source as a variable.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { createHubMetrics } from "@switchyard/hub/admin/metrics";
import { createAgentMetrics } from "@switchyard/nodeagent/metrics/agent-metrics";
import client from "prom-client";
import { REPO } from "../kit/proc.ts";

const DASHBOARD = path.join(REPO, "deploy/grafana/switchyard.json");

/** PromQL functions, aggregations and keywords (what is not a metric name in an expression) */
const PROMQL_WORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "inf",
  "nan",
]);

/** Pure: the metric names an expression selects (label matchers, strings, ranges and functions left out). */
export function metricNamesOf(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ");
  const names: string[] = [];
  for (const m of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = bare.slice(m.index + m[0].length).trimStart();
    if (after.startsWith("(")) continue; // a function or aggregation
    if (PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    names.push(m[0]);
  }
  return names;
}

/** every exported sample name of a registry (a histogram's _bucket, _sum and _count) */
function exportedNames(registry: client.Registry): Set<string> {
  const out = new Set<string>();
  for (const m of registry.getMetricsAsArray()) {
    const { name } = m as unknown as { name: string };
    out.add(name);
    if (m instanceof client.Histogram || m instanceof client.Summary)
      for (const s of ["_bucket", "_sum", "_count"]) out.add(name + s);
  }
  return out;
}

type Panel = {
  type: string;
  title?: string;
  datasource?: { uid?: string };
  targets?: Array<{ expr?: string; datasource?: { uid?: string } }>;
  panels?: Panel[];
};

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

describe("Grafana dashboard", () => {
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, "utf8")) as {
    title: string;
    uid: string;
    schemaVersion: number;
    templating: { list: Array<{ type: string; name: string; query?: unknown }> };
    panels: Panel[];
  };

  it("reads metric names out of PromQL", () => {
    assert.deepEqual(
      metricNamesOf(
        'histogram_quantile(0.99, sum by (le, view) (rate(switchyard_hub_view_convergence_seconds_bucket{a="b(c)"}[5m])))',
      ),
      ["switchyard_hub_view_convergence_seconds_bucket"],
    );
    assert.deepEqual(metricNamesOf("max by (map) (a_entries / on (instance, map) a_capacity)"), [
      "a_entries",
      "a_capacity",
    ]);
  });

  it("is a dashboard with the data source as a variable, used by every panel and query", () => {
    assert.equal(dash.title, "Switchyard");
    assert.ok(dash.uid && dash.schemaVersion >= 30);
    const ds = dash.templating.list.find((v) => v.type === "datasource");
    assert.ok(ds, "a datasource variable");
    assert.equal(ds.query, "prometheus");
    const queried = allPanels(dash.panels).filter((p) => p.type !== "row");
    assert.ok(queried.length >= 15);
    for (const p of queried) {
      assert.equal(p.datasource?.uid, `\${${ds.name}}`, `panel ${p.title}`);
      assert.ok((p.targets ?? []).length > 0, `panel ${p.title} has queries`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, `\${${ds.name}}`, `panel ${p.title}`);
    }
  });

  it("names only metrics the hub and the agent export, and shows both", () => {
    const hub = createHubMetrics({
      world: {} as never,
      clusters: {} as never,
      assignments: { convergence: {} } as never,
    });
    const agent = createAgentMetrics({
      events: () => undefined,
      datapathCounters: () => ({}),
      mapEntries: () => ({}),
      mapCapacity: () => new Map(),
      resolutions: () => undefined,
      sync: () => ({
        synced: false,
        hubConnected: false,
        lastAppliedAt: undefined,
        pendingChanges: 0,
        failingEntries: 0,
      }),
    });
    const known = new Set([...exportedNames(hub), ...exportedNames(agent)]);
    const used = new Set<string>();
    for (const p of allPanels(dash.panels))
      for (const t of p.targets ?? []) {
        const names = metricNamesOf(t.expr ?? "");
        assert.ok(names.length > 0, `panel ${p.title}: "${t.expr}" names no metric`);
        for (const n of names) {
          assert.ok(known.has(n), `panel ${p.title}: ${n} is exported by neither the hub nor the agent`);
          used.add(n);
        }
      }
    // the metrics issue 17 asks to see
    for (const n of [
      "switchyard_agent_resolutions_total",
      "switchyard_agent_events_dropped_total",
      "switchyard_agent_map_entries",
      "switchyard_agent_map_capacity",
      "switchyard_agent_serving_pinned_without_hub",
      "switchyard_agent_last_change_age_seconds",
      "switchyard_hub_agents_connected",
      "switchyard_hub_view_convergence_seconds_bucket",
    ])
      assert.ok(used.has(n), `the dashboard shows ${n}`);
  });
});
