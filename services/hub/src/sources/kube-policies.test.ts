/** Parsing Pods and LocalRedirectPolicies at the boundary (docs/policies.md), and the CRD YAML. */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import { compactPod, parsePod } from "./kube-objects.ts";
import { parseLocalRedirectPolicy } from "./policy-objects.ts";

const ROOT = path.resolve(import.meta.dirname, "../../../..");

const pod = {
  apiVersion: "v1",
  kind: "Pod",
  metadata: {
    name: "nl-dns-x",
    namespace: "kube-system",
    uid: "u-1",
    resourceVersion: "7",
    labels: { app: "nl-dns" },
    annotations: { big: "x".repeat(2000) },
    managedFields: [{ manager: "kubelet", fieldsV1: { big: "y".repeat(2000) } }],
  },
  spec: {
    nodeName: "n1",
    containers: [
      {
        name: "dns",
        image: "dns:1",
        env: [{ name: "A", value: "b" }],
        ports: [
          { name: "dns", containerPort: 5353, protocol: "UDP" },
          { name: "dns-tcp", containerPort: 5353, protocol: "TCP" },
          { containerPort: 9000 },
        ],
      },
      { name: "side", ports: [{ name: "metrics", containerPort: 9153 }] },
    ],
  },
  status: {
    podIP: "10.0.0.5",
    podIPs: [{ ip: "10.0.0.5" }, { ip: "fd00::5" }],
    conditions: [
      { type: "PodScheduled", status: "True" },
      { type: "Ready", status: "True" },
    ],
    containerStatuses: [{ name: "dns", restartCount: 3 }],
  },
};

const EXPECTED_POD = {
  cluster: "c",
  namespace: "kube-system",
  name: "nl-dns-x",
  uid: "u-1",
  labels: { app: "nl-dns" },
  nodeName: "n1",
  ips: ["10.0.0.5", "fd00::5"],
  ready: true,
  terminating: false,
  containerPorts: [
    { name: "dns", port: 5353, protocol: "UDP" },
    { name: "dns-tcp", port: 5353, protocol: "TCP" },
    { name: "metrics", port: 9153, protocol: "TCP" },
  ],
};

describe("parsing Pods", () => {
  it("keeps only what policies read: labels, node, IPs, Ready, terminating, named container ports", () => {
    const r = parsePod(pod, "c");
    assert.ok(r.ok && r.value.object.kind === "Pod");
    assert.deepEqual(r.value.object.value, EXPECTED_POD);
  });

  it("parses the compact form the informer keeps to the same Pod, and the compact form is small", () => {
    const c = compactPod(pod);
    const r = parsePod(c, "c");
    assert.ok(r.ok && r.value.object.kind === "Pod");
    assert.deepEqual(r.value.object.value, EXPECTED_POD);
    assert.ok(JSON.stringify(c).length < JSON.stringify(pod).length / 5, JSON.stringify(c));
    assert.equal(
      (c["metadata"] as Record<string, unknown>)["resourceVersion"],
      "7",
      "the informer compares it",
    );
  });

  it("reads not-ready, terminating, unscheduled Pods and a Date deletionTimestamp (client-node's classes)", () => {
    const p = structuredClone(pod) as Record<string, unknown> & typeof pod;
    (p.metadata as Record<string, unknown>)["deletionTimestamp"] = new Date("2026-01-01T00:00:00Z");
    p.status.conditions[1]!.status = "False";
    (p.spec as Record<string, unknown>)["nodeName"] = undefined;
    p.status.podIPs = [];
    (p.status as Record<string, unknown>)["podIP"] = undefined;
    for (const form of [p, compactPod(p)]) {
      const r = parsePod(form, "c");
      assert.ok(r.ok && r.value.object.kind === "Pod");
      const v = r.value.object.value;
      assert.deepEqual([v.ready, v.terminating, v.nodeName, v.ips], [false, true, undefined, []]);
    }
  });

  it("drops a bad pod IP with a warning naming the Pod", () => {
    const p = structuredClone(pod);
    p.status.podIPs = [{ ip: "10.0.0.500" }];
    const r = parsePod(p, "c");
    assert.ok(r.ok && r.value.object.kind === "Pod");
    assert.deepEqual(r.value.object.value.ips, []);
    assert.match(
      r.value.warnings[0]!,
      /Pod kube-system\/nl-dns-x in cluster c: status.podIPs holds "10.0.0.500"/,
    );
  });
});

