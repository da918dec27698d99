/**
 * The BalancingPolicy part of `npm run bench:hub` (issue 16): one cluster
 * with 1,000 nodes (each with an entry address), 100,000 Pods and 100,000
 * BalancingPolicies in 10,000 namespaces. Per namespace 10 Pods (5 apps of
 * 2, on different nodes) and 10 policies of every kind: podEndpoint on a
 * Service (2; 20,000 Services in all) and on a virtual address (2), hostPort
 * (2), nodeProxy (1, on an entry port of its namespace's) and addressEndpoint
 * (3, two addresses each), each selecting one app. One view, one agent per node, all in sync. Measures the
 * full build, RSS and live heap, then one change of each kind delivered to
 * the agents it is told to: a selected Pod turns unready (or ready again),
 * and a policy edited in place (its selector moves to another app).
 * BalancingPolicy backends are anywhere in the cluster, so its `bp/`
 * resource is shared by the whole view: each change goes to every agent
 * (one small resource each), except a nodeProxy Pod's node-entry resource,
 * which goes to its node only.
 */
import { silentLogger } from "@switchyard/lib/log";
import type { BalancingPolicy, Pod } from "../services/hub/src/model/types.ts";
import { World } from "../services/hub/src/model/world.ts";
import { KINDS } from "../services/hub/src/sources/kube-objects.ts";
import { WorldWriter } from "../services/hub/src/sources/source.ts";
import { buildView, type Delivery, deliveryFigures } from "./hub-fleet.ts";

const CLUSTER = "bp";
const NODES = 1000;
const PER_NS = 10; // policies per namespace
const APPS = 5; // apps per namespace; policy j selects app j % APPS
const HTTP = [{ name: "http", port: 8080, targetName: undefined, protocol: "TCP" as const }];

/** the k-th address of a /10-ish range starting at 10.<first>.0.0 */
const ip = (first: number, k: number) => `10.${first + (k >> 16)}.${(k >> 8) & 255}.${k & 255}`;

