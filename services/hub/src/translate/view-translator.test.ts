import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { silentLogger } from "@switchyard/lib/log";
import { World } from "../model/world.ts";
import { WorldWriter } from "../sources/source.ts";
import { type Reach, ViewTranslator } from "./compute-resources.ts";

function svc(name: string, ip: string) {
  return {
    kind: "Service",
    metadata: { name, namespace: "ns" },
    spec: { clusterIP: ip, ports: [{ name: "p", port: 80 }] },
  };
}

/** Two empty clusters, east and west, in one world. */
function eastWest() {
  const world = new World();
  const east = new WorldWriter(world, "east", silentLogger());
  const west = new WorldWriter(world, "west", silentLogger());
  return { world, east, west, states: () => [world.cluster("east"), world.cluster("west")] };
}

function setup() {
  const w = eastWest();
  const { east, west } = w;
  east.upsert(svc("api", "10.96.0.1"));
  west.upsert(svc("zeta", "10.96.0.1"));
  west.upsert(svc("only-west", "10.96.0.2"));
  return w;
}

function sameAsRebuild(
  t: ViewTranslator,
  home: string,
  states: () => ReturnType<World["cluster"]>[],
  reach: Reach = "pod",
): void {
  const fresh = new ViewTranslator(home, reach);
  fresh.rebuild(states());
  assert.deepEqual(
    new Map([...t.resources].map(([k, v]) => [k, v.version])),
    new Map([...fresh.resources].map(([k, v]) => [k, v.version])),
    "incremental update equals a full rebuild",
  );
}

const frontendsOf = (t: ViewTranslator, name: string) => {
  const r = t.resources.get(name);
  return r?.body?.$case === "service" ? r.body.value.frontends.map((f) => f.ip) : undefined;
};

describe("views across clusters", () => {
  it("gives a colliding ClusterIP to the home cluster's Service and names both owners", () => {
    for (const home of ["east", "west"]) {
      const { states } = setup();
      const t = new ViewTranslator(home);
      t.rebuild(states());
      const winner = home === "east" ? "svc/east/ns/api" : "svc/west/ns/zeta";
      const loser = home === "east" ? "svc/west/ns/zeta" : "svc/east/ns/api";
      assert.deepEqual(frontendsOf(t, winner), ["10.96.0.1"]);
      assert.deepEqual(frontendsOf(t, loser), []);
      assert.match(
        t.snapshot().diagnosticsOf(loser).join(),
        new RegExp(`10\\.96\\.0\\.1:80 is already served by ${winner}`),
      );
      assert.deepEqual(frontendsOf(t, "svc/west/ns/only-west"), ["10.96.0.2"], "imported Services resolve");
    }
  });

  it("hands the frontend over when its owner goes, incrementally", () => {
    const { world, states } = setup();
    const t = new ViewTranslator("east");
    t.rebuild(states());
    world.remove("east", "Service", "ns", "api");
    const changed = t.update(states(), [{ cluster: "east", kind: "Service", namespace: "ns", name: "api" }]);
    assert.ok(changed.has("svc/east/ns/api") && changed.has("svc/west/ns/zeta"));
    assert.deepEqual(frontendsOf(t, "svc/west/ns/zeta"), ["10.96.0.1"]);
    assert.equal(t.resources.has("svc/east/ns/api"), false);
  });

  it("hands out a new snapshot object whenever the map changes, even when an undo leaves the version as it was", () => {
    const { world, east, states } = setup();
    const t = new ViewTranslator("east");
    t.rebuild(states());
    const before = t.snapshot();
    assert.equal(t.snapshot(), before, "the same object while nothing changes");
    const order = () => [...t.snapshot().resources.keys()];
    const orderBefore = order();
    const api = { cluster: "east", kind: "Service", namespace: "ns", name: "api" } as const;
    world.remove("east", "Service", "ns", "api");
    t.update(states(), [api]);
    east.upsert(svc("api", "10.96.0.1"));
    t.update(states(), [api]);
    const after = t.snapshot();
    assert.equal(after.version, before.version, "same content, same version");
    assert.notDeepEqual(order(), orderBefore, "but the entry moved in the map");
    assert.notEqual(
      after,
      before,
      "so it is another snapshot object (cold-walk chunks are cached per object)",
    );
  });
});

