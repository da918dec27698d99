/**
 * `npm run bench:hub` — the hub's translator at scale, in process: 10,000
 * Services with 100,000 endpoints across 3 clusters and 1,000 nodes, one
 * view holding all three. Measures the full build, RSS, and one endpoint
 * change in a 10,000-endpoint Service (100 EndpointSlices of 100, as the
 * EndpointSlice controller cuts them): translate + the per-agent delta.
 * Then LocalRedirectPolicies (bench/hub-policies.ts): 100,000 Pods and
 * 1,000 policies on 1,000 nodes — full build, RSS, one Pod change → delta
 * bytes and the number of agents it goes to. Then BalancingPolicies
 * (bench/hub-balancing.ts): 100,000 Pods and 100,000 policies of every mode
 * on 1,000 nodes — full build, RSS, one Pod change and one policy edit →
 * delta bytes and agents told. Writes bench/results/hub.json.
 *
 *   node --expose-gc bench/hub.ts [--services 10000] [--pods 100000] [--policies 1000]
 *     [--balancing 100000] [--part all|services|policies|balancing]
 *     [--out bench/results/hub.json]
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { silentLogger } from "@switchyard/lib/log";
import { StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { World, type WorldChange } from "../services/hub/src/model/world.ts";
import { WorldWriter } from "../services/hub/src/sources/source.ts";
import { ViewTranslator } from "../services/hub/src/translate/compute-resources.ts";
import { encodeResponse } from "../services/hub/src/xds/encode.ts";
import { AgentSession } from "../services/hub/src/xds/session.ts";

import { REPO } from "../test/kit/proc.ts";
import { balancingBench } from "./hub-balancing.ts";
import { policiesBench } from "./hub-policies.ts";
import { machine, percentile } from "./stats.ts";

const { values } = parseArgs({
  options: {
    services: { type: "string", default: "10000" },
    pods: { type: "string", default: "100000" },
    policies: { type: "string", default: "1000" },
    /** BalancingPolicies of the balancing part */
    balancing: { type: "string", default: "100000" },
    part: { type: "string", default: "all" },
    out: { type: "string", default: "bench/results/hub.json" },
  },
});
const SERVICES = Number(values.services);
const PART = values.part;
if (!["all", "services", "policies", "balancing"].includes(PART))
  throw new Error(`--part ${PART}: all, services, policies or balancing`);
const CLUSTERS = ["east", "west", "k3s-edge"];
const ENDPOINTS_TOTAL = SERVICES * 10;
const BIG = 10_000; // endpoints of the one big service
const gc = (globalThis as { gc?: () => void }).gc;
const rss = () => {
  gc?.();
  return Math.round(process.memoryUsage().rss / 2 ** 20);
};

