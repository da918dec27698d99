/**
 * `npm run bench:agent` — the node agent at scale, a view of 10,000
 * Services / 100,000 endpoints. Two parts (`--part apply|resync`, both by
 * default); results go into bench/results/agent.json (a part run alone
 * replaces only its own figures).
 *
 * apply (in process, in-memory maps): the view arrives in one delta, then
 * one endpoint changes 500 times. Compares, in the same run, the
 * incremental apply (what the agent does) with a full recompute + full plan
 * of the same state (what it did before): per change p50/p99 and the ratio.
 *
 * resync (the kernel's maps: needs root and bpf/build; the BPF object is
 * loaded, nothing attached or pinned): the view is written into the maps,
 * then the agent's periodic resync — read every map it writes back, plan in
 * full, write nothing — runs with per-entry reads (get_next_key + lookup per
 * entry, how the agent read before) and with batch reads
 * (bpf_map_lookup_batch): milliseconds (median of 3) and bpf() calls.
 *
 * balancing (in process, in-memory maps): the same view with 100,000
 * BalancingPolicies as the hub sends them (`bp/`, backends addressed): one
 * on each of the view's Services' ClusterIPs, up to half of them (the
 * policy's entry replaces the Service's), the rest on virtual addresses, two
 * backends each. Measures
 * the cold apply, RSS, and one policy edited in place (one backend
 * replaced): apply p50/p99 and the map operations it writes.
 *
 *   node bench/agent.ts [--services 10000] [--balancing 100000] [--part apply|resync|balancing]
 *     [--out bench/results/agent.json]
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
import { checkPtr, checkRc, ffi } from "../services/nodeagent/src/bpf/libbpf.ts";
import { LibbpfMaps, MAPS } from "../services/nodeagent/src/bpf/libbpf-maps.ts";
import { FakeMaps } from "../services/nodeagent/src/bpf/maps.ts";
import { computeDesired } from "../services/nodeagent/src/desired/compute-desired.ts";
import { planMaps } from "../services/nodeagent/src/plan/plan-maps.ts";
import { bpResource } from "../services/nodeagent/src/testing/balancing.ts";
import { REPO } from "../test/kit/proc.ts";
import { benchService, benchSlice, ENDPOINTS_PER_SERVICE } from "./cluster.ts";
import { machine, percentile } from "./stats.ts";

const { values } = parseArgs({
  options: {
    services: { type: "string", default: "10000" },
    balancing: { type: "string", default: "100000" },
    part: { type: "string" },
    out: { type: "string", default: "bench/results/agent.json" },
  },
});
const SERVICES = Number(values.services);
const PART = values.part;
if (PART !== undefined && PART !== "apply" && PART !== "resync" && PART !== "balancing")
  throw new Error(`--part "${PART}" must be apply, resync or balancing (all run without it)`);
const BALANCING = Number(values.balancing);
const CHANGES = 500;
const RESYNC_ROUNDS = 3;
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
const r3 = (x: number) => Math.round(x * 1000) / 1000;

function benchApply(): Record<string, number | string> {
  const maps = new FakeMaps();
  const core = new AgentCore(maps, "node-0", [], silentLogger());
  let t0 = performance.now();
  core.onDelta(msg([...t.snapshot().resources.values()]));
  const coldMs = performance.now() - t0;

  const pending: WorldChange[] = [];
  world.onChange((_c, ch) => ch && pending.push(ch));
  const inc: number[] = [];
  const full: number[] = [];
  // each change makes another endpoint of the Service unready (a small --services changes one twice)
  const unready = new Map<number, number>();
  for (let r = 1; r <= CHANGES; r++) {
    const i = (r * 7919) % SERVICES;
    const u = ((unready.get(i) ?? r - 1) + 1) % ENDPOINTS_PER_SERVICE;
    unready.set(i, u);
    w.upsert(benchSlice(i, u));
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
  core.stop();
  return {
    apply_date: new Date().toISOString(),
    changes: CHANGES,
    cold_apply_whole_view_ms: Math.round(coldMs),
    one_endpoint_change_incremental_p50_ms: r3(percentile(inc, 50)),
    one_endpoint_change_incremental_p99_ms: r3(percentile(inc, 99)),
    one_endpoint_change_full_recompute_p50_ms: r3(percentile(full, 50)),
    one_endpoint_change_full_recompute_p99_ms: r3(percentile(full, 99)),
    full_over_incremental_p50_ratio: Math.round((percentile(full, 50) / percentile(inc, 50)) * 10) / 10,
  };
}

/** BalancingPolicy i as the hub sends it; `edit` 1 replaces its second backend. */
function balancingPolicy(i: number, edit = 0): Resource {
  const onService = i < Math.min(SERVICES, BALANCING / 2);
  const ip = (first: number, k: number) => `10.${first + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`;
  return bpResource(
    `bp${i}`,
    onService ? { service: `s${i}` } : { address: true },
    [{ ip: onService ? `10.96.${i >> 8}.${i & 255}` : ip(160, i + 1), port: 80, portName: "http" }],
    [{ name: "http", port: 8080 }],
    [ip(200, 2 * i), ip(200, 2 * i + 1 + edit * 2 * BALANCING)],
    { cluster: "bench", namespace: "bench", mode: onService ? "podEndpoint" : "addressEndpoint" },
  );
}

