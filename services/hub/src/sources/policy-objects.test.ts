/**
 * BalancingPolicy parsing: every validation error names the policy and what
 * to fix; a valid policy of each backend kind gives the model.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseKubeObject } from "./kube-objects.ts";
import { parseBalancingPolicy } from "./policy-objects.ts";

type Raw = Record<string, unknown>;

const base = (spec: Raw): Raw => ({
  apiVersion: "switchyard.io/v1alpha1",
  kind: "BalancingPolicy",
  metadata: {
    name: "web",
    namespace: "shop",
    uid: "u",
    generation: 3,
    creationTimestamp: "2026-01-01T00:00:00Z",
  },
  spec,
});
const svcFrontend = { service: { name: "web", ports: ["http"] } };
const pods = (extra: Raw = {}) => ({
  serviceEndpoint: {
    selector: { matchLabels: { app: "web" } },
    toPorts: [{ name: "http", port: 8080 }],
    ...extra,
  },
});

describe("parseBalancingPolicy", () => {
  it("a valid policy of each backend kind gives the model", () => {
    const a = parseBalancingPolicy(
      base({ frontend: svcFrontend, backend: pods({ redirectMode: "nodeProxy" }) }),
      "c",
    );
    assert.ok(a.ok);
    const v = a.value.object.value as { backend: { kind: string; redirectMode: string }; generation: number };
    assert.equal(v.backend.kind, "serviceEndpoint");
    assert.equal(v.backend.redirectMode, "nodeProxy");
    assert.equal(v.generation, 3);
    const b = parseKubeObject(
      base({
        frontend: { address: { ip: "fd00::1", ports: [{ name: "dns", port: 53, protocol: "UDP" }] } },
        backend: {
          addressEndpoint: {
            addresses: ["192.0.2.1", "2001:db8::1"],
            toPorts: [{ name: "dns", port: 53, protocol: "UDP" }],
          },
        },
        nodeSelector: { matchLabels: { edge: "yes" } },
      }),
      "c",
    );
    assert.ok(b?.ok);
    assert.equal(b.value.object.kind, "BalancingPolicy");
    // the default mode is podEndpoint, and a named container port is allowed with it
    const c = parseBalancingPolicy(
      base({ frontend: svcFrontend, backend: pods({ toPorts: [{ name: "http", port: "http" }] }) }),
      "c",
    );
    assert.ok(c.ok);
    assert.equal(
      (c.value.object.value as { backend: { redirectMode: string } }).backend.redirectMode,
      "podEndpoint",
    );
  });

  const cases: Array<[string, Raw, RegExp]> = [
    ["no spec", { ...base({}), spec: undefined }, /has no spec/],
    [
      "both frontends",
      { frontend: { ...svcFrontend, address: { ip: "10.0.0.1", ports: [] } }, backend: pods() },
      /both service and address/,
    ],
    ["no frontend kind", { frontend: {}, backend: pods() }, /neither service nor address/],
    [
      "bad frontend ip",
      { frontend: { address: { ip: "10.0.0.300", ports: [{ name: "http", port: 80 }] } }, backend: pods() },
      /frontend.address.ip "10.0.0.300" is not an IP address/,
    ],
    [
      "fallbackService",
      {
        frontend: {
          address: { ip: "10.0.0.1", ports: [{ name: "http", port: 80 }], fallbackService: "web" },
        },
        backend: pods(),
      },
      /fallbackService is a LocalRedirectPolicy field/,
    ],
    ["no backend", { frontend: svcFrontend }, /has no spec.backend/],
    [
      "both backends",
      {
        frontend: svcFrontend,
        backend: { ...pods(), addressEndpoint: { addresses: ["10.0.0.1"], toPorts: [] } },
      },
      /both serviceEndpoint and addressEndpoint/,
    ],
    [
      "no backend kind",
      { frontend: svcFrontend, backend: {} },
      /neither serviceEndpoint nor addressEndpoint/,
    ],
    [
      "no selector",
      { frontend: svcFrontend, backend: { serviceEndpoint: { toPorts: [{ name: "http", port: 80 }] } } },
      /serviceEndpoint.selector is missing/,
    ],
    [
      "empty selector",
      {
        frontend: svcFrontend,
        backend: { serviceEndpoint: { selector: {}, toPorts: [{ name: "http", port: 80 }] } },
      },
      /would select every pod/,
    ],
    [
      "unknown mode",
      { frontend: svcFrontend, backend: pods({ redirectMode: "nodePort" }) },
      /redirectMode "nodePort" is not podEndpoint, hostPort or nodeProxy/,
    ],
    [
      "named port with hostPort",
      {
        frontend: svcFrontend,
        backend: pods({ redirectMode: "hostPort", toPorts: [{ name: "http", port: "http" }] }),
      },
      /names a container port, which redirectMode hostPort cannot use/,
    ],
    [
      "named port with nodeProxy",
      {
        frontend: svcFrontend,
        backend: pods({ redirectMode: "nodeProxy", toPorts: [{ name: "http", port: "http" }] }),
      },
      /redirectMode nodeProxy cannot use .*entry address/,
    ],
    [
      "unpaired frontend port",
      { frontend: svcFrontend, backend: pods({ toPorts: [{ name: "https", port: 8443 }] }) },
      /frontend port "http" has no backend.serviceEndpoint.toPorts entry/,
    ],
    [
      "no addresses",
      {
        frontend: svcFrontend,
        backend: { addressEndpoint: { addresses: [], toPorts: [{ name: "http", port: 80 }] } },
      },
      /addresses is empty; give 1 to 256/,
    ],
    [
      "too many addresses",
      {
        frontend: svcFrontend,
        backend: {
          addressEndpoint: {
            addresses: Array.from({ length: 257 }, (_, i) => `10.0.${i >> 8}.${i & 255}`),
            toPorts: [{ name: "http", port: 80 }],
          },
        },
      },
      /holds 257 addresses; at most 256/,
    ],
    [
      "bad address",
      {
        frontend: svcFrontend,
        backend: { addressEndpoint: { addresses: ["example.com"], toPorts: [{ name: "http", port: 80 }] } },
      },
      /addresses\[0\] "example.com" is not an IPv4 or IPv6 address/,
    ],
    [
      "duplicate address",
      {
        frontend: svcFrontend,
        backend: {
          addressEndpoint: { addresses: ["10.0.0.1", "10.0.0.1"], toPorts: [{ name: "http", port: 80 }] },
        },
      },
      /holds 10.0.0.1 twice/,
    ],
    [
      "named port with addresses",
      {
        frontend: svcFrontend,
        backend: { addressEndpoint: { addresses: ["10.0.0.1"], toPorts: [{ name: "http", port: "http" }] } },
      },
      /an addressEndpoint has no pods to look up/,
    ],
    [
      "bad nodeSelector",
      { frontend: svcFrontend, backend: pods(), nodeSelector: { matchLabels: { a: 1 } } },
      /nodeSelector.matchLabels\["a"\] is not a string/,
    ],
  ];
  for (const [name, spec, want] of cases)
    it(`refuses ${name}, naming the policy`, () => {
      const raw = "metadata" in spec ? spec : base(spec);
      const r = parseBalancingPolicy(raw, "c");
      assert.ok(!r.ok, "refused");
      assert.match(r.error, /^BalancingPolicy shop\/web in cluster c: /);
      assert.match(r.error, want);
    });

  it("a Node's entry-address annotation: valid addresses kept, a bad one is a warning naming the node and annotation", () => {
    const r = parseKubeObject(
      {
        apiVersion: "v1",
        kind: "Node",
        metadata: {
          name: "n1",
          annotations: { "switchyard.io/entry-addresses": "198.51.100.1,bogus, 2001:db8::1" },
        },
        status: { addresses: [{ type: "InternalIP", address: "192.0.2.1" }] },
      },
      "c",
    );
    assert.ok(r?.ok);
    assert.deepEqual((r.value.object.value as { entryAddresses?: string[] }).entryAddresses, [
      "198.51.100.1",
      "2001:db8::1",
    ]);
    assert.equal(r.value.warnings.length, 1);
    assert.match(
      r.value.warnings[0]!,
      /Node n1 in cluster c: annotation switchyard.io\/entry-addresses holds "bogus"/,
    );
  });
});