describe("node-port views (edge nodes without CNI, hosts that cannot route to pods)", () => {
  function cluster() {
    const world = new World();
    const w = new WorldWriter(world, "cloud", silentLogger());
    const node = (name: string, ip: string) => ({
      kind: "Node",
      metadata: { name },
      status: { addresses: [{ type: "InternalIP", address: ip }] },
    });
    w.upsert(node("n1", "192.0.2.1"));
    w.upsert(node("n2", "192.0.2.2"));
    w.upsert({
      kind: "Service",
      metadata: { name: "web", namespace: "ns" },
      spec: {
        type: "NodePort",
        clusterIP: "10.96.0.5",
        ports: [{ name: "http", port: 80, nodePort: 30080 }],
      },
    });
    w.upsert({
      kind: "Service",
      metadata: { name: "internal", namespace: "ns" },
      spec: { clusterIP: "10.96.0.6", ports: [{ name: "http", port: 80 }] },
    });
    for (const svc of ["web", "internal"]) {
      w.upsert({
        kind: "EndpointSlice",
        metadata: { name: `${svc}-1`, namespace: "ns", labels: { "kubernetes.io/service-name": svc } },
        addressType: "IPv4",
        ports: [{ name: "http", port: 8080 }],
        endpoints: [
          { addresses: ["10.42.0.1"], nodeName: "n1" },
          { addresses: ["10.42.0.2"], nodeName: "n1" },
          { addresses: ["10.42.1.1"], nodeName: "n2" },
        ],
      });
    }
    return { world, w, states: () => [world.cluster("cloud")] };
  }
  const slice = (t: ViewTranslator, name: string) => {
    const r = t.resources.get(name);
    return r?.body?.$case === "backendSlice" ? r.body.value : undefined;
  };

  it("sends each backend as its node's IP and the Service's NodePort, one per node", () => {
    const { states } = cluster();
    const t = new ViewTranslator("cloud", "nodeport");
    t.rebuild(states());
    const s = slice(t, "eps/cloud/ns/web-1")!;
    assert.deepEqual(s.ports, [{ name: "http", port: 30080, protocol: 1 }]);
    assert.deepEqual(
      s.endpoints.map((e) => e.addresses[0]),
      ["192.0.2.1", "192.0.2.2"],
    );
  });

  it("reports the pod endpoints of a Service without NodePort as unreachable for such agents, with the reason", () => {
    const { states } = cluster();
    const t = new ViewTranslator("cloud", "nodeport");
    t.rebuild(states());
    assert.equal(slice(t, "eps/cloud/ns/internal-1"), undefined);
    assert.match(
      t.snapshot().diagnosticsOf("eps/cloud/ns/internal-1").join(),
      /3 endpoint\(s\) on pod IPs are unreachable .* Service ns\/internal has no NodePort/,
    );
  });

  const hostNetworkSlice = (name: string, endpoints: Array<{ addresses: string[]; nodeName?: string }>) => ({
    kind: "EndpointSlice",
    metadata: { name, namespace: "ns", labels: { "kubernetes.io/service-name": "internal" } },
    addressType: "IPv4",
    ports: [{ name: "http", port: 6443 }],
    endpoints,
  });
  it("reaches endpoints on node addresses directly, with or without NodePort, the others per endpoint", () => {
    const { w, states } = cluster();
    // a hostNetwork pod on n1 beside a pod on n2, and the API servers' endpoint (no nodeName) on n2's address
    w.upsert(
      hostNetworkSlice("internal-2", [
        { addresses: ["192.0.2.1"], nodeName: "n1" },
        { addresses: ["10.42.1.9"], nodeName: "n2" },
        { addresses: ["192.0.2.2"] },
      ]),
    );
    const t = new ViewTranslator("cloud", "nodeport");
    t.rebuild(states());
    const direct = slice(t, "eps/cloud/ns/internal-2/host-network")!;
    assert.deepEqual(direct.ports, [{ name: "http", port: 6443, protocol: 1 }], "the endpoint's own port");
    assert.deepEqual(
      direct.endpoints.map((e) => `${e.addresses[0]}@${e.nodeName}`),
      ["192.0.2.1@n1", "192.0.2.2@"],
    );
    assert.equal(slice(t, "eps/cloud/ns/internal-2"), undefined, "no NodePort for the pod on n2");
    assert.match(t.snapshot().diagnosticsOf("eps/cloud/ns/internal-2").join(), /^1 endpoint\(s\) on pod IPs/);
    // a pod-IP endpoint whose node address matches nothing stays a pod endpoint; a host-network one on a NodePort Service
    w.upsert({
      kind: "EndpointSlice",
      metadata: { name: "web-2", namespace: "ns", labels: { "kubernetes.io/service-name": "web" } },
      addressType: "IPv4",
      ports: [{ name: "http", port: 8080 }],
      endpoints: [
        { addresses: ["192.0.2.2"], nodeName: "n2" },
        { addresses: ["10.42.0.9"], nodeName: "n1" },
      ],
    });
    t.update(states(), [{ cluster: "cloud", kind: "EndpointSlice", namespace: "ns", name: "web-2" }]);
    assert.deepEqual(
      slice(t, "eps/cloud/ns/web-2/host-network")!.endpoints.map((e) => e.addresses[0]),
      ["192.0.2.2"],
    );
    assert.deepEqual(
      slice(t, "eps/cloud/ns/web-2")!.endpoints.map((e) => e.addresses[0]),
      ["192.0.2.1"],
    );
    assert.deepEqual(slice(t, "eps/cloud/ns/web-2")!.ports, [{ name: "http", port: 30080, protocol: 1 }]);
    sameAsRebuild(t, "cloud", states, "nodeport");
  });

  it("follows Nodes that gain or lose the address of an endpoint without nodeName", () => {
    const { w, world, states } = cluster();
    w.upsert(hostNetworkSlice("kubernetes", [{ addresses: ["192.0.2.9"] }]));
    const t = new ViewTranslator("cloud", "nodeport");
    t.rebuild(states());
    assert.equal(slice(t, "eps/cloud/ns/kubernetes/host-network"), undefined, "not a node address (yet)");
    const node = {
      kind: "Node",
      metadata: { name: "cp" },
      status: { addresses: [{ type: "InternalIP", address: "192.0.2.9" }] },
    };
    w.upsert(node);
    let changed = t.update(states(), [{ cluster: "cloud", kind: "Node", namespace: "", name: "cp" }]);
    assert.ok(changed.has("eps/cloud/ns/kubernetes/host-network"));
    assert.deepEqual(
      slice(t, "eps/cloud/ns/kubernetes/host-network")!.endpoints.map((e) => e.addresses[0]),
      ["192.0.2.9"],
    );
    sameAsRebuild(t, "cloud", states, "nodeport");
    world.remove("cloud", "Node", "", "cp");
    changed = t.update(states(), [{ cluster: "cloud", kind: "Node", namespace: "", name: "cp" }]);
    assert.ok(changed.has("eps/cloud/ns/kubernetes/host-network"));
    assert.equal(slice(t, "eps/cloud/ns/kubernetes/host-network"), undefined);
    sameAsRebuild(t, "cloud", states, "nodeport");
  });

  it("follows a node's IP change to every backend on that node", () => {
    const { w, world, states } = cluster();
    const t = new ViewTranslator("cloud", "nodeport");
    t.rebuild(states());
    w.upsert({
      kind: "Node",
      metadata: { name: "n1" },
      status: { addresses: [{ type: "InternalIP", address: "192.0.2.101" }] },
    });
    void world;
    const changed = t.update(states(), [{ cluster: "cloud", kind: "Node", namespace: "", name: "n1" }]);
    assert.ok(changed.has("eps/cloud/ns/web-1"));
    assert.deepEqual(
      slice(t, "eps/cloud/ns/web-1")!.endpoints.map((e) => e.addresses[0]),
      ["192.0.2.101", "192.0.2.2"],
    );
  });
});

