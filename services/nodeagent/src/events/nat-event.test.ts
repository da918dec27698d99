import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseIpTo16 } from "@switchyard/lib/ip";
import type { RawEvent } from "../bpf/layout.ts";
import { computeEventSubject, computeNatEvent } from "./nat-event.ts";

const ip = (s: string) => {
  const r = parseIpTo16(s);
  assert.ok(r.ok);
  return r.value;
};

const raw: RawEvent = {
  tsNs: 1_000_000_000n,
  cgroupId: 42n,
  pid: 1234,
  tid: 1235,
  svcId: 7,
  origAddr: ip("10.96.0.10"),
  origPort: 80,
  natAddr: ip("198.18.0.11"),
  natPort: 8080,
  family: 4,
  proto: 6,
  hook: 1,
  natType: 1,
  natMode: 1,
  success: true,
  failureCode: 0,
  fallback: 0,
  count: 1,
};

describe("NAT events", () => {
  it("an unconnected UDP flow's event says how many datagrams it stands for; a connect's says nothing", () => {
    const ctx = { cluster: "", node: "", serviceName: () => undefined, nowWallMs: 0, nowMonoNs: 0n };
    assert.equal(computeNatEvent({ ...raw, proto: 17, hook: 3, count: 412 }, ctx).datagrams, 412);
    assert.equal(computeNatEvent({ ...raw, proto: 17, hook: 4, count: 1 }, ctx).datagrams, 1);
    assert.equal("datagrams" in computeNatEvent(raw, ctx), false);
  });

  it("a local redirect names its policy and mode, and says why it took the fallback", () => {
    const ev = computeNatEvent(
      { ...raw, natType: 2, natMode: 6, fallback: 2 },
      {
        cluster: "east",
        node: "n1",
        serviceName: (id) => (id === 7 ? "lrp/east/kube-system/node-local-dns" : undefined),
        nowWallMs: 0,
        nowMonoNs: 0n,
      },
    );
    assert.equal(ev.natType, "localRedirect");
    assert.equal(ev.natMode, "LocalRedirectAddress");
    assert.equal(ev.service, "lrp/east/kube-system/node-local-dns");
    assert.equal(ev.fallback, "qos");
    assert.equal(
      computeNatEvent(
        { ...raw, natType: 2, natMode: 5 },
        { cluster: "", node: "", serviceName: () => undefined, nowWallMs: 0, nowMonoNs: 0n },
      ).fallback,
      undefined,
    );
  });

  it("names the service and carries every field of the original system's event", () => {
    const ev = computeNatEvent(raw, {
      cluster: "east",
      node: "node.example.com",
      serviceName: (id) => (id === 7 ? "svc/east/demo/web" : undefined),
      nowWallMs: Date.parse("2026-01-01T00:00:01.000Z"),
      nowMonoNs: 2_000_000_000n,
    });
    assert.deepEqual(ev, {
      time: "2026-01-01T00:00:00.000Z",
      cluster: "east",
      node: "node.example.com",
      service: "east/demo/web",
      svcId: 7,
      cgroupId: "42",
      pid: 1234,
      isIpv4: true,
      isSuccess: true,
      natType: "service",
      natMode: "ServiceClusterIP",
      protocol: "tcp",
      hook: "connect4",
      originalDestIp: "10.96.0.10",
      originalDestPort: 80,
      natIp: "198.18.0.11",
      natPort: 8080,
      failureCode: "none",
    });
    assert.equal(computeEventSubject("switchyard.nat", ev), "switchyard.nat.east.node_example_com.demo.web");
  });

  it("reports a failed resolution with its reason and no translated address", () => {
    const ev = computeNatEvent(
      { ...raw, success: false, failureCode: 1, natPort: 0 },
      {
        cluster: "c",
        node: "n",
        serviceName: () => undefined,
        nowWallMs: 0,
        nowMonoNs: 1_000_000_000n,
      },
    );
    assert.equal(ev.isSuccess, false);
    assert.equal(ev.failureCode, "noBackend");
    assert.equal(ev.natIp, "");
    assert.equal(ev.service, "unknown(7)");
  });
});
