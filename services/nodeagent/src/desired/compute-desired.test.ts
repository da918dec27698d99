import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  NatMode,
  Protocol,
  type Resource,
  type ServiceAssignment,
  TrafficDistribution,
} from "@switchyard/proto/assignment";
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
      [],
      "externalTrafficPolicy Local with no local backend: empty set, connects refused",
    );
    assert.deepEqual([...d.nodeIps], ["192.0.2.100"]);
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
