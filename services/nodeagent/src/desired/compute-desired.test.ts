import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  NatMode,
  Protocol,
  type Resource,
  type ServiceAssignment,
  TrafficDistribution,
} from "@switchyard/proto/assignment";
import { SY_FE_LOCAL_ONLY } from "../bpf/layout.ts";
import { computeDesired } from "./compute-desired.ts";

const NODE = { name: "node-1", addresses: ["192.0.2.100"] };

function svc(over: Partial<ServiceAssignment> = {}): Resource {
  return {
    name: "svc/c/ns/web",
    version: "1",
    body: {
      $case: "service",
      value: {
        cluster: "c",
        namespace: "ns",
        name: "web",
        frontends: [
          {
            ip: "10.0.0.1",
            port: 9090,
            protocol: Protocol.PROTOCOL_TCP,
            mode: NatMode.NAT_MODE_CLUSTER_IP,
            portName: "metrics",
          },
        ],
        externalTrafficLocal: false,
        internalTrafficLocal: false,
        affinityTimeoutSeconds: 0,
        backendTiers: [],
        trafficDistribution: TrafficDistribution.TRAFFIC_DISTRIBUTION_UNSPECIFIED,
        externalTrafficStrict: false,
        ...over,
      },
    },
  };
}

type Ep = {
  ip: string;
  ready: boolean;
  serving?: boolean;
  terminating?: boolean;
  node?: string;
  zone?: string;
  forZones?: string[];
};

function slice(name: string, port: number, endpoints: Ep[], service = "svc/c/ns/web"): Resource {
  return {
    name,
    version: "1",
    body: {
      $case: "backendSlice",
      value: {
        service,
        ports: [{ name: "metrics", port, protocol: Protocol.PROTOCOL_TCP }],
        endpoints: endpoints.map((e) => ({
          addresses: [e.ip],
          nodeName: e.node ?? "node-2",
          ready: e.ready,
          serving: e.serving ?? e.ready,
          terminating: e.terminating ?? false,
          zone: e.zone ?? "",
          forZones: e.forZones ?? [],
        })),
      },
    },
  };
}

const backendsOf = (rs: Resource[]) =>
  [...computeDesired(rs, NODE).frontends.values()].map((f) => f.backends);