describe("externalTrafficPolicy: Local strict (annotation or hub setting)", () => {
  const service = (name: string, etp: string, annotations: Record<string, string> = {}) => ({
    kind: "Service",
    metadata: { name, namespace: "ns", annotations },
    spec: {
      type: "NodePort",
      clusterIP: "10.96.0.9",
      externalTrafficPolicy: etp,
      ports: [{ name: "http", port: 80, nodePort: 30080 }],
    },
  });
  const strictOf = (t: ViewTranslator, name: string) => {
    const r = t.resources.get(`svc/c/ns/${name}`);
    return r?.body?.$case === "service" ? r.body.value.externalTrafficStrict : undefined;
  };
  it("marks eTP=Local Services strict when annotated, or all of them with the hub setting, and no other", () => {
    const world = new World();
    const w = new WorldWriter(world, "c", silentLogger());
    w.upsert(service("local", "Local"));
    w.upsert(service("annotated", "Local", { "switchyard.io/external-traffic-strict": "true" }));
    w.upsert(service("cluster", "Cluster", { "switchyard.io/external-traffic-strict": "true" }));
    const plain = new ViewTranslator("c");
    plain.rebuild([world.cluster("c")]);
    assert.deepEqual(
      ["local", "annotated", "cluster"].map((n) => strictOf(plain, n)),
      [false, true, false],
    );
    const strict = new ViewTranslator("c", "nodeport", { externalTrafficStrict: true });
    strict.rebuild([world.cluster("c")]);
    assert.deepEqual(
      ["local", "annotated", "cluster"].map((n) => strictOf(strict, n)),
      [true, true, false],
    );
    assert.equal(
      plain.resources.get("svc/c/ns/cluster")!.version,
      strict.resources.get("svc/c/ns/cluster")!.version,
      "the setting changes only eTP=Local Services",
    );
  });
});

