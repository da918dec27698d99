/**
 * DesiredIndex with LocalRedirectPolicies: a policy's frontend replaces the
 * Service's entry of its key, redirects to this node's ready pods at the
 * toPort, and carries the Service's backends as its fallback; every change
 * (pods, Service endpoints, the policy) recomputes only what it touches.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Resource } from "@switchyard/proto/assignment";
import { NatMode, NatType, SY_FE_SKIP_FROM_BACKEND } from "../bpf/layout.ts";
import { eps, svc } from "../testing/assignments.ts";
import { type LocalPodSpec, lrpbResource, lrpResource } from "../testing/local-redirect.ts";
import { DesiredIndex } from "./compute-desired.ts";

const NODE = { name: "node-1", addresses: ["192.0.2.100"] };
const KEY = "10.96.0.10|80|6|0";
const DNS_BACKENDS: Array<[string, number]> = [
  ["10.0.0.1", 8080],
  ["10.0.0.2", 8080],
];
const VIP_KEY = "169.254.20.10|53|6|0";

/** svc "dns" on 10.96.0.10:80 (port name "p") with backends on 8080 */
const dnsService = () => [svc("dns", "10.96.0.10"), eps("dns", ["10.0.0.1", "10.0.0.2"])];
const serviceLrp = (opts = {}) =>
  lrpResource("nld", "service", [{ ip: "10.96.0.10", port: 80, portName: "p" }], opts);
const addressLrp = (fallback?: string) =>
  lrpResource("nld", "address", [
    {
      ip: "169.254.20.10",
      port: 53,
      portName: "p",
      ...(fallback ? { fallbackService: fallback, fallbackPortName: "p" } : {}),
    },
  ]);
const pods = (list: LocalPodSpec[], node = "node-1") =>
  lrpbResource("nld", node, [{ name: "p", port: 5353 }], list);

function index(resources: Resource[]): DesiredIndex {
  const d = new DesiredIndex(NODE);
  d.update(resources.map((r) => ({ before: undefined, after: r })));
  return d;
}