const base = () => ({
  apiVersion: "switchyard.io/v1alpha1",
  kind: "LocalRedirectPolicy",
  metadata: {
    name: "nl-dns",
    namespace: "kube-system",
    uid: "u-9",
    generation: 4,
    creationTimestamp: "2026-01-01T00:00:00Z",
  },
  spec: {
    frontend: { service: { name: "kube-dns", ports: ["dns", 53] } } as Record<string, unknown>,
    backend: {
      selector: { matchLabels: { app: "nl-dns" } } as unknown,
      toPorts: [
        { name: "dns", port: 53, protocol: "UDP" },
        { name: "dns-tcp", port: "dns-tcp", protocol: "TCP" },
      ] as unknown[],
    },
    skipRedirectFromBackend: true as unknown,
    qos: { redirectsPerSecond: 5000 } as unknown,
    nodeSelector: { matchExpressions: [{ key: "dns", operator: "Exists" }] } as unknown,
  } as Record<string, unknown> & { frontend: Record<string, unknown>; backend: Record<string, unknown> },
});

const address = (ports: unknown, extra: Record<string, unknown> = {}) => ({
  address: { ip: "169.254.20.10", ports, ...extra },
});

describe("parsing LocalRedirectPolicies", () => {
  it("reads a Service frontend policy, every field", () => {
    const r = parseLocalRedirectPolicy(base(), "c");
    assert.ok(r.ok && r.value.object.kind === "LocalRedirectPolicy", JSON.stringify(r));
    assert.deepEqual(r.value.object.value, {
      cluster: "c",
      namespace: "kube-system",
      name: "nl-dns",
      uid: "u-9",
      generation: 4,
      createdAt: "2026-01-01T00:00:00Z",
      frontend: { kind: "service", service: "kube-dns", ports: [{ name: "dns" }, { port: 53 }] },
      backend: {
        selector: { matchLabels: { app: "nl-dns" }, matchExpressions: [] },
        toPorts: [
          { name: "dns", port: 53, targetName: undefined, protocol: "UDP" },
          { name: "dns-tcp", port: 0, targetName: "dns-tcp", protocol: "TCP" },
        ],
      },
      skipRedirectFromBackend: true,
      qosPerSecond: 5000,
      nodeSelector: { matchLabels: {}, matchExpressions: [{ key: "dns", operator: "Exists", values: [] }] },
    });
  });

  it("reads an address frontend with a fallback Service; defaults (TCP, no QoS, every node)", () => {
    const o = base();
    o.spec.frontend = address(
      [
        { name: "dns", port: 53, protocol: "UDP" },
        { name: "web", port: 80 },
      ],
      {
        fallbackService: "kube-dns",
      },
    );
    o.spec.backend["toPorts"] = [
      { name: "dns", port: 53, protocol: "UDP" },
      { name: "web", port: "8080" },
    ];
    delete o.spec["qos"];
    delete o.spec["nodeSelector"];
    delete o.spec["skipRedirectFromBackend"];
    const r = parseLocalRedirectPolicy(o, "c");
    assert.ok(r.ok && r.value.object.kind === "LocalRedirectPolicy", JSON.stringify(r));
    const v = r.value.object.value;
    assert.deepEqual(v.frontend, {
      kind: "address",
      ip: "169.254.20.10",
      ports: [
        { name: "dns", port: 53, protocol: "UDP" },
        { name: "web", port: 80, protocol: "TCP" },
      ],
      fallbackService: "kube-dns",
    });
    assert.deepEqual(v.backend.toPorts[1], {
      name: "web",
      port: 8080,
      targetName: undefined,
      protocol: "TCP",
    });
    assert.deepEqual([v.qosPerSecond, v.nodeSelector, v.skipRedirectFromBackend], [0, undefined, false]);
  });

  // each: a change to a valid policy → the error it must give (after "LocalRedirectPolicy kube-system/nl-dns in cluster c: ")
  const refused: Array<[string, (o: ReturnType<typeof base>) => void, RegExp]> = [
    [
      "both frontends",
      (o) => {
        o.spec.frontend["address"] = { ip: "169.254.20.10", ports: [{ name: "dns", port: 53 }] };
      },
      /frontend has both service and address; give exactly one/,
    ],
    [
      "no frontend kind",
      (o) => {
        o.spec.frontend = {};
      },
      /frontend has neither service nor address; give exactly one/,
    ],
    ["no spec", (o) => delete (o as Record<string, unknown>)["spec"], /has no spec/],
    [
      "a Service name that is not one",
      (o) => {
        o.spec.frontend = { service: { name: "Kube_DNS" } };
      },
      /frontend.service.name "Kube_DNS" is not a Service name/,
    ],
    [
      "a Service port out of range",
      (o) => {
        o.spec.frontend = { service: { name: "kube-dns", ports: [70000] } };
      },
      /frontend.service.ports\[0\] 70000 is not a port number/,
    ],
    [
      "a Service port twice",
      (o) => {
        o.spec.frontend = { service: { name: "kube-dns", ports: ["dns", "dns"] } };
      },
      /frontend.service.ports names dns twice/,
    ],
    [
      "a named frontend port without its toPort",
      (o) => {
        o.spec.frontend = { service: { name: "kube-dns", ports: ["metrics"] } };
      },
      /frontend port "metrics" has no backend.toPorts entry named "metrics"; add one/,
    ],
    [
      "a bad address",
      (o) => {
        o.spec.frontend = { address: { ip: "169.254.20.300", ports: [{ name: "dns", port: 53 }] } };
      },
      /frontend.address.ip "169.254.20.300" is not an IP address/,
    ],
    [
      "an address without ports",
      (o) => {
        o.spec.frontend = address([]);
      },
      /frontend.address.ports is empty/,
    ],
    [
      "an address port without a name",
      (o) => {
        o.spec.frontend = address([{ port: 53 }]);
      },
      /frontend.address.ports\[0\] has no name/,
    ],
    [
      "an address port twice",
      (o) => {
        o.spec.frontend = address([
          { name: "dns", port: 53, protocol: "UDP" },
          { name: "dns2", port: 53, protocol: "UDP" },
        ]);
      },
      /frontend.address.ports holds 53\/UDP twice/,
    ],
    [
      "an address port's protocol differing from its toPort",
      (o) => {
        o.spec.frontend = address([{ name: "dns-tcp", port: 53, protocol: "UDP" }]);
      },
      /frontend port "dns-tcp" is UDP but its backend.toPorts entry is TCP/,
    ],
    [
      "SCTP",
      (o) => {
        o.spec.frontend = address([{ name: "dns", port: 53, protocol: "SCTP" }]);
      },
      /protocol "SCTP" is not TCP or UDP/,
    ],
    [
      "a bad fallback Service",
      (o) => {
        o.spec.frontend = address([{ name: "dns", port: 53, protocol: "UDP" }], { fallbackService: 7 });
      },
      /frontend.address.fallbackService "7" is not a Service name/,
    ],
    [
      "no selector",
      (o) => {
        delete o.spec.backend["selector"];
      },
      /backend has no selector/,
    ],
    [
      "an empty selector",
      (o) => {
        o.spec.backend["selector"] = {};
      },
      /backend.selector is empty and would select every pod/,
    ],
    [
      "a selector value that is not a string",
      (o) => {
        o.spec.backend["selector"] = { matchLabels: { on: true } };
      },
      /backend.selector.matchLabels\["on"\] is not a string; quote it/,
    ],
    [
      "In without values",
      (o) => {
        o.spec.backend["selector"] = { matchExpressions: [{ key: "app", operator: "In" }] };
      },
      /backend.selector.matchExpressions\[0\]: operator In needs at least one value/,
    ],
    [
      "a bad operator",
      (o) => {
        o.spec.backend["selector"] = { matchExpressions: [{ key: "app", operator: "Has" }] };
      },
      /operator "Has" is not In, NotIn, Exists or DoesNotExist/,
    ],
    [
      "no toPorts",
      (o) => {
        o.spec.backend["toPorts"] = [];
      },
      /backend.toPorts is empty/,
    ],
    [
      "a toPort twice",
      (o) => {
        o.spec.backend["toPorts"] = [
          { name: "dns", port: 53 },
          { name: "dns", port: 54 },
        ];
      },
      /backend.toPorts names "dns" twice/,
    ],
    [
      "a toPort out of range",
      (o) => {
        o.spec.backend["toPorts"] = [{ name: "dns", port: 0 }];
      },
      /backend.toPorts\[0\].port 0 is not a port number 1-65535 or a container port name/,
    ],
    [
      "a toPort name that is not a container port name",
      (o) => {
        o.spec.backend["toPorts"] = [{ name: "dns", port: "Not A Port" }];
      },
      /backend.toPorts\[0\].port "Not A Port" is neither a port number nor a container port name/,
    ],
    [
      "skipRedirectFromBackend not a boolean",
      (o) => {
        o.spec["skipRedirectFromBackend"] = "yes";
      },
      /skipRedirectFromBackend "yes" is not true or false/,
    ],
    [
      "a negative QoS",
      (o) => {
        o.spec["qos"] = { redirectsPerSecond: -1 };
      },
      /qos.redirectsPerSecond -1 is not a whole number from 0/,
    ],
    [
      "a bad nodeSelector",
      (o) => {
        o.spec["nodeSelector"] = { matchExpressions: [{ key: "x", operator: "Exists", values: ["a"] }] };
      },
      /nodeSelector.matchExpressions\[0\]: operator Exists takes no values/,
    ],
    [
      "another API version",
      (o) => {
        o.apiVersion = "cilium.io/v2";
      },
      /apiVersion "cilium.io\/v2" is not switchyard.io\/v1alpha1/,
    ],
  ];
  for (const [what, change, error] of refused)
    it(`refuses ${what}, naming the policy and what to fix`, () => {
      const o = base();
      change(o);
      const r = parseLocalRedirectPolicy(o, "c");
      assert.ok(!r.ok, `accepted: ${JSON.stringify(o.spec)}`);
      assert.match(r.error, /^LocalRedirectPolicy kube-system\/nl-dns in cluster c: /);
      assert.match(r.error, error);
    });
});

