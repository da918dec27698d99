import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NatMode, NatType, SY_FE_SKIP_FROM_BACKEND } from "../bpf/layout.ts";
import { emptyMapState } from "../bpf/maps.ts";
import { formatMapState } from "./dump.ts";

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
});
