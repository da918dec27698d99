/**
 * `npm run bench:agent` — the node agent's apply path at scale, in process
 * (in-memory maps, no kernel): a view of 10,000 Services / 100,000
 * endpoints arrives in one delta, then one endpoint changes 500 times.
 * Compares, in the same run, the incremental apply (what the agent does)
 * with a full recompute + full plan of the same state (what it did before):
 * per change p50/p99 and the ratio. Writes bench/results/agent.json.
 *
 *   node bench/agent.ts [--services 10000]
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { silentLogger } from "@switchyard/lib/log";
import { type Resource, StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { World, type WorldChange } from "../services/hub/src/model/world.ts";
import { WorldWriter } from "../services/hub/src/sources/source.ts";
import { ViewTranslator } from "../services/hub/src/translate/compute-resources.ts";
import { AgentCore } from "../services/nodeagent/src/agent.ts";
import { FakeMaps } from "../services/nodeagent/src/bpf/maps.ts";
import { computeDesired } from "../services/nodeagent/src/desired/compute-desired.ts";
import { planMaps } from "../services/nodeagent/src/plan/plan-maps.ts";
import { REPO } from "../test/kit/proc.ts";
import { benchService, benchSlice, ENDPOINTS_PER_SERVICE } from "./cluster.ts";
import { machine, percentile } from "./stats.ts";

const { values } = parseArgs({ options: { services: { type: "string", default: "10000" } } });
const SERVICES = Number(values.services);
const CHANGES = 500;
const world = new World();
const w = new WorldWriter(world, "bench", silentLogger());
for (let i = 0; i < SERVICES; i++) {
  w.upsert(benchService(i));
  w.upsert(benchSlice(i));
}
const t = new ViewTranslator();
t.rebuild([world.cluster("bench")]);
const msg = (resources: Resource[]) =>
  StreamAssignmentsResponse.fromPartial({ nonce: "n", resources, viewComplete: true });
const maps = new FakeMaps();
const core = new AgentCore(maps, "node-0", [], silentLogger());
let t0 = performance.now();
core.onDelta(msg([...t.snapshot().resources.values()]));
const coldMs = performance.now() - t0;

const pending: WorldChange[] = [];
world.onChange((_c, ch) => ch && pending.push(ch));
const inc: number[] = [];
const full: number[] = [];
for (let r = 1; r <= CHANGES; r++) {
  const i = (r * 7919) % SERVICES;
  w.upsert(benchSlice(i, r % ENDPOINTS_PER_SERVICE));
  const changed = t.update([world.cluster("bench")], pending.splice(0));
  const rs = [...changed].flatMap((n) => t.snapshot().resources.get(n) ?? []);
  t0 = performance.now();
  core.onDelta(msg(rs));
  inc.push(performance.now() - t0);
  if (core.stats.lastPlanOps === 0) throw new Error(`change ${r} wrote nothing`);
  // the same state, computed and planned in full (nothing left to write: measures the work only)
  t0 = performance.now();
  const ops = planMaps(
    computeDesired(core.store.resources.values(), { name: "node-0", addresses: [] }),
    maps.read(),
  ).ops;
  full.push(performance.now() - t0);
  if (ops.length !== 0) throw new Error(`change ${r}: the incremental apply left ${ops.length} ops undone`);
}
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const out = {
  machine: machine(),
  date: new Date().toISOString(),
  services: SERVICES,
  endpoints: SERVICES * 10,
  changes: CHANGES,
  cold_apply_whole_view_ms: Math.round(coldMs),
  one_endpoint_change_incremental_p50_ms: r3(percentile(inc, 50)),
  one_endpoint_change_incremental_p99_ms: r3(percentile(inc, 99)),
  one_endpoint_change_full_recompute_p50_ms: r3(percentile(full, 50)),
  one_endpoint_change_full_recompute_p99_ms: r3(percentile(full, 99)),
  full_over_incremental_p50_ratio: Math.round((percentile(full, 50) / percentile(inc, 50)) * 10) / 10,
};
for (const [k, v] of Object.entries(out)) console.log(`${k.padEnd(44)} ${v}`);
fs.mkdirSync(path.join(REPO, "bench/results"), { recursive: true });
fs.writeFileSync(path.join(REPO, "bench/results/agent.json"), `${JSON.stringify(out, null, 2)}\n`);
console.log("wrote bench/results/agent.json");