describe("DesiredIndex: LocalRedirectPolicy", () => {
  const cases: Array<{
    name: string;
    resources: Resource[];
    key: string;
    backends: Array<[string, number]>;
    fallback: Array<[string, number]>;
    mode: number;
  }> = [
    {
      name: "a Service frontend: ready local pods at the toPort, the Service's backends as fallback",
      resources: [...dnsService(), serviceLrp(), pods([{ name: "a", ips: ["10.1.0.5"] }])],
      key: KEY,
      backends: [["10.1.0.5", 5353]],
      fallback: DNS_BACKENDS,
      mode: NatMode.localRedirectService,
    },
    {
      name: "not-ready and terminating pods are never redirect targets",
      resources: [
        ...dnsService(),
        serviceLrp(),
        pods([
          { name: "a", ips: ["10.1.0.5"], ready: false },
          { name: "b", ips: ["10.1.0.6"], terminating: true },
          { name: "c", ips: ["10.1.0.7"] },
        ]),
      ],
      key: KEY,
      backends: [["10.1.0.7", 5353]],
      fallback: DNS_BACKENDS,
      mode: NatMode.localRedirectService,
    },
    {
      name: "another node's pods are ignored (the hub sends only this node's)",
      resources: [...dnsService(), serviceLrp(), pods([{ name: "x", ips: ["10.1.0.9"] }], "node-2")],
      key: KEY,
      backends: [],
      fallback: DNS_BACKENDS,
      mode: NatMode.localRedirectService,
    },
    {
      name: "an address frontend with a fallback Service takes that Service's ClusterIP port of the name",
      resources: [...dnsService(), addressLrp("svc/c/ns/dns"), pods([{ name: "a", ips: ["10.1.0.5"] }])],
      key: VIP_KEY,
      backends: [["10.1.0.5", 5353]],
      fallback: DNS_BACKENDS,
      mode: NatMode.localRedirectAddress,
    },
    {
      name: "an address frontend without a fallback Service has none (refused)",
      resources: [...dnsService(), addressLrp(), pods([{ name: "a", ips: ["10.1.0.5"] }])],
      key: VIP_KEY,
      backends: [["10.1.0.5", 5353]],
      fallback: [],
      mode: NatMode.localRedirectAddress,
    },
    {
      name: "only pod addresses of the frontend's family",
      resources: [...dnsService(), serviceLrp(), pods([{ name: "a", ips: ["fd00::5", "10.1.0.5"] }])],
      key: KEY,
      backends: [["10.1.0.5", 5353]],
      fallback: DNS_BACKENDS,
      mode: NatMode.localRedirectService,
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const d = index(c.resources);
      const fe = d.frontends.get(c.key);
      assert.ok(fe, `frontend ${c.key}`);
      assert.equal(fe.natType, NatType.localRedirect);
      assert.equal(fe.natMode, c.mode);
      assert.equal(fe.service, "lrp/test/ns/nld");
      assert.deepEqual(
        fe.backends.map((b) => [b.ip, b.port]),
        c.backends,
      );
      assert.deepEqual(
        (fe.fallback ?? []).map((b) => [b.ip, b.port]),
        c.fallback,
      );
      assert.equal(d.ownsFrontends("lrp/test/ns/nld"), true);
    });

  it("the Service's own entry is not written for the policy's key, and comes back when the policy goes", () => {
    const d = index([...dnsService(), serviceLrp()]);
    assert.equal(d.ownsFrontends("svc/c/ns/dns"), false);
    const keys = d.update([{ before: serviceLrp(), after: undefined }]);
    assert.ok(keys.has(KEY));
    assert.equal(d.frontends.get(KEY)?.service, "svc/c/ns/dns");
    assert.equal(d.frontends.get(KEY)?.natType, NatType.service);
    assert.equal(d.ownsFrontends("lrp/test/ns/nld"), false);
  });

  it("a pod change recomputes the policy's frontend; a Service endpoint change its fallback", () => {
    const d = index([...dnsService(), serviceLrp(), pods([{ name: "a", ips: ["10.1.0.5"] }])]);
    let keys = d.update([{ before: pods([{ name: "a", ips: ["10.1.0.5"] }]), after: pods([]) }]);
    assert.deepEqual([...keys], [KEY]);
    assert.deepEqual(d.frontends.get(KEY)?.backends, []);
    keys = d.update([{ before: eps("dns", ["10.0.0.1", "10.0.0.2"]), after: eps("dns", ["10.0.0.3"]) }]);
    assert.ok(keys.has(KEY));
    assert.equal(d.frontends.get(KEY)?.natType, NatType.localRedirect);
    assert.deepEqual(d.frontends.get(KEY)?.fallback, [{ ip: "10.0.0.3", port: 8080 }]);
  });

  it("an address frontend's fallback follows its fallback Service's endpoints", () => {
    const d = index([...dnsService(), addressLrp("svc/c/ns/dns")]);
    const keys = d.update([
      { before: eps("dns", ["10.0.0.1", "10.0.0.2"]), after: eps("dns", ["10.0.0.9"]) },
    ]);
    assert.ok(keys.has(VIP_KEY));
    assert.deepEqual(d.frontends.get(VIP_KEY)?.fallback, [{ ip: "10.0.0.9", port: 8080 }]);
  });

  it("a fallback Service that appears later is picked up", () => {
    const d = index([addressLrp("svc/c/ns/dns")]);
    assert.deepEqual(d.frontends.get(VIP_KEY)?.fallback, []);
    d.update(dnsService().map((r) => ({ before: undefined, after: r })));
    assert.equal(d.frontends.get(VIP_KEY)?.fallback?.length, 2);
  });

  it("the same policy and pods in any order give the same frontends", () => {
    const rs = [...dnsService(), serviceLrp({ qosPerSecond: 5 }), pods([{ name: "a", ips: ["10.1.0.5"] }])];
    const a = index(rs);
    const b = new DesiredIndex(NODE);
    for (const r of [...rs].reverse()) b.update([{ before: undefined, after: r }]);
    assert.deepEqual([...a.frontends.entries()].sort(), [...b.frontends.entries()].sort());
    assert.equal(a.frontends.get(KEY)?.qosPerSecond, 5);
  });

  it("skipRedirectFromBackend flags the frontend and lists the local pods' UIDs", () => {
    const d = index([
      ...dnsService(),
      serviceLrp({ skipRedirectFromBackend: true }),
      pods([
        { name: "a", ips: ["10.1.0.5"], uid: "u-1" },
        { name: "b", ips: ["10.1.0.6"], ready: false, uid: "u-2" },
      ]),
    ]);
    assert.equal(d.frontends.get(KEY)?.flags, SY_FE_SKIP_FROM_BACKEND);
    assert.deepEqual([...d.skipPods()], [["lrp/test/ns/nld", ["u-1", "u-2"]]]);
  });

  it("two policies on one frontend (the hub sends one): the first by name is kept, the other reported", () => {
    const other = lrpResource("aaa", "service", [{ ip: "10.96.0.10", port: 80, portName: "p" }]);
    const d = index([...dnsService(), serviceLrp(), other]);
    assert.equal(d.frontends.get(KEY)?.service, "lrp/test/ns/aaa");
    assert.deepEqual(d.problems(), [
      "frontend 10.96.0.10:80 is claimed by policies lrp/test/ns/aaa and lrp/test/ns/nld; kept lrp/test/ns/aaa",
    ]);
  });

  it("an unknown body kind neither crashes nor counts as a slice", () => {
    const d = index(dnsService());
    const odd: Resource = { name: "x/odd", version: "1", body: undefined };
    assert.deepEqual([...d.update([{ before: undefined, after: odd }])], []);
    assert.equal(d.frontends.get(KEY)?.backends.length, 2);
  });
});