function benchBalancing(): Record<string, number | string> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const rss = () => {
    gc?.();
    return Math.round(process.memoryUsage().rss / 2 ** 20);
  };
  const maps = new FakeMaps();
  const core = new AgentCore(maps, "node-0", [], silentLogger());
  const policies = Array.from({ length: BALANCING }, (_, i) => balancingPolicy(i));
  const rssBefore = rss();
  let t0 = performance.now();
  core.onDelta(msg([...t.snapshot().resources.values(), ...policies]));
  const coldMs = performance.now() - t0;
  const rssAfter = rss();
  const held = maps.read();
  const edits: number[] = [];
  const ops: number[] = [];
  const edited = new Uint8Array(BALANCING);
  for (let r = 1; r <= CHANGES; r++) {
    const i = (r * 7919) % BALANCING;
    edited[i] = 1 - edited[i]!;
    t0 = performance.now();
    core.onDelta(msg([balancingPolicy(i, edited[i]!)]));
    edits.push(performance.now() - t0);
    ops.push(core.stats.lastPlanOps);
    if (core.stats.lastPlanOps === 0) throw new Error(`policy edit ${r} wrote nothing`);
  }
  core.stop();
  return {
    balancing_date: new Date().toISOString(),
    balancing_policies: BALANCING,
    balancing_frontends_in_maps: held.frontends.size,
    balancing_names_in_maps: held.names.size,
    balancing_cold_apply_services_and_policies_ms: Math.round(coldMs),
    balancing_rss_mib_before_apply: rssBefore,
    balancing_rss_mib_after_apply: rssAfter,
    balancing_rss_measured_after_gc: gc ? "yes" : "no (run with --expose-gc)",
    balancing_one_policy_edit_p50_ms: r3(percentile(edits, 50)),
    balancing_one_policy_edit_p99_ms: r3(percentile(edits, 99)),
    balancing_one_policy_edit_map_ops_max: Math.max(...ops),
    balancing_one_policy_edit_samples: edits.length,
  };
}

function benchResync(): Record<string, number | string> {
  if (process.getuid?.() !== 0)
    throw new Error("--part resync loads the BPF object: run as root (or --part apply)");
  const objectPath = path.join(REPO, "bpf/build/switchyard.bpf.o");
  const obj = checkPtr(ffi.openFile(objectPath, null), `opening ${objectPath} (npm run setup builds it)`);
  try {
    checkRc(ffi.load(obj) as number, `loading ${objectPath}`);
    const fds = {} as ConstructorParameters<typeof LibbpfMaps>[0];
    for (const name of MAPS)
      fds[name] = checkRc(ffi.mapFd(checkPtr(ffi.findMap(obj, name), name)) as number, `fd of ${name}`);
    const maps = new LibbpfMaps(fds);
    const core = new AgentCore(maps, "node-0", [], silentLogger());
    core.onDelta(msg([...t.snapshot().resources.values()]));
    const held = maps.read();
    let backends = 0;
    for (const set of held.backendSets.values()) backends += set.length;
    const entries =
      held.names.size + held.frontends.size + backends + (held.members?.size ?? 0) + held.nodeIps.size;
    const out: Record<string, number | string> = {
      resync_date: new Date().toISOString(),
      resync_backends: backends,
      resync_map_entries: entries,
    };
    for (const mode of ["per-entry", "batch"] as const) {
      const ms: number[] = [];
      let calls = 0;
      for (let r = 0; r < RESYNC_ROUNDS; r++) {
        maps.readMode = mode;
        const s0 = maps.syscalls;
        const t0 = performance.now();
        const ops = core.resync();
        ms.push(performance.now() - t0);
        calls = maps.syscalls - s0;
        if (ops !== 0) throw new Error(`a resync (${mode} reads) of unchanged maps wrote ${ops} ops`);
      }
      const key = mode === "batch" ? "batch" : "per_entry";
      out[`resync_${key}_reads_ms`] = Math.round(percentile(ms, 50));
      out[`resync_${key}_reads_bpf_calls`] = calls;
    }
    const ratio =
      Number(out["resync_per_entry_reads_ms"]) / Math.max(1, Number(out["resync_batch_reads_ms"]));
    out["resync_per_entry_over_batch_ms_ratio"] = Math.round(ratio * 10) / 10;
    core.stop();
    return out;
  } finally {
    ffi.close(obj);
  }
}

const file = path.resolve(REPO, values.out);
const previous: Record<string, unknown> =
  PART && fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>) : {};
const out = {
  ...previous,
  machine: machine(),
  date: new Date().toISOString(),
  services: SERVICES,
  endpoints: SERVICES * ENDPOINTS_PER_SERVICE,
  ...(PART === undefined || PART === "apply" ? benchApply() : {}),
  ...(PART === undefined || PART === "resync" ? benchResync() : {}),
  ...(PART === undefined || PART === "balancing" ? benchBalancing() : {}),
};
for (const [k, v] of Object.entries(out)) console.log(`${k.padEnd(44)} ${v}`);
fs.mkdirSync(path.dirname(file), { recursive: true });
fs.writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote ${path.relative(REPO, file)}`);
