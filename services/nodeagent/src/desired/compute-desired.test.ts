import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NatMode, Protocol, type Resource } from "@switchyard/proto/assignment";
import { computeDesired } from "./compute-desired.ts";

const svc: Resource = {
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
    },
  },
};

function slice(
  name: string,
  port: number,
  endpoints: Array<{ ip: string; ready: boolean; serving?: boolean; terminating?: boolean }>,
): Resource {
  return {
    name,
    version: "1",
    body: {
      $case: "backendSlice",
      value: {
        service: "svc/c/ns/web",
        ports: [{ name: "metrics", port, protocol: Protocol.PROTOCOL_TCP }],
        endpoints: endpoints.map((e) => ({
          addresses: [e.ip],
          nodeName: "n",
          ready: e.ready,
          serving: e.serving ?? e.ready,
          terminating: e.terminating ?? false,
        })),
      },
    },
  };
}

describe("computeDesired", () => {
  it("resolves a named targetPort per slice, so pods may use different numbers for one name", () => {
    const d = computeDesired([
      svc,
      slice("eps/a", 9100, [{ ip: "192.0.2.1", ready: true }]),
      slice("eps/b", 9200, [{ ip: "192.0.2.2", ready: true }]),
    ]);
    const f = [...d.frontends.values()][0]!;
    assert.deepEqual(f.backends, [
      { ip: "192.0.2.1", port: 9100 },
      { ip: "192.0.2.2", port: 9200 },
    ]);
    assert.ok(
      f.backends.every((b) => b.port !== 0),
      "never NatPort 0",
    );
  });

  it("uses ready endpoints only while one exists, and serving-terminating ones after that", () => {
    const mixed = computeDesired([
      svc,
      slice("eps/a", 9100, [
        { ip: "192.0.2.1", ready: true },
        { ip: "192.0.2.2", ready: false, serving: true, terminating: true },
      ]),
    ]);
    assert.deepEqual([...mixed.frontends.values()][0]!.backends, [{ ip: "192.0.2.1", port: 9100 }]);
    const onlyTerminating = computeDesired([
      svc,
      slice("eps/a", 9100, [{ ip: "192.0.2.2", ready: false, serving: true, terminating: true }]),
    ]);
    assert.deepEqual([...onlyTerminating.frontends.values()][0]!.backends, [{ ip: "192.0.2.2", port: 9100 }]);
    const notServing = computeDesired([
      svc,
      slice("eps/a", 9100, [{ ip: "192.0.2.3", ready: false, serving: false, terminating: true }]),
    ]);
    assert.deepEqual([...notServing.frontends.values()][0]!.backends, []);
  });

  it("keeps a frontend with no backends (connects are refused, not passed through)", () => {
    const d = computeDesired([svc]);
    assert.equal(d.frontends.size, 1);
    assert.deepEqual([...d.frontends.values()][0]!.backends, []);
  });
});
