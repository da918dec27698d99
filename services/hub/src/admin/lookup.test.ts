import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NatMode, Protocol, RedirectFrontendKind, type Resource } from "@switchyard/proto/assignment";
import { computeLookup, type LookupInput } from "./lookup.ts";

const TCP = Protocol.PROTOCOL_TCP;

function service(name: string, o: { ip: string; itp?: boolean; tiers?: string[][] }): Resource {
  const [, cluster, namespace, n] = name.split("/");
  return {
    name,
    version: "1",
    body: {
      $case: "service",
      value: {
        cluster: cluster!,
        namespace: namespace!,
        name: n!,
        frontends: [
          { ip: o.ip, port: 80, protocol: TCP, mode: NatMode.NAT_MODE_CLUSTER_IP, portName: "http" },
          { ip: "", port: 30080, protocol: TCP, mode: NatMode.NAT_MODE_NODE_PORT, portName: "http" },
        ],
        externalTrafficLocal: false,
        internalTrafficLocal: o.itp ?? false,
        affinityTimeoutSeconds: 0,
        backendTiers: (o.tiers ?? []).map((services) => ({ services })),
        trafficDistribution: 0,
        externalTrafficStrict: false,
      },
    },
  };
}

function slice(svc: string, eps: Array<[string, string, boolean]>): Resource {
  return {
    name: `eps${svc.slice(3)}-x`,
    version: "1",
    body: {
      $case: "backendSlice",
      value: {
        service: svc,
        ports: [{ name: "http", port: 8080, protocol: TCP }],
        endpoints: eps.map(([ip, node, ready]) => ({
          addresses: [ip],
          nodeName: node,
          ready,
          serving: ready,
          terminating: false,
          zone: "",
          forZones: [],
        })),
      },
    },
  };
}

const base: Omit<LookupInput, "resources"> = {
  node: "node-1",
  cluster: "c",
  view: ["c"],
  ip: "10.96.0.10",
  port: 80,
  protocol: "tcp",
  nodeAddresses: ["192.168.1.10"],
  policies: [],
  servicesWithIp: [],
  diagnosticsOf: () => [],
};

describe("lookup", () => {
  it("a ClusterIP: the Service and its ready backends, the not-ready one listed but not used", () => {
    const r = computeLookup({
      ...base,
      resources: [
        service("svc/c/demo/web", { ip: "10.96.0.10" }),
        slice("svc/c/demo/web", [
          ["10.1.0.5", "node-1", true],
          ["10.1.0.6", "node-2", false],
        ]),
      ],
    });
    assert.equal(r.answer, "10.96.0.10:80/tcp on node-1 → Service svc/c/demo/web → 10.1.0.5:8080");
    assert.deepEqual(
      r.matches[0]!.backends.map((b) => [b.address, b.port, b.used]),
      [
        ["10.1.0.5", 8080, true],
        ["10.1.0.6", 8080, false],
      ],
    );
  });

  it("internalTrafficPolicy: Local with no ready endpoint on the node says so", () => {
    const r = computeLookup({
      ...base,
      node: "node-3",
      resources: [
        service("svc/c/demo/web", { ip: "10.96.0.10", itp: true }),
        slice("svc/c/demo/web", [["10.1.0.5", "node-1", true]]),
      ],
    });
    assert.match(r.answer, /no ready endpoint on node-3 \(internalTrafficPolicy: Local\)/);
  });

  it("no ready endpoints at all, and a NodePort on a node address", () => {
    const r = computeLookup({
      ...base,
      ip: "192.168.1.10",
      port: 30080,
      resources: [
        service("svc/c/demo/web", { ip: "10.96.0.10" }),
        slice("svc/c/demo/web", [["10.1.0.5", "node-1", false]]),
      ],
    });
    assert.equal(r.matches[0]!.mode, "nodePort");
    assert.match(r.answer, /no ready endpoints \(1 not ready\): connects are refused/);
  });

  it("a global Service fails over to the next tier", () => {
    const r = computeLookup({
      ...base,
      view: ["c", "d"],
      resources: [
        service("svc/c/demo/web", { ip: "10.96.0.10", tiers: [["svc/c/demo/web"], ["svc/d/demo/web"]] }),
        slice("svc/c/demo/web", [["10.1.0.5", "node-1", false]]),
        slice("svc/d/demo/web", [["10.2.0.5", "d-node", true]]),
      ],
    });
    assert.match(r.answer, /→ 10\.2\.0\.5:8080 \(failed over: no ready endpoint in svc\/c\/demo\/web\)/);
  });

  it("a LocalRedirectPolicy takes the frontend: this node's pod, the Service shadowed", () => {
    const r = computeLookup({
      ...base,
      resources: [
        service("svc/c/demo/web", { ip: "10.96.0.10" }),
        slice("svc/c/demo/web", [["10.1.0.5", "node-2", true]]),
        {
          name: "lrp/c/demo/local",
          version: "1",
          body: {
            $case: "localRedirect",
            value: {
              cluster: "c",
              namespace: "demo",
              name: "local",
              frontends: [
                {
                  ip: "10.96.0.10",
                  port: 80,
                  protocol: TCP,
                  portName: "p",
                  fallbackService: "svc/c/demo/web",
                  fallbackPortName: "http",
                },
              ],
              qosPerSecond: 0,
              skipRedirectFromBackend: false,
              frontendKind: RedirectFrontendKind.REDIRECT_FRONTEND_KIND_SERVICE,
            },
          },
        },
        {
          name: "lrpb/c/demo/local/node-1",
          version: "1",
          body: {
            $case: "localBackends",
            value: {
              policy: "lrp/c/demo/local",
              ports: [{ name: "p", port: 9000, protocol: TCP }],
              pods: [{ name: "cache-1", addresses: ["10.1.0.9"], ready: true, terminating: false, uid: "u" }],
            },
          },
        },
      ],
    });
    assert.equal(
      r.answer,
      "10.96.0.10:80/tcp on node-1 → LocalRedirectPolicy lrp/c/demo/local → 10.1.0.9:9000",
    );
    assert.equal(r.matches[1]!.inForce, false);
    assert.match(r.matches[1]!.reason, /shadowed by lrp\/c\/demo\/local/);
  });

  it("nothing here: the address's Service in a cluster outside the view, a refused policy", () => {
    const r = computeLookup({
      ...base,
      resources: [],
      servicesWithIp: ["other/demo/web"],
      policies: [
        {
          cluster: "c",
          kind: "LocalRedirectPolicy",
          namespace: "demo",
          name: "late",
          frontend: "10.96.0.10:80/TCP",
          state: "NotAccepted",
          reason: "Conflict",
          message: "demo/first holds it",
        },
      ],
    });
    assert.match(r.answer, /is not a frontend on node-1/);
    assert.match(
      r.notes.join("\n"),
      /LocalRedirectPolicy c\/demo\/late .* is not in force: Conflict — demo\/first holds it/,
    );
    assert.match(
      r.notes.join("\n"),
      /Service other\/demo\/web has this address, but cluster other is not in node-1's view \(c\)/,
    );
  });
});