describe("computeDesired", () => {
  it("resolves a named targetPort per slice, so pods may use different numbers for one name", () => {
    const [b] = backendsOf([
      svc(),
      slice("eps/a", 9100, [{ ip: "192.0.2.1", ready: true }]),
      slice("eps/b", 9200, [{ ip: "192.0.2.2", ready: true }]),
    ]);
    assert.deepEqual(b, [
      { ip: "192.0.2.1", port: 9100 },
      { ip: "192.0.2.2", port: 9200 },
    ]);
  });

  it("uses ready endpoints only while one exists, and serving-terminating ones after that", () => {
    const [mixed] = backendsOf([
      svc(),
      slice("eps/a", 9100, [
        { ip: "192.0.2.1", ready: true },
        { ip: "192.0.2.2", ready: false, serving: true, terminating: true },
      ]),
    ]);
    assert.deepEqual(mixed, [{ ip: "192.0.2.1", port: 9100 }]);
    const [onlyTerminating] = backendsOf([
      svc(),
      slice("eps/a", 9100, [{ ip: "192.0.2.2", ready: false, serving: true, terminating: true }]),
    ]);
    assert.deepEqual(onlyTerminating, [{ ip: "192.0.2.2", port: 9100 }]);
    const [notServing] = backendsOf([
      svc(),
      slice("eps/a", 9100, [{ ip: "192.0.2.3", ready: false, serving: false, terminating: true }]),
    ]);
    assert.deepEqual(notServing, []);
  });

  it("keeps a frontend with no backends (connects are refused, not passed through)", () => {
    assert.deepEqual(backendsOf([svc()]), [[]]);
  });

  it("internalTrafficPolicy Local keeps this node's backends only, and marks the frontend", () => {
    const eps = slice("eps/a", 9100, [
      { ip: "192.0.2.1", ready: true, node: "node-1" },
      { ip: "192.0.2.2", ready: true, node: "node-2" },
    ]);
    const d = computeDesired([svc({ internalTrafficLocal: true }), eps], NODE);
    const f = [...d.frontends.values()][0]!;
    assert.deepEqual(f.backends, [{ ip: "192.0.2.1", port: 9100 }]);
    assert.equal(f.flags, 1);
    const ext = computeDesired([svc({ externalTrafficLocal: true }), eps], NODE);
    assert.equal(
      [...ext.frontends.values()][0]!.backends.length,
      2,
      "externalTrafficPolicy does not apply to ClusterIP",
    );
  });

  it("classifies an endpoint without nodeName by this node's addresses, else as remote", () => {
    const eps: Resource = slice("eps/a", 6443, [
      { ip: "192.0.2.100", ready: true, node: "" },
      { ip: "192.0.2.50", ready: true, node: "" },
    ]);
    const [b] = backendsOf([svc({ internalTrafficLocal: true }), eps]);
    assert.deepEqual(b, [{ ip: "192.0.2.100", port: 6443 }]);
  });

  it("turns a NodePort into one port-keyed entry for every node address", () => {
    const d = computeDesired(
      [
        svc({
          frontends: [
            {
              ip: "",
              port: 30080,
              protocol: Protocol.PROTOCOL_TCP,
              mode: NatMode.NAT_MODE_NODE_PORT,
              portName: "metrics",
            },
          ],
          externalTrafficLocal: true,
        }),
        slice("eps/a", 9100, [{ ip: "192.0.2.9", ready: true, node: "node-2" }]),
      ],
      NODE,
    );
    const [v4, v6] = [...d.frontends.values()];
    assert.deepEqual(
      v4!.key,
      { ip: "0.0.0.0", port: 30080, proto: 6, scope: 1 },
      "one entry for every IPv4 node address",
    );
    assert.deepEqual(
      v6!.key,
      { ip: "::", port: 30080, proto: 6, scope: 1 },
      "and one for every IPv6 node address",
    );
    assert.deepEqual(
      v4!.backends,
      [{ ip: "192.0.2.9", port: 9100 }],
      "externalTrafficPolicy Local, connect from this node: the internal policy (Cluster) applies",
    );
    assert.deepEqual([...d.nodeIps], ["192.0.2.100"]);
  });

  describe("traffic policies: external frontends of an eTP=Local Service follow the internal policy unless strict", () => {
    const frontends: ServiceAssignment["frontends"] = [
      {
        ip: "10.0.0.1",
        port: 80,
        protocol: Protocol.PROTOCOL_TCP,
        mode: NatMode.NAT_MODE_CLUSTER_IP,
        portName: "metrics",
      },
      {
        ip: "198.51.100.7",
        port: 80,
        protocol: Protocol.PROTOCOL_TCP,
        mode: NatMode.NAT_MODE_EXTERNAL_IP,
        portName: "metrics",
      },
      {
        ip: "203.0.113.7",
        port: 80,
        protocol: Protocol.PROTOCOL_TCP,
        mode: NatMode.NAT_MODE_LOAD_BALANCER,
        portName: "metrics",
      },
      {
        ip: "",
        port: 30080,
        protocol: Protocol.PROTOCOL_TCP,
        mode: NatMode.NAT_MODE_NODE_PORT,
        portName: "metrics",
      },
    ];
    const remote: Ep = { ip: "192.0.2.2", ready: true, node: "node-2" };
    const local: Ep = { ip: "192.0.2.1", ready: true, node: "node-1" };
    /** per frontend kind: backend IPs, and "local" when the frontend is marked local-only */
    const resolve = (policy: Partial<ServiceAssignment>, eps: Ep[]) => {
      const d = computeDesired([svc({ frontends, ...policy }), slice("eps/a", 9100, eps)], NODE);
      const out: Record<string, string> = {};
      for (const f of d.frontends.values()) {
        if (f.key.ip === "::") continue;
        const kind = f.key.ip === "0.0.0.0" ? "nodePort" : f.key.ip === "10.0.0.1" ? "clusterIP" : f.key.ip;
        out[kind] =
          `${f.backends.map((b) => b.ip).join(",") || "-"}${f.flags & SY_FE_LOCAL_ONLY ? " local" : ""}`;
      }
      return out;
    };
    const external = (v: string) => ({ "198.51.100.7": v, "203.0.113.7": v, nodePort: v });
    const cases: Array<[string, Partial<ServiceAssignment>, Ep[], Record<string, string>]> = [
      [
        "eTP=Local, iTP=Cluster, no local endpoint: every ready endpoint (kube-proxy's local sources, Cilium's socket LB)",
        { externalTrafficLocal: true },
        [remote],
        { clusterIP: "192.0.2.2", ...external("192.0.2.2") },
      ],
      [
        "eTP=Local, iTP=Cluster, a local endpoint: still every ready endpoint",
        { externalTrafficLocal: true },
        [local, remote],
        { clusterIP: "192.0.2.1,192.0.2.2", ...external("192.0.2.1,192.0.2.2") },
      ],
      [
        "eTP=Local strict, no local endpoint: external frontends refused (empty set, local-only)",
        { externalTrafficLocal: true, externalTrafficStrict: true },
        [remote],
        { clusterIP: "192.0.2.2", ...external("- local") },
      ],
      [
        "eTP=Local strict, a local endpoint: external frontends use it alone",
        { externalTrafficLocal: true, externalTrafficStrict: true },
        [local, remote],
        { clusterIP: "192.0.2.1,192.0.2.2", ...external("192.0.2.1 local") },
      ],
      [
        "eTP=Local, iTP=Local: this node's endpoints everywhere",
        { externalTrafficLocal: true, internalTrafficLocal: true },
        [remote],
        { clusterIP: "- local", ...external("- local") },
      ],
      [
        "eTP=Cluster, iTP=Local: external frontends keep every endpoint (the external policy is Cluster)",
        { internalTrafficLocal: true },
        [local, remote],
        { clusterIP: "192.0.2.1 local", ...external("192.0.2.1,192.0.2.2") },
      ],
      [
        "the strict flag alone (eTP=Cluster) changes nothing",
        { externalTrafficStrict: true },
        [remote],
        { clusterIP: "192.0.2.2", ...external("192.0.2.2") },
      ],
    ];
    for (const [name, policy, eps, want] of cases)
      it(name, () => assert.deepEqual(resolve(policy, eps), want));
  });

  describe("a host in a node-port view (slices as the hub sends them)", () => {
    const HOST = { name: "host-1", addresses: ["198.51.100.200"] };
    const backendSlice = (
      name: string,
      service: string,
      port: number,
      endpoints: Array<{ ip: string; node: string; ready: boolean }>,
    ): Resource => ({
      name,
      version: "1",
      body: {
        $case: "backendSlice",
        value: {
          service,
          ports: [{ name: "http", port, protocol: Protocol.PROTOCOL_TCP }],
          endpoints: endpoints.map((e) => ({
            addresses: [e.ip],
            nodeName: e.node,
            ready: e.ready,
            serving: e.ready,
            terminating: false,
            zone: "",
            forZones: [],
          })),
        },
      },
    });
    const service = (name: string, over: Partial<ServiceAssignment>): Resource => {
      const r = svc({
        name,
        frontends: [
          {
            ip: "10.96.7.1",
            port: 80,
            protocol: Protocol.PROTOCOL_TCP,
            mode: NatMode.NAT_MODE_CLUSTER_IP,
            portName: "http",
          },
          {
            ip: "198.51.100.7",
            port: 80,
            protocol: Protocol.PROTOCOL_TCP,
            mode: NatMode.NAT_MODE_EXTERNAL_IP,
            portName: "http",
          },
        ],
        ...over,
      });
      return { ...r, name: `svc/c/ns/${name}` };
    };
    const byIp = (rs: Resource[]) =>
      Object.fromEntries(
        [...computeDesired(rs, HOST).frontends.values()].map((f) => [
          f.key.ip,
          `${f.backends.map((b) => `${b.ip}:${b.port}`).join(",") || "-"}${f.flags & SY_FE_LOCAL_ONLY ? " local" : ""}`,
        ]),
      );
    // ingress's node-port slice: worker-a has a ready endpoint, worker-b none
    const ingressSlice = backendSlice("eps/c/ns/ingress-1", "svc/c/ns/ingress", 30780, [
      { ip: "192.0.2.51", node: "worker-a", ready: true },
      { ip: "192.0.2.52", node: "worker-b", ready: false },
    ]);

    it("eTP=Local: the NodePort of nodes with a ready endpoint, from every frontend", () => {
      assert.deepEqual(byIp([service("ingress", { externalTrafficLocal: true }), ingressSlice]), {
        "10.96.7.1": "192.0.2.51:30780",
        "198.51.100.7": "192.0.2.51:30780",
      });
    });

    it("eTP=Local strict: external frontends refused on a host (no endpoint is on it)", () => {
      assert.deepEqual(
        byIp([service("ingress", { externalTrafficLocal: true, externalTrafficStrict: true }), ingressSlice]),
        { "10.96.7.1": "192.0.2.51:30780", "198.51.100.7": "- local" },
      );
    });

    it("endpoints on node addresses directly (default/kubernetes: no nodeName), mixed with node ports per endpoint", () => {
      const mixed = [
        service("mixed", {}),
        backendSlice("eps/c/ns/mixed-1", "svc/c/ns/mixed", 30800, [
          { ip: "192.0.2.52", node: "worker-b", ready: true },
        ]),
        backendSlice("eps/c/ns/mixed-1/host-network", "svc/c/ns/mixed", 8081, [
          { ip: "192.0.2.51", node: "worker-a", ready: true },
          { ip: "192.0.2.50", node: "", ready: true },
        ]),
      ];
      assert.deepEqual(byIp(mixed), {
        "10.96.7.1": "192.0.2.50:8081,192.0.2.51:8081,192.0.2.52:30800",
        "198.51.100.7": "192.0.2.50:8081,192.0.2.51:8081,192.0.2.52:30800",
      });
    });
  });

  it("gives every frontend of one service port the same affinity scope", () => {
    const d = computeDesired(
      [
        svc({
          affinityTimeoutSeconds: 30,
          frontends: [
            {
              ip: "10.0.0.1",
              port: 9090,
              protocol: Protocol.PROTOCOL_TCP,
              mode: NatMode.NAT_MODE_CLUSTER_IP,
              portName: "metrics",
            },
            {
              ip: "",
              port: 30090,
              protocol: Protocol.PROTOCOL_TCP,
              mode: NatMode.NAT_MODE_NODE_PORT,
              portName: "metrics",
            },
          ],
        }),
      ],
      NODE,
    );
    const [a, b] = [...d.frontends.values()];
    assert.equal(a!.affinityTimeoutS, 30);
    assert.ok(a!.portId !== 0);
    assert.equal(a!.portId, b!.portId);
  });

  it("gives each ClusterIP of a dual-stack Service the endpoints of its own family", () => {
    const dual: Resource = {
      name: "eps/v6",
      version: "1",
      body: {
        $case: "backendSlice",
        value: {
          service: "svc/c/ns/web",
          ports: [{ name: "metrics", port: 9100, protocol: Protocol.PROTOCOL_TCP }],
          endpoints: [
            {
              addresses: ["fd00::1"],
              nodeName: "n",
              ready: true,
              serving: true,
              terminating: false,
              zone: "",
              forZones: [],
            },
          ],
        },
      },
    };
    const d = computeDesired(
      [
        svc({
          frontends: [
            {
              ip: "10.0.0.1",
              port: 9090,
              protocol: Protocol.PROTOCOL_TCP,
              mode: NatMode.NAT_MODE_CLUSTER_IP,
              portName: "metrics",
            },
            {
              ip: "fd00:96::1",
              port: 9090,
              protocol: Protocol.PROTOCOL_TCP,
              mode: NatMode.NAT_MODE_CLUSTER_IP,
              portName: "metrics",
            },
          ],
        }),
        slice("eps/v4", 9100, [{ ip: "192.0.2.1", ready: true }]),
        dual,
      ],
      NODE,
    );
    const byIp = new Map([...d.frontends.values()].map((f) => [f.key.ip, f.backends.map((b) => b.ip)]));
    assert.deepEqual(byIp.get("10.0.0.1"), ["192.0.2.1"]);
    assert.deepEqual(byIp.get("fd00:96::1"), ["fd00::1"]);
  });

  it("uses the first backend tier with a usable backend: own cluster first, the others when it has none", () => {
    const tiers = [{ services: ["svc/c/ns/web"] }, { services: ["svc/d/ns/web"] }];
    const remote = slice("eps/d", 9100, [{ ip: "192.0.2.50", ready: true }], "svc/d/ns/web");
    const [both] = backendsOf([
      svc({ backendTiers: tiers }),
      slice("eps/c", 9100, [{ ip: "192.0.2.1", ready: true }]),
      remote,
    ]);
    assert.deepEqual(both, [{ ip: "192.0.2.1", port: 9100 }], "local cluster preferred");
    const [failover] = backendsOf([
      svc({ backendTiers: tiers }),
      slice("eps/c", 9100, [{ ip: "192.0.2.1", ready: false }]),
      remote,
    ]);
    assert.deepEqual(
      failover,
      [{ ip: "192.0.2.50", port: 9100 }],
      "remote takes over when local has none ready",
    );
  });

  it("prefers same-zone (hints first) and same-node backends when the Service asks, else all", () => {
    const node = { ...NODE, zone: "z1" };
    const eps: Ep[] = [
      { ip: "192.0.2.1", ready: true, zone: "z1", node: "other" },
      { ip: "192.0.2.2", ready: true, zone: "z2", node: NODE.name },
      { ip: "192.0.2.3", ready: true, zone: "z2", forZones: ["z1"], node: "other" },
    ];
    const pick = (d: TrafficDistribution, n: typeof node) =>
      [
        ...computeDesired([svc({ trafficDistribution: d }), slice("eps/c", 9100, eps)], n).frontends.values(),
      ][0]!.backends.map((b) => b.ip);
    assert.deepEqual(pick(TrafficDistribution.TRAFFIC_DISTRIBUTION_UNSPECIFIED, node), [
      "192.0.2.1",
      "192.0.2.2",
      "192.0.2.3",
    ]);
    assert.deepEqual(pick(TrafficDistribution.TRAFFIC_DISTRIBUTION_PREFER_SAME_ZONE, node), [
      "192.0.2.1",
      "192.0.2.3",
    ]);
    assert.deepEqual(pick(TrafficDistribution.TRAFFIC_DISTRIBUTION_PREFER_SAME_NODE, node), ["192.0.2.2"]);
    assert.deepEqual(
      pick(TrafficDistribution.TRAFFIC_DISTRIBUTION_PREFER_SAME_ZONE, { ...node, zone: "z9" }),
      ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
      "no backend in this zone: all of them",
    );
  });
});
