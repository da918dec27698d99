import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NatMode, NatType, Scope, SY_FE_SKIP_FROM_BACKEND } from "../bpf/layout.ts";
import { emptyMapState } from "../bpf/maps.ts";
import { filterMapState, formatMapState } from "./dump.ts";

describe("dump", () => {
  it("shows a policy frontend with its priority, QoS, local set and fallback", () => {
    const s = emptyMapState();
    s.names.set(3, "lrp/c/kube-system/node-local-dns");
    s.frontends.set("10.96.0.10|53|17|0", {
      key: { ip: "10.96.0.10", port: 53, proto: 17, scope: 0 },
      value: {
        svcId: 3,
        setId: 1,
        count: 1,
        affinityTimeoutS: 0,
        portId: 0,
        fbSetId: 2,
        fbCount: 1,
        qosPerSecond: 100,
        natType: NatType.localRedirect,
        natMode: NatMode.localRedirectService,
        flags: SY_FE_SKIP_FROM_BACKEND,
      },
    });
    s.backendSets.set(1, [{ ip: "10.1.0.5", port: 5353 }]);
    s.backendSets.set(2, [{ ip: "10.2.0.7", port: 53 }]);
    assert.equal(
      formatMapState(s),
      [
        "10.96.0.10:53/udp  lrp/c/kube-system/node-local-dns  (priority localRedirect > service, localRedirectService, svc 3, set 1, qos 100/s, skip from backend)",
        "    -> local 10.1.0.5:5353",
        "    -> fallback 10.2.0.7:53",
        "",
      ].join("\n"),
    );
  });

  it("dump IP:PORT keeps the frontend a connect to it meets: exact, or the NodePort on a node address", () => {
    const s = emptyMapState();
    const fe = (ip: string, port: number, proto: number, scope: number) =>
      s.frontends.set(`${ip}|${port}|${proto}|${scope}`, {
        key: { ip, port, proto, scope },
        value: {
          svcId: 1,
          setId: 1,
          count: 0,
          affinityTimeoutS: 0,
          portId: 0,
          fbSetId: 0,
          fbCount: 0,
          qosPerSecond: 0,
          natType: NatType.service,
          natMode: NatMode.clusterIp,
          flags: 0,
        },
      });
    fe("10.96.0.10", 80, 6, Scope.exact);
    fe("10.96.0.10", 53, 17, Scope.exact);
    fe("10.96.0.11", 80, 6, Scope.exact);
    fe("0.0.0.0", 30080, 6, Scope.nodePort);
    fe("::", 30080, 6, Scope.nodePort);
    s.nodeIps.add("192.168.1.10");
    const keys = (ip: string, port: number, protocol: "tcp" | "udp") => [
      ...filterMapState(s, { ip, port, protocol }).frontends.keys(),
    ];
    assert.deepEqual(keys("10.96.0.10", 80, "tcp"), ["10.96.0.10|80|6|0"]);
    assert.deepEqual(keys("10.96.0.10", 53, "udp"), ["10.96.0.10|53|17|0"]);
    assert.deepEqual(keys("10.96.0.10", 53, "tcp"), []);
    assert.deepEqual(keys("192.168.1.10", 30080, "tcp"), ["0.0.0.0|30080|6|1"]);
    assert.deepEqual(keys("127.0.0.1", 30080, "tcp"), ["0.0.0.0|30080|6|1"]);
    assert.deepEqual(keys("::1", 30080, "tcp"), ["::|30080|6|1"]);
    assert.deepEqual(keys("192.168.1.99", 30080, "tcp"), [], "not this node's address");
  });
});