describe("deploy/ YAML", () => {
  it("the CRD is one structural v1 CRD: namespaced, slrp, status subresource, printer columns, exactly-one-of frontend", () => {
    const crd = parse(fs.readFileSync(path.join(ROOT, "deploy/crds/localredirectpolicies.yaml"), "utf8"));
    assert.equal(crd.kind, "CustomResourceDefinition");
    assert.equal(crd.metadata.name, "localredirectpolicies.switchyard.io");
    assert.equal(crd.spec.scope, "Namespaced");
    assert.deepEqual(crd.spec.names.shortNames, ["slrp"]);
    const v = crd.spec.versions[0];
    assert.deepEqual(v.subresources, { status: {} });
    assert.deepEqual(
      v.additionalPrinterColumns
        .filter((c: { priority?: number }) => !c.priority)
        .map((c: { name: string }) => c.name),
      ["Frontend", "Accepted", "Age"],
    );
    const spec = v.schema.openAPIV3Schema.properties.spec;
    assert.match(
      spec.properties.frontend["x-kubernetes-validations"][0].rule,
      /has\(self.service\) != has\(self.address\)/,
    );
    // structural: every schema node says its type (or is int-or-string), down to the leaves
    const check = (s: Record<string, unknown>, at: string): void => {
      if (!s["type"] && !s["x-kubernetes-int-or-string"]) assert.fail(`${at} has no type`);
      for (const [k, p] of Object.entries((s["properties"] ?? {}) as Record<string, Record<string, unknown>>))
        check(p, `${at}.${k}`);
      if (s["items"]) check(s["items"] as Record<string, unknown>, `${at}[]`);
    };
    check(v.schema.openAPIV3Schema, "schema");
    // int-or-string takes exactly anyOf [integer, string] (apiextensions' structural rule), ranges in CEL
    const intOrString: unknown[] = [];
    const walk = (x: unknown): void => {
      if (Array.isArray(x)) x.forEach(walk);
      else if (x && typeof x === "object") {
        const o = x as Record<string, unknown>;
        if (o["x-kubernetes-int-or-string"]) intOrString.push(o["anyOf"]);
        Object.values(o).forEach(walk);
      }
    };
    walk(v.schema);
    assert.equal(intOrString.length, 2);
    for (const a of intOrString) assert.deepEqual(a, [{ type: "integer" }, { type: "string" }]);
  });

  it("the BalancingPolicy CRD: namespaced, sbp in category switchyard, status subresource, exactly one frontend and one backend, isIP on addresses", () => {
    const crd = parse(fs.readFileSync(path.join(ROOT, "deploy/crds/balancingpolicies.yaml"), "utf8"));
    assert.equal(crd.metadata.name, "balancingpolicies.switchyard.io");
    assert.equal(crd.spec.scope, "Namespaced");
    assert.deepEqual(crd.spec.names.shortNames, ["sbp"]);
    assert.deepEqual(crd.spec.names.categories, ["switchyard"]);
    const v = crd.spec.versions[0];
    assert.deepEqual(v.subresources, { status: {} });
    const spec = v.schema.openAPIV3Schema.properties.spec;
    assert.match(
      spec.properties.frontend["x-kubernetes-validations"][0].rule,
      /has\(self.service\) != has\(self.address\)/,
    );
    const be = spec.properties.backend;
    assert.match(
      be["x-kubernetes-validations"][0].rule,
      /has\(self.serviceEndpoint\) != has\(self.addressEndpoint\)/,
    );
    assert.deepEqual(be.properties.serviceEndpoint.properties.redirectMode.enum, [
      "podEndpoint",
      "hostPort",
      "nodeProxy",
    ]);
    const addresses = be.properties.addressEndpoint.properties.addresses;
    assert.equal(addresses.maxItems, 256);
    assert.match(addresses.items["x-kubernetes-validations"][0].rule, /isIP\(self\)/);
    assert.equal(spec.properties.frontend.properties.address.properties.fallbackService, undefined);
  });

  it("the hub's RBAC reads Pods and policies and patches policies' status only", () => {
    const docs = fs
      .readFileSync(path.join(ROOT, "deploy/rbac/hub.yaml"), "utf8")
      .split(/^---$/m)
      .map((d) => parse(d));
    const role = docs.find((d) => d.kind === "ClusterRole");
    const rules = role.rules as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
    const verbsOn = (group: string, res: string) =>
      rules.filter((r) => r.apiGroups.includes(group) && r.resources.includes(res)).flatMap((r) => r.verbs);
    assert.deepEqual(verbsOn("", "pods"), ["list", "watch"]);
    assert.deepEqual(verbsOn("switchyard.io", "localredirectpolicies"), ["list", "watch"]);
    assert.deepEqual(verbsOn("switchyard.io", "localredirectpolicies/status"), ["patch"]);
    assert.deepEqual(verbsOn("switchyard.io", "balancingpolicies"), ["list", "watch"]);
    assert.deepEqual(verbsOn("switchyard.io", "balancingpolicies/status"), ["patch"]);
    const writes = rules.flatMap((r) => r.verbs).filter((x) => !["get", "list", "watch"].includes(x));
    assert.deepEqual(writes, ["patch"], "nothing else is written");
  });
});
