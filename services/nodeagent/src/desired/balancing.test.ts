/**
 * DesiredIndex with BalancingPolicies: a policy's frontend replaces the
 * Service's entry of its key with the hub-addressed backends of the
 * frontend's family; a nodeSelector applies only where the node's marker
 * is; a Service frontend with no usable backend stays the Service's; an
 * edit in place changes the one entry.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BalancingAssignment,
  BalancingMode,
  Protocol,
  RedirectFrontendKind,
  type Resource,
} from "@switchyard/proto/assignment";
import { NatType } from "../bpf/layout.ts";
import { eps, svc } from "../testing/assignments.ts";
import { DesiredIndex } from "./compute-desired.ts";

const NODE = { name: "node-1", addresses: ["192.0.2.100"] };
const KEY = "10.96.0.10|80|6|0";
const KEY6 = "fd00:96::a|80|6|0";
const VIP_KEY = "10.96.60.1|443|6|0";

type Ep = { ip: string; ready?: boolean; serving?: boolean; terminating?: boolean };

function bp(
  name: string,
  opts: {
    frontends: Array<{ ip: string; port: number; portName: string }>;
    address?: boolean;
    port?: number;
    endpoints: Ep[];
    selectedNodesOnly?: boolean;
  },
): Resource {
  const value = BalancingAssignment.fromPartial({
    cluster: "c",
    namespace: "ns",
    name,
    frontends: opts.frontends.map((f) => ({ ...f, protocol: Protocol.PROTOCOL_TCP })),
    frontendKind: opts.address
      ? RedirectFrontendKind.REDIRECT_FRONTEND_KIND_ADDRESS
      : RedirectFrontendKind.REDIRECT_FRONTEND_KIND_SERVICE,
    mode: BalancingMode.BALANCING_MODE_POD_ENDPOINT,
    ports: [{ name: "p", port: opts.port ?? 9090, protocol: Protocol.PROTOCOL_TCP }],
    endpoints: opts.endpoints.map((e) => ({
      addresses: [e.ip],
      nodeName: "node-2",
      ready: e.ready ?? true,
      serving: e.serving ?? e.ready ?? true,
      terminating: e.terminating ?? false,
    })),
    selectedNodesOnly: opts.selectedNodesOnly ?? false,
  });
  return {
    name: `bp/c/ns/${name}`,
    version: JSON.stringify(value),
    body: { $case: "balancing", value },
  };
}

function marker(policy: string, node: string): Resource {
  return {
    name: `bpn/c/ns/${policy}/${node}`,
    version: "1",
    body: { $case: "balancingNode", value: { policy: `bp/c/ns/${policy}` } },
  };
}

function index(resources: Resource[]): DesiredIndex {
  const d = new DesiredIndex(NODE);
  d.update(resources.map((r) => ({ before: undefined, after: r })));
  return d;
}

const backendsOf = (d: DesiredIndex, key: string) =>
  d.frontends.get(key)?.backends.map((b) => `${b.ip}:${b.port}`);
const webFrontends = [
  { ip: "10.96.0.10", port: 80, portName: "p" },
  { ip: "fd00:96::a", port: 80, portName: "p" },
];

describe("DesiredIndex: BalancingPolicy", () => {
  it("takes the Service's frontend: its backends of each family at the policy's port, named after the policy", () => {
    const d = index([
      svc("web", "10.96.0.10"),
      eps("web", ["10.0.0.1"]),
      bp("web-bp", {
        frontends: webFrontends,
        endpoints: [{ ip: "10.244.1.10" }, { ip: "fd00:244::10" }, { ip: "10.244.2.10", ready: false }],
      }),
    ]);
    const fe = d.frontends.get(KEY)!;
    assert.equal(fe.service, "bp/c/ns/web-bp");
    assert.equal(fe.natType, NatType.balancing);
    assert.deepEqual(backendsOf(d, KEY), ["10.244.1.10:9090"]);
    assert.deepEqual(backendsOf(d, KEY6), ["fd00:244::10:9090"]);
  });

  it("serving-and-terminating backends when none is ready", () => {
    const d = index([
      bp("web-bp", {
        frontends: webFrontends,
        endpoints: [
          { ip: "10.244.1.10", ready: false, serving: true, terminating: true },
          { ip: "10.244.1.11", ready: false, serving: false },
        ],
      }),
    ]);
    assert.deepEqual(backendsOf(d, KEY), ["10.244.1.10:9090"]);
  });

  it("a Service frontend with no usable backend stays the Service's; an address frontend with none refuses", () => {
    const d = index([
      svc("web", "10.96.0.10"),
      eps("web", ["10.0.0.1"]),
      bp("web-bp", { frontends: webFrontends, endpoints: [] }),
      bp("vip", {
        frontends: [{ ip: "10.96.60.1", port: 443, portName: "p" }],
        address: true,
        endpoints: [],
      }),
    ]);
    assert.equal(d.frontends.get(KEY)?.service, "svc/c/ns/web");
    assert.deepEqual(backendsOf(d, KEY), ["10.0.0.1:8080"]);
    assert.equal(d.frontends.get(VIP_KEY)?.service, "bp/c/ns/vip");
    assert.deepEqual(backendsOf(d, VIP_KEY), []);
  });

  it("with a nodeSelector it applies only on a node holding its marker (another node's is ignored)", () => {
    const policy = bp("web-bp", {
      frontends: webFrontends,
      endpoints: [{ ip: "10.244.1.10" }],
      selectedNodesOnly: true,
    });
    const base = [svc("web", "10.96.0.10"), eps("web", ["10.0.0.1"]), policy];
    assert.equal(index([...base, marker("web-bp", "node-2")]).frontends.get(KEY)?.service, "svc/c/ns/web");
    const d = index([...base, marker("web-bp", "node-1")]);
    assert.equal(d.frontends.get(KEY)?.service, "bp/c/ns/web-bp");
    // the marker goes: the Service's entry is back
    const keys = d.update([{ before: marker("web-bp", "node-1"), after: undefined }]);
    assert.ok(keys.has(KEY));
    assert.equal(d.frontends.get(KEY)?.service, "svc/c/ns/web");
  });

  it("an edit in place rewrites the entry of its key; removal gives the frontend back to the Service", () => {
    const v1 = bp("web-bp", { frontends: webFrontends, endpoints: [{ ip: "10.244.1.10" }] });
    const v2 = bp("web-bp", { frontends: webFrontends, endpoints: [{ ip: "10.244.1.12" }] });
    const d = index([svc("web", "10.96.0.10"), eps("web", ["10.0.0.1"]), v1]);
    const keys = d.update([{ before: v1, after: v2 }]);
    assert.ok(keys.has(KEY));
    assert.deepEqual(backendsOf(d, KEY), ["10.244.1.12:9090"]);
    d.update([{ before: v2, after: undefined }]);
    assert.equal(d.frontends.get(KEY)?.service, "svc/c/ns/web");
  });
});
