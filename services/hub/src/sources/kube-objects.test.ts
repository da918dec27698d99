import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseEndpointSlice, parseKubeObject, parseService } from "./kube-objects.ts";

describe("parsing Kubernetes objects", () => {
  it("rejects a Service with a bad clusterIP and names it", () => {
    const r = parseService(
      {
        kind: "Service",
        metadata: { name: "web", namespace: "shop" },
        spec: { clusterIP: "10.0.0.300", ports: [{ port: 80 }] },
      },
      "east",
    );
    assert.ok(!r.ok);
    assert.match(r.error, /Service shop\/web in cluster east/);
    assert.match(r.error, /10\.0\.0\.300/);
  });

  it("rejects out-of-range ports and duplicate port names", () => {
    const bad = parseService(
      { kind: "Service", metadata: { name: "a" }, spec: { clusterIP: "10.0.0.1", ports: [{ port: 70000 }] } },
      "c",
    );
    assert.ok(!bad.ok);
    assert.match(bad.error, /70000/);
    const dup = parseService(
      {
        kind: "Service",
        metadata: { name: "a" },
        spec: {
          clusterIP: "10.0.0.1",
          ports: [
            { name: "x", port: 1 },
            { name: "x", port: 2 },
          ],
        },
      },
      "c",
    );
    assert.ok(!dup.ok);
    assert.match(dup.error, /unique/);
  });

  it("drops an SCTP port with a warning and keeps the rest", () => {
    const r = parseService(
      {
        kind: "Service",
        metadata: { name: "a" },
        spec: {
          clusterIP: "10.0.0.1",
          ports: [
            { name: "s", port: 9, protocol: "SCTP" },
            { name: "t", port: 10 },
          ],
        },
      },
      "c",
    );
    assert.ok(r.ok);
    assert.equal(r.value.object.kind, "Service");
    if (r.value.object.kind === "Service")
      assert.deepEqual(
        r.value.object.value.ports.map((p) => p.name),
        ["t"],
      );
    assert.match(r.value.warnings[0]!, /SCTP/);
  });

  it("defaults absent conditions as the API does and keeps endpoints without nodeName", () => {
    const r = parseEndpointSlice(
      {
        kind: "EndpointSlice",
        metadata: {
          name: "kubernetes",
          namespace: "default",
          labels: { "kubernetes.io/service-name": "kubernetes" },
        },
        addressType: "IPv4",
        ports: [{ name: "https", port: 6443 }],
        endpoints: [{ addresses: ["192.0.2.1"] }],
      },
      "c",
    );
    assert.ok(r.ok);
    if (r.value.object.kind !== "EndpointSlice") assert.fail("kind");
    assert.deepEqual(r.value.object.value.endpoints, [
      { addresses: ["192.0.2.1"], nodeName: undefined, ready: true, serving: true, terminating: false },
    ]);
  });

  it("rejects a slice without its service label, saying what to add", () => {
    const r = parseEndpointSlice(
      { kind: "EndpointSlice", metadata: { name: "x" }, addressType: "IPv4" },
      "c",
    );
    assert.ok(!r.ok);
    assert.match(r.error, /kubernetes\.io\/service-name/);
  });

  it("ignores kinds it does not handle", () => {
    assert.equal(parseKubeObject({ kind: "ConfigMap", metadata: { name: "x" } }, "c"), undefined);
  });
});