describe("global services, MCS and source health", () => {
  const globalSvc = (ip: string, global = true) => ({
    kind: "Service",
    metadata: { name: "cart", namespace: "shop", annotations: { "switchyard.io/global": String(global) } },
    spec: { clusterIP: ip, ports: [{ name: "http", port: 80 }] },
  });
  const sliceOf = (name: string, ip: string) => ({
    kind: "EndpointSlice",
    metadata: { name, namespace: "shop", labels: { "kubernetes.io/service-name": "cart" } },
    addressType: "IPv4",
    ports: [{ name: "http", port: 8080 }],
    endpoints: [{ addresses: [ip] }],
  });
  const tiersOf = (t: ViewTranslator, name: string) => {
    const r = t.resources.get(name);
    return r?.body?.$case === "service" ? r.body.value.backendTiers.map((x) => x.services) : undefined;
  };

  it("merges a global Service across clusters with the home cluster first, and follows opt-in changes", () => {
    const { world, east, west, states } = eastWest();
    east.upsert(globalSvc("10.96.1.10"));
    east.upsert(sliceOf("cart-e", "10.1.0.1"));
    west.upsert(globalSvc("10.97.1.10", false));
    west.upsert(sliceOf("cart-w", "10.2.0.1"));
    const t = new ViewTranslator("east");
    t.rebuild(states());
    assert.deepEqual(tiersOf(t, "svc/east/shop/cart"), [], "one opted-in cluster: no merging");
    // west opts in: both clusters' resources now list both, home first
    west.upsert(globalSvc("10.97.1.10"));
    const changed = t.update(states(), [
      { cluster: "west", kind: "Service", namespace: "shop", name: "cart" },
    ]);
    assert.ok(changed.has("svc/east/shop/cart"), "the peer's resource changes too");
    for (const n of ["svc/east/shop/cart", "svc/west/shop/cart"])
      assert.deepEqual(tiersOf(t, n), [["svc/east/shop/cart"], ["svc/west/shop/cart"]]);
    sameAsRebuild(t, "east", states);
    // west's view prefers west
    const tw = new ViewTranslator("west");
    tw.rebuild([world.cluster("west"), world.cluster("east")]);
    assert.deepEqual(tiersOf(tw, "svc/east/shop/cart"), [["svc/west/shop/cart"], ["svc/east/shop/cart"]]);
  });

  it("resolves a ServiceImport's clusterset IP to the exporting clusters, and follows exports", () => {
    const { east, west, states } = eastWest();
    east.upsert({
      kind: "ServiceImport",
      metadata: { name: "cart", namespace: "shop" },
      spec: { type: "ClusterSetIP", ips: ["10.99.0.5"], ports: [{ name: "http", port: 80 }] },
    });
    west.upsert(globalSvc("10.97.1.10", false));
    const t = new ViewTranslator("east");
    t.rebuild(states());
    assert.match(t.snapshot().diagnosticsOf("mcs/east/shop/cart").join(), /no cluster of the view exports/);
    assert.deepEqual(tiersOf(t, "mcs/east/shop/cart"), [[]]);
    west.upsert({ kind: "ServiceExport", metadata: { name: "cart", namespace: "shop" } });
    t.update(states(), [{ cluster: "west", kind: "ServiceExport", namespace: "shop", name: "cart" }]);
    assert.deepEqual(tiersOf(t, "mcs/east/shop/cart"), [["svc/west/shop/cart"]]);
    assert.deepEqual(t.snapshot().diagnosticsOf("mcs/east/shop/cart"), []);
    sameAsRebuild(t, "east", states);
  });

  it("withdraws a stale cluster's backends from other clusters' agents only, and brings them back", () => {
    const { world, east, west, states } = eastWest();
    east.upsert(globalSvc("10.96.1.10"));
    east.upsert(sliceOf("cart-e", "10.1.0.1"));
    west.upsert(globalSvc("10.97.1.10"));
    west.upsert(sliceOf("cart-w", "10.2.0.1"));
    const te = new ViewTranslator("east");
    te.rebuild(states());
    const tw = new ViewTranslator("west");
    tw.rebuild([world.cluster("west"), world.cluster("east")]);
    const health = { stale: true, withdrawn: true, staleSince: 1, reason: "connection refused" };
    world.setHealth("west", health);
    const change = [{ cluster: "west", kind: "Cluster" as const, namespace: "", name: "west" }];
    const changed = te.update(states(), change);
    assert.ok(changed.has("eps/west/shop/cart-w"));
    assert.equal(te.resources.has("eps/west/shop/cart-w"), false, "east's agents lose west's backends");
    assert.equal(te.resources.has("eps/east/shop/cart-e"), true);
    assert.match(te.snapshot().diagnosticsOf("svc/west/shop/cart").join(), /connection refused.*withdrawn/);
    tw.update([world.cluster("west"), world.cluster("east")], change);
    assert.equal(tw.resources.has("eps/west/shop/cart-w"), true, "west's own agents keep them");
    sameAsRebuild(te, "east", states);
    world.setHealth("west", { stale: false, withdrawn: false, staleSince: undefined, reason: undefined });
    te.update(states(), change);
    assert.equal(te.resources.has("eps/west/shop/cart-w"), true, "recovery brings them back");
    assert.deepEqual(te.snapshot().diagnosticsOf("svc/west/shop/cart"), []);
  });
});
