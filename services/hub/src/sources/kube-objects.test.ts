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
      {
        addresses: ["192.0.2.1"],
        nodeName: undefined,
        ready: true,
        serving: true,
        terminating: false,
        zone: undefined,
        forZones: undefined,
      },
    ]);
  });

  it("reads endpoint zones and hints, the global annotation and trafficDistribution", () => {
    const sl = parseEndpointSlice(
      {
        kind: "EndpointSlice",
        metadata: { name: "w-1", namespace: "shop", labels: { "kubernetes.io/service-name": "web" } },
        addressType: "IPv4",
        ports: [{ name: "http", port: 8080 }],
        endpoints: [
          { addresses: ["10.0.0.1"], zone: "z1", hints: { forZones: [{ name: "z2" }, { name: "z1" }] } },
        ],
      },
      "c",
    );
    assert.ok(sl.ok && sl.value.object.kind === "EndpointSlice");
    assert.equal(sl.value.object.value.endpoints[0]!.zone, "z1");
    assert.deepEqual(sl.value.object.value.endpoints[0]!.forZones, ["z2", "z1"]);
    const svc = (annotations: Record<string, string>, td: unknown) =>
      parseService(
        {
          kind: "Service",
          metadata: { name: "web", namespace: "shop", annotations },
          spec: { clusterIP: "10.0.0.9", ports: [{ port: 80 }], trafficDistribution: td },
        },
        "c",
      );
    const a = svc({ "switchyard.io/global": "true" }, "PreferClose");
    assert.ok(a.ok && a.value.object.kind === "Service");
    assert.equal(a.value.object.value.global, true);
    assert.equal(a.value.object.value.trafficDistribution, "PreferSameZone");
    const b = svc({ "service.cilium.io/global": "true" }, "PreferSameNode");
    assert.ok(b.ok && b.value.object.kind === "Service");
    assert.equal(b.value.object.value.global, true, "Cilium's annotation is accepted");
    assert.equal(b.value.object.value.trafficDistribution, "PreferSameNode");
    const c = svc({ "switchyard.io/global": "yes" }, "Nearest");
    assert.ok(c.ok && c.value.object.kind === "Service");
    assert.equal(c.value.object.value.global, false);
    assert.match(c.value.warnings.join("\n"), /trafficDistribution "Nearest"/);
    assert.match(c.value.warnings.join("\n"), /switchyard.io\/global is "yes"/);
  });

  it("reads the external-traffic-strict annotation, and says when its value or the policy makes it moot", () => {
    const svc = (strict: string | undefined, etp = "Local") =>
      parseService(
        {
          kind: "Service",
          metadata: {
            name: "ingress",
            namespace: "shop",
            annotations: strict === undefined ? {} : { "switchyard.io/external-traffic-strict": strict },
          },
          spec: {
            type: "LoadBalancer",
            clusterIP: "10.0.0.9",
            externalTrafficPolicy: etp,
            ports: [{ port: 80, nodePort: 30080 }],
          },
        },
        "c",
      );
    const strictOf = (r: ReturnType<typeof svc>) => {
      assert.ok(r.ok && r.value.object.kind === "Service");
      return { strict: r.value.object.value.externalTrafficStrict, warnings: r.value.warnings.join("\n") };
    };
    assert.deepEqual(strictOf(svc("true")), { strict: true, warnings: "" });
    assert.deepEqual(strictOf(svc(undefined)), { strict: false, warnings: "" });
    assert.deepEqual(strictOf(svc("false")), { strict: false, warnings: "" });
    const bad = strictOf(svc("yes"));
    assert.equal(bad.strict, false);
    assert.match(
      bad.warnings,
      /Service shop\/ingress in cluster c: annotation switchyard.io\/external-traffic-strict is "yes"; write "true" or "false"/,
    );
    assert.match(
      strictOf(svc("true", "Cluster")).warnings,
      /has no effect: spec.externalTrafficPolicy is not Local/,
    );
  });

  it("parses MCS ServiceImports and rejects bad clusterset IPs by name", () => {
    const good = parseKubeObject(
      {
        kind: "ServiceImport",
        apiVersion: "multicluster.x-k8s.io/v1alpha1",
        metadata: { name: "cart", namespace: "shop" },
        spec: {
          type: "ClusterSetIP",
          ips: ["10.99.0.5"],
          ports: [{ name: "http", port: 80, protocol: "TCP" }],
        },
      },
      "east",
    );
    assert.ok(good?.ok && good.value.object.kind === "ServiceImport");
    assert.deepEqual(good.value.object.value.ips, ["10.99.0.5"]);
    const bad = parseKubeObject(
      { kind: "ServiceImport", metadata: { name: "cart", namespace: "shop" }, spec: { ips: ["ten"] } },
      "east",
    );
    assert.ok(bad && !bad.ok);
    assert.match(bad.error, /ServiceImport shop\/cart in cluster east: spec.ips holds "ten"/);
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