/** The Services part: its world is garbage once it returns (the policies part measures RSS on its own). */
function servicesBench(): Record<string, unknown> {
  const world = new World();
  const writers = new Map(CLUSTERS.map((c) => [c, new WorldWriter(world, c, silentLogger())]));
  const ip = (k: number) => `10.${64 + ((k >> 16) & 63)}.${(k >> 8) & 255}.${k & 255}`;
  const rssStart = rss();
  let k = 1;
  const sliceOf = (cluster: string, svc: string, name: string, n: number, start: number, readyFlip = -1) => ({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, namespace: "bench", labels: { "kubernetes.io/service-name": svc } },
    addressType: "IPv4",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    endpoints: Array.from({ length: n }, (_, j) => ({
      addresses: [ip(start + j)],
      nodeName: `${cluster}-node-${(start + j) % 334}`,
      conditions: { ready: j !== readyFlip, serving: true, terminating: false },
    })),
  });
  for (let i = 0; i < SERVICES; i++) {
    const cluster = CLUSTERS[i % 3]!;
    const w = writers.get(cluster)!;
    const svc = `s${i}`;
    w.upsert({
      kind: "Service",
      metadata: { name: svc, namespace: "bench" },
      spec: {
        clusterIP: `10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
        ports: [{ name: "http", port: 80 }],
      },
    });
    if (i === 0) continue; // the big one below
    w.upsert(sliceOf(cluster, svc, `${svc}-a`, 10, k));
    k += 10;
  }
  // s0: 10,000 endpoints in 100 slices
  const bigStart = k;
  for (let s = 0; s < BIG / 100; s++)
    writers.get("east")!.upsert(sliceOf("east", "s0", `s0-${s}`, 100, bigStart + s * 100));
  k += BIG;
  for (let n = 0; n < 1000; n++) {
    const cluster = CLUSTERS[n % 3]!;
    writers.get(cluster)!.upsert({
      kind: "Node",
      metadata: { name: `${cluster}-node-${n}` },
      status: { addresses: [{ type: "InternalIP", address: `192.0.2.${n % 250}` }] },
    });
  }
  const rssWorld = rss();

  const t = new ViewTranslator();
  const states = () => CLUSTERS.map((c) => world.cluster(c));
  let t0 = performance.now();
  t.rebuild(states());
  const buildMs = performance.now() - t0;
  const rssBuilt = rss();

  // one agent session, fully synced, to measure the per-agent delta of one change
  const session = new AgentSession({}, "b", Number.MAX_SAFE_INTEGER);
  let first = session.next(t.snapshot());
  session.onAck(first!.nonce, undefined);
  first = undefined;

  const pending: WorldChange[] = [];
  world.onChange((_c, ch) => ch && pending.push(ch));
  const times: number[] = [];
  const bytes: number[] = [];
  // the first 100 changes warm up the JIT and are not counted; the next 1,000 are
  const WARMUP = 100;
  for (let r = 1; r <= WARMUP + 1000; r++) {
    const s = r % (BIG / 100);
    // a different endpoint of that slice turns unready each time the slice comes round again
    writers
      .get("east")!
      .upsert(sliceOf("east", "s0", `s0-${s}`, 100, bigStart + s * 100, (r + Math.floor(r / 100)) % 100));
    const changes = pending.splice(0);
    t0 = performance.now();
    const changed = t.update(states(), changes);
    session.markDirty(changed);
    const msg = session.next(t.snapshot());
    if (!msg) throw new Error(`no delta for ${[...changed].join(",")}; behind=${session.behind}`);
    const wire = encodeResponse(msg, (x) => StreamAssignmentsResponse.encode(x).finish());
    if (r > WARMUP) {
      times.push(performance.now() - t0);
      bytes.push(wire.length);
    }
    session.onAck(msg.nonce, undefined);
  }
  times.sort((a, b) => a - b);
  return {
    services: SERVICES,
    endpoints: ENDPOINTS_TOTAL,
    clusters: CLUSTERS.length,
    nodes: 1000,
    resources: t.resources.size,
    full_build_ms: Math.round(buildMs),
    rss_mib_process_start: rssStart,
    rss_mib_world_loaded: rssWorld,
    rss_mib_after_full_build: rssBuilt,
    one_endpoint_change_in_10k_endpoint_service_p50_ms: Math.round(percentile(times, 50) * 1000) / 1000,
    one_endpoint_change_in_10k_endpoint_service_p99_ms: Math.round(percentile(times, 99) * 1000) / 1000,
    one_endpoint_change_in_10k_endpoint_service_max_ms: Math.round(times[times.length - 1]! * 1000) / 1000,
    one_endpoint_change_samples: times.length,
    one_endpoint_change_bytes_on_the_wire: bytes[0],
  };
}

const outPath = path.resolve(REPO, values.out);
// a part run alone replaces only its own figures (each part's keys carry its prefix)
const previous: Record<string, unknown> =
  PART !== "all" && fs.existsSync(outPath)
    ? (JSON.parse(fs.readFileSync(outPath, "utf8")) as Record<string, unknown>)
    : {};
const out: Record<string, unknown> = { ...previous, machine: machine(), date: new Date().toISOString() };
if (PART === "all" || PART === "services") Object.assign(out, servicesBench());
if (PART === "all" || PART === "policies")
  Object.assign(out, policiesBench({ pods: Number(values.pods), policies: Number(values.policies), rss }));
if (PART === "all" || PART === "balancing")
  Object.assign(out, balancingBench({ pods: Number(values.pods), policies: Number(values.balancing), rss }));
for (const [key, v] of Object.entries(out)) console.log(`${key.padEnd(52)} ${v}`);
fs.mkdirSync(path.dirname(outPath), { recursive: true });
fs.writeFileSync(outPath, `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote ${path.relative(REPO, outPath)}`);