export function balancingBench(opts: {
  pods: number;
  policies: number;
  rss: () => number;
}): Record<string, unknown> {
  const { rss } = opts;
  const heap = () => Math.round(process.memoryUsage().heapUsed / 2 ** 20);
  const namespaces = Math.max(1, Math.ceil(opts.policies / PER_NS));
  const podsPerNs = Math.max(APPS * 2, Math.floor(opts.pods / namespaces));
  const world = new World();
  const w = new WorldWriter(world, CLUSTER, silentLogger());
  const rssStart = rss();
  for (let n = 0; n < NODES; n++)
    w.upsert({
      kind: "Node",
      metadata: {
        name: `node-${n}`,
        annotations: { "switchyard.io/entry-addresses": `198.51.${100 + (n >> 8)}.${n & 255}` },
      },
      status: { addresses: [{ type: "InternalIP", address: `192.0.${2 + (n >> 8)}.${n & 255}` }] },
    });
  const policies: BalancingPolicy[] = [];
  for (let ns = 0; ns < namespaces && policies.length < opts.policies; ns++) {
    const namespace = `ns-${ns}`;
    for (let j = 0; j < PER_NS && policies.length < opts.policies; j++) {
      const k = ns * PER_NS + j + 1;
      const selector = { matchLabels: { app: `a${j % APPS}` }, matchExpressions: [] };
      const serviceEndpoint = (redirectMode: "podEndpoint" | "hostPort" | "nodeProxy") => ({
        kind: "serviceEndpoint" as const,
        selector,
        redirectMode,
        // two nodeProxy policies on one entry port conflict: each namespace's its own
        toPorts: redirectMode === "nodeProxy" ? [{ ...HTTP[0]!, port: 20_000 + (ns % 40_000) }] : HTTP,
      });
      if (j < 2)
        w.upsert({
          kind: "Service",
          metadata: { name: `web-${j}`, namespace },
          spec: { clusterIP: ip(96, k), ports: [{ name: "http", port: 80, protocol: "TCP" }] },
        });
      policies.push({
        cluster: CLUSTER,
        namespace,
        name: `bp-${j}`,
        uid: `${ns}-${j}`,
        generation: 1,
        createdAt: "2026-01-01T00:00:00Z",
        frontend:
          j < 2
            ? { kind: "service", service: `web-${j}`, ports: [] }
            : {
                kind: "address",
                ip: ip(160, k),
                ports: [{ name: "http", port: 80, protocol: "TCP" }],
                fallbackService: undefined,
              },
        backend:
          j < 4
            ? serviceEndpoint("podEndpoint")
            : j < 6
              ? serviceEndpoint("hostPort")
              : j < 7
                ? serviceEndpoint("nodeProxy")
                : { kind: "addressEndpoint", addresses: [ip(200, 2 * k), ip(200, 2 * k + 1)], toPorts: HTTP },
        nodeSelector: undefined,
      });
    }
  }
  for (const kind of KINDS) w.listed(kind);
  const pod = (ns: number, i: number): Pod => {
    const k = ns * podsPerNs + i;
    return {
      cluster: CLUSTER,
      namespace: `ns-${ns}`,
      name: `a${i % APPS}-${i}`,
      uid: `00000000-0000-0000-${String(ns).padStart(4, "0")}-${String(i).padStart(12, "0")}`,
      labels: { app: `a${i % APPS}`, "pod-template-hash": "5d8f9c7b6" },
      // an app's Pods on different nodes
      nodeName: `node-${(ns * 7 + i * 131) % NODES}`,
      ips: [ip(128, k)],
      ready: true,
      terminating: false,
      containerPorts: [{ name: "http", port: 8080, protocol: "TCP" }],
    };
  };
  const rssNoPods = rss();
  const heapNoPods = heap();
  for (let ns = 0; ns < namespaces; ns++)
    for (let i = 0; i < podsPerNs; i++) world.upsert(CLUSTER, { kind: "Pod", value: pod(ns, i) });
  for (const p of policies) world.upsert(CLUSTER, { kind: "BalancingPolicy", value: p });
  const rssPods = rss();
  const heapPods = heap();

  const nodes = Array.from({ length: NODES }, (_, n) => `node-${n}`);
  const { cache, shared, buildMs, rssBuilt, heapBuilt, overlayResources, fleet } = buildView(
    world,
    CLUSTER,
    nodes,
    rss,
  );
  const rssAgents = rss();

  const WARMUP = 5;
  const run = (samples: number, change: (r: number) => void): Delivery[] => {
    const out: Delivery[] = [];
    for (let r = 0; r < WARMUP + samples; r++) {
      const d = fleet.deliver(() => change(r));
      if (r >= WARMUP) out.push(d);
    }
    return out;
  };
  // a selected Pod turns unready, or ready again
  const podChanges = run(50, (r) => {
    const ns = (r * 7919) % namespaces;
    const i = r % podsPerNs;
    const cur = world.cluster(CLUSTER).pods.get(`ns-${ns}/a${i % APPS}-${i}`)!;
    world.upsert(CLUSTER, { kind: "Pod", value: { ...cur, ready: !cur.ready } });
  });
  // a podEndpoint policy edited in place: its selector moves to the next app
  const policyEdits = run(20, (r) => {
    const ns = (r * 7919) % namespaces;
    const cur = world.cluster(CLUSTER).balancing.get(`ns-${ns}/bp-2`)!;
    if (cur.backend.kind !== "serviceEndpoint") throw new Error("bp-2 is a podEndpoint policy");
    const app = Number(cur.backend.selector.matchLabels["app"]!.slice(1));
    world.upsert(CLUSTER, {
      kind: "BalancingPolicy",
      value: {
        ...cur,
        generation: cur.generation + 1,
        backend: {
          ...cur.backend,
          selector: { ...cur.backend.selector, matchLabels: { app: `a${(app + 1) % APPS}` } },
        },
      },
    });
  });
  cache.close();
  return {
    bp_date: new Date().toISOString(),
    bp_nodes: NODES,
    bp_namespaces: namespaces,
    bp_pods: world.cluster(CLUSTER).pods.size,
    bp_policies: policies.length,
    bp_services: world.cluster(CLUSTER).services.size,
    // only accepted policies are sent: one bp/ resource each
    bp_accepted: [...shared.resources.keys()].filter((n) => n.startsWith("bp/")).length,
    bp_shared_resources: shared.resources.size,
    bp_per_node_resources: overlayResources,
    bp_full_build_ms: Math.round(buildMs),
    bp_rss_mib_start: rssStart,
    bp_rss_mib_world_without_pods: rssNoPods,
    bp_rss_mib_world_with_pods_and_policies: rssPods,
    bp_rss_mib_after_full_build: rssBuilt,
    bp_rss_mib_with_1000_agents_in_sync: rssAgents,
    bp_heap_mib_world_without_pods: heapNoPods,
    bp_heap_mib_world_with_pods_and_policies: heapPods,
    bp_heap_mib_after_full_build: heapBuilt,
    ...deliveryFigures("bp_one_pod_change", podChanges),
    ...deliveryFigures("bp_one_policy_edit", policyEdits),
  };
}
