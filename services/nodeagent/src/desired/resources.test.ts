import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NatMode, Protocol, type Resource, TrafficDistribution } from "@switchyard/proto/assignment";
import { ResourceStore } from "./resources.ts";

function svc(version: string, ip: string): Resource {
  return {
    name: "svc/c/ns/a",
    version,
    body: {
      $case: "service",
      value: {
        cluster: "c",
        namespace: "ns",
        name: "a",
        frontends: [
          { ip, port: 80, protocol: Protocol.PROTOCOL_TCP, mode: NatMode.NAT_MODE_CLUSTER_IP, portName: "" },
        ],
        externalTrafficLocal: false,
        internalTrafficLocal: false,
        affinityTimeoutSeconds: 0,
        backendTiers: [],
        trafficDistribution: TrafficDistribution.TRAFFIC_DISTRIBUTION_UNSPECIFIED,
        externalTrafficStrict: false,
      },
    },
  };
}

describe("ResourceStore", () => {
  it("refuses a bad resource, keeps the last good version, and names it in the errors", () => {
    const s = new ResourceStore();
    assert.deepEqual(
      s.applyDelta({
        nonce: "1",
        systemVersion: "",
        welcome: undefined,
        credential: undefined,
        resources: [svc("v1", "10.0.0.1")],
        removedResources: [],
        resourcesZstd: Buffer.alloc(0),
        resourcesZstdSize: 0,
        viewComplete: true,
      }).errors,
      [],
    );
    const out = s.applyDelta({
      nonce: "2",
      systemVersion: "",
      welcome: undefined,
      credential: undefined,
      resources: [svc("v2", "not-an-ip")],
      removedResources: [],
      resourcesZstd: Buffer.alloc(0),
      resourcesZstdSize: 0,
      viewComplete: true,
    });
    assert.equal(out.errors.length, 1);
    assert.equal(out.errors[0]!.name, "svc/c/ns/a");
    assert.match(out.errors[0]!.message, /not-an-ip/);
    assert.equal(s.resources.get("svc/c/ns/a")!.version, "v1");
  });

  it("removes what the hub removes and reports versions for resume", () => {
    const s = new ResourceStore();
    s.applyDelta({
      nonce: "1",
      systemVersion: "",
      welcome: undefined,
      credential: undefined,
      resources: [svc("v1", "10.0.0.1")],
      removedResources: [],
      resourcesZstd: Buffer.alloc(0),
      resourcesZstdSize: 0,
      viewComplete: true,
    });
    assert.deepEqual(s.versions(), { "svc/c/ns/a": "v1" });
    const out = s.applyDelta({
      nonce: "2",
      systemVersion: "",
      welcome: undefined,
      credential: undefined,
      resources: [],
      removedResources: ["svc/c/ns/a"],
      resourcesZstd: Buffer.alloc(0),
      resourcesZstdSize: 0,
      viewComplete: true,
    });
    assert.equal(out.changed, true);
    assert.deepEqual(s.versions(), {});
  });
});
