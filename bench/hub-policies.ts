/**
 * The LocalRedirectPolicy part of `npm run bench:hub` (issue 15): one
 * cluster with 1,000 nodes, 100,000 Pods in 100 namespaces and 1,000
 * policies (per namespace: 9 on a Service, 1 on a virtual address, each
 * selecting 20 Pods on 20 nodes); one view, one agent per node, all in sync.
 * Measures the full build, RSS (world without Pods, with them, after the
 * build), and one Pod change (a selected Pod turns unready, then ready):
 * translate + fan-out + encode, the bytes of the delta and how many agents
 * it goes to (target: 1).
 */
import { silentLogger } from "@switchyard/lib/log";
import type { LocalRedirectPolicy, Pod } from "../services/hub/src/model/types.ts";
import { World } from "../services/hub/src/model/world.ts";
import { KINDS } from "../services/hub/src/sources/kube-objects.ts";
import { WorldWriter } from "../services/hub/src/sources/source.ts";
import { buildView, type Delivery, deliveryFigures } from "./hub-fleet.ts";

const CLUSTER = "lrp";
const NODES = 1000;
const SELECTED = 20; // Pods per policy (one per node)
const APPS = 50; // apps per namespace: the first 10 are selected by the namespace's 10 policies

export function policiesBench(opts: {
  pods: number;
  policies: number;
  rss: () => number;
}): Record<string, unknown> {
  const { rss } = opts;
  /** live JS heap (after the GC rss() runs): RSS keeps what the heap once grew to */
  const heap = () => Math.round(process.memoryUsage().heapUsed / 2 ** 20);
  const namespaces = Math.max(1, Math.round(opts.policies / 10));
  const podsPerNs = Math.max(SELECTED * 10, Math.floor(opts.pods / namespaces));
  const world = new World();
  const w = new WorldWriter(world, CLUSTER, silentLogger());
  const rssStart = rss();
  for (let n = 0; n < NODES; n++)
    w.upsert({
      kind: "Node",
      metadata: { name: `node-${n}` },
      status: { addresses: [{ type: "InternalIP", address: `192.0.${2 + (n >> 8)}.${n & 255}` }] },
    });
  const policies: LocalRedirectPolicy[] = [];
  for (let ns = 0; ns < namespaces; ns++) {
    const namespace = `ns-${ns}`;
    for (let j = 0; j < 10; j++) {
      const name = `svc-${j}`;
      w.upsert({
        kind: "Service",
        metadata: { name, namespace },
        spec: {
          clusterIP: `10.${96 + (ns >> 8)}.${ns & 255}.${j + 1}`,
          ports: [{ name: "dns", port: 53, protocol: "UDP" }],
        },
      });
      const base = {
        cluster: CLUSTER,
        namespace,
        name: `lrp-${j}`,
        uid: `${ns}-${j}`,
        generation: 1,
        createdAt: "2026-01-01T00:00:00Z",
        backend: {
          selector: { matchLabels: { app: `a${j}` }, matchExpressions: [] },
          toPorts: [{ name: "dns", port: 5353, targetName: undefined, protocol: "UDP" as const }],
        },
        skipRedirectFromBackend: false,
        qosPerSecond: 0,
        nodeSelector: undefined,
      };
      policies.push(
        j < 9
          ? { ...base, frontend: { kind: "service", service: name, ports: [] } }
          : {
              ...base,
              frontend: {
                kind: "address",
                ip: `169.254.${ns >> 8}.${ns & 255}`,
                ports: [{ name: "dns", port: 53, protocol: "UDP" }],
                fallbackService: "svc-0",
              },
            },
      );
    }
  }
  for (const k of KINDS) w.listed(k);
  const pod = (ns: number, i: number): Pod => {
    const app = i % APPS;
    // a policy's Pods (one app) land on SELECTED different nodes
    const node = (ns * 7 + Math.floor(i / APPS) * 37 + app) % NODES;
    const k = ns * podsPerNs + i;
    return {
      cluster: CLUSTER,
      namespace: `ns-${ns}`,
      name: `a${app}-${i}`,
      uid: `00000000-0000-0000-${String(ns).padStart(4, "0")}-${String(i).padStart(12, "0")}`,
      labels: { app: `a${app}`, "pod-template-hash": "5d8f9c7b6" },
      nodeName: `node-${node}`,
      ips: [`10.${128 + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`],
      ready: true,
      terminating: false,
      containerPorts: [{ name: "dns", port: 5353, protocol: "UDP" }],
    };
  };
  const rssNoPods = rss();
  const heapNoPods = heap();
  for (let ns = 0; ns < namespaces; ns++)
    for (let i = 0; i < podsPerNs; i++) world.upsert(CLUSTER, { kind: "Pod", value: pod(ns, i) });
  for (const p of policies) world.upsert(CLUSTER, { kind: "LocalRedirectPolicy", value: p });
  const rssPods = rss();
  const heapPods = heap();

  // the view built, then one agent per node in sync; count the agents each change is told to
  const nodes = Array.from({ length: NODES }, (_, n) => `node-${n}`);
  const { cache, view, shared, buildMs, rssBuilt, heapBuilt, overlayResources, fleet } = buildView(
    world,
    CLUSTER,
    nodes,
    rss,
  );
  const verdicts = [...cache.policyVerdicts(view).values()];
  const rssAgents = rss();

  const changes: Delivery[] = [];
  const WARMUP = 20;
  const SAMPLES = 200;
  for (let r = 0; r < WARMUP + SAMPLES; r++) {
    // a selected Pod (app a<j>, j < 10) turns unready, or ready again
    const ns = r % namespaces;
    const i = (r * APPS + (r % 10)) % podsPerNs;
    const cur = world.cluster(CLUSTER).pods.get(`ns-${ns}/a${i % APPS}-${i}`)!;
    const d = fleet.deliver(() =>
      world.upsert(CLUSTER, { kind: "Pod", value: { ...cur, ready: !cur.ready } }),
    );
    if (r >= WARMUP) changes.push(d);
  }
  cache.close();
  return {
    lrp_nodes: NODES,
    lrp_namespaces: namespaces,
    lrp_pods: world.cluster(CLUSTER).pods.size,
    lrp_policies: policies.length,
    lrp_accepted: verdicts.filter((v) => v.reason === "Accepted").length,
    lrp_shared_resources: shared.resources.size,
    lrp_per_node_resources: overlayResources,
    lrp_full_build_ms: Math.round(buildMs),
    lrp_rss_mib_start: rssStart,
    lrp_rss_mib_world_without_pods: rssNoPods,
    lrp_rss_mib_world_with_pods: rssPods,
    lrp_rss_mib_after_full_build: rssBuilt,
    lrp_rss_mib_with_1000_agents_in_sync: rssAgents,
    lrp_heap_mib_world_without_pods: heapNoPods,
    lrp_heap_mib_world_with_pods: heapPods,
    lrp_heap_mib_after_full_build: heapBuilt,
    ...deliveryFigures("lrp_one_pod_change", changes),
  };
}
