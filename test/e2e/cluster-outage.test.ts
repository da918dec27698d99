/**
 * Two clusters (two test API servers) behind one hub configured by a file,
 * a plain host that joins east and imports west, and an edge node of west
 * that reaches backends through node ports — each with real BPF in its own
 * sandbox. Proves: the host resolves east's ClusterIP to east's pods and a
 * global Service fails over to west when east has none ready; the edge
 * agent resolves west's ClusterIP to nodeIP:NodePort; when west drops off
 * the network the hub keeps its last state (stale, metric), withdraws its
 * backends from east's host after the grace period while west's own edge
 * agent keeps them, and on recovery brings them back with what changed
 * during the outage.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeKubeApiServer } from "../kit/kube-apiserver.ts";
import { waitUntil } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";

function service(name: string, ip: string, extra: Record<string, unknown> = {}, annotations = {}) {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: "shop", annotations },
    spec: { clusterIP: ip, ports: [{ name: "http", port: 80, protocol: "TCP" }], ...extra },
  };
}

function slice(name: string, service: string, ip: string, port: number, node: string, ready = true) {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, namespace: "shop", labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv4",
    ports: [{ name: "http", port, protocol: "TCP" }],
    endpoints: [{ addresses: [ip], nodeName: node, conditions: { ready } }],
  };
}

function node(name: string, ip: string) {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name },
    status: { addresses: [{ type: "InternalIP", address: ip }] },
  };
}

const GLOBAL = { "switchyard.io/global": "true" };

async function replyOf(stack: Stack, ip: string, want: string) {
  return waitUntil(`${ip} to reach ${want}`, async () => {
    const p = await stack.probe(ip, 80);
    return p.ok && p.reply.startsWith(`${want} `) ? p : undefined;
  });
}

async function metric(url: string, name: string): Promise<string> {
  const text = await (await fetch(url)).text();
  return text.split("\n").find((l) => l.startsWith(name)) ?? "";
}

describe("clusters from a config file: cross-cluster services, an outage and its recovery", () => {
  let host: Stack;
  let edge: Stack;
  let east: FakeKubeApiServer;
  let west: FakeKubeApiServer;
  let metricsUrl: string;

  before(async () => {
    host = Stack.create("mchost");
    edge = Stack.create("mcedge");
    host.onCleanup(() => edge.cleanup());
    east = new FakeKubeApiServer();
    west = new FakeKubeApiServer();
    await east.start();
    await west.start();
    host.onCleanup(() => east.stop());
    host.onCleanup(() => west.stop());

    east.apply(node("east-1", "198.18.52.1"));
    east.apply(service("front", "10.96.52.10"));
    east.apply(slice("front-1", "front", "10.52.0.5", 8080, "east-1"));
    east.apply(service("cart", "10.96.52.20", {}, GLOBAL));
    east.apply(slice("cart-1", "cart", "10.52.0.6", 8080, "east-1"));

    west.apply(node("west-1", "198.18.53.1"));
    west.apply(
      service("pay", "10.97.53.10", {
        type: "NodePort",
        ports: [{ name: "http", port: 80, nodePort: 30090 }],
      }),
    );
    west.apply(slice("pay-1", "pay", "10.53.0.5", 8080, "west-1"));
    west.apply(service("cart", "10.97.53.20", {}, GLOBAL));
    // MCS: west exports pay; east imports it under a clusterset IP
    west.apply({
      apiVersion: "multicluster.x-k8s.io/v1alpha1",
      kind: "ServiceExport",
      metadata: { name: "pay", namespace: "shop" },
    });
    east.apply({
      apiVersion: "multicluster.x-k8s.io/v1alpha1",
      kind: "ServiceImport",
      metadata: { name: "pay", namespace: "shop" },
      spec: {
        type: "ClusterSetIP",
        ips: ["10.99.53.10"],
        ports: [{ name: "http", port: 80, protocol: "TCP" }],
      },
    });
    west.apply(slice("cart-1", "cart", "10.53.0.6", 8080, "west-1"));

    // pods as the host sees them (a routable pod network), and west's node port as the edge sees it
    await host.startBackend("east-front", "10.52.0.5", 8080);
    await host.startBackend("east-cart", "10.52.0.6", 8080);
    await host.startBackend("west-pay", "10.53.0.5", 8080);
    await host.startBackend("west-pay-moved", "10.53.0.9", 8080);
    await host.startBackend("west-cart", "10.53.0.6", 8080);
    await edge.startBackend("west-1-nodeport", "198.18.53.1", 30090);

    const config = path.join(host.stateDir, "hub.yaml");
    fs.writeFileSync(
      config,
      `staleGrace: 2s
apiTimeout: 1s
metricsListen: 127.0.0.1:0
clusters:
  - name: east
    kubeconfig: ${east.writeKubeconfig(host.stateDir, "east")}
    imports: [west]
  - name: west
    kubeconfig: ${west.writeKubeconfig(host.stateDir, "west")}
`,
    );
    const hub = await host.startHub([], ["--config", config]);
    metricsUrl = (await hub.waitFor(/metrics (http:\/\/\S+)/))[1]!;
    await host.startAgent(host.createToken("east"), ["--node-name", "host-1"]);
    await edge.startAgent(
      host.createToken("west", ["--reach", "nodeport"]),
      ["--node-name", "edge-1"],
      [host.hubAddress],
    );
  });
  after(async () => {
    await host?.cleanup();
  });

  it("resolves the home cluster's ClusterIP and the imported cluster's, from a host", async () => {
    await replyOf(host, "10.96.52.10", "east-front");
    await replyOf(host, "10.97.53.10", "west-pay");
  });

  it("resolves an MCS ServiceImport's clusterset IP to the exporting cluster's pods", async () => {
    await replyOf(host, "10.99.53.10", "west-pay");
  });

  it("resolves a ClusterIP to the pod's node IP and NodePort, from an edge node", async () => {
    await replyOf(edge, "10.97.53.10", "west-1-nodeport");
  });

  it("prefers the home cluster for a global Service and fails over when it has no ready pod", async () => {
    await replyOf(host, "10.96.52.20", "east-cart");
    east.apply(slice("cart-1", "cart", "10.52.0.6", 8080, "east-1", false));
    await replyOf(host, "10.96.52.20", "west-cart");
    east.apply(slice("cart-1", "cart", "10.52.0.6", 8080, "east-1", true));
    await replyOf(host, "10.96.52.20", "east-cart");
  });

  it("counts the agents' streams per thread that serves them", async () => {
    const text = await (await fetch(metricsUrl)).text();
    const sum = (re: RegExp) => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
    const agents = sum(/^switchyard_hub_agents_connected\{[^}]*\} (\d+)$/gm);
    const streams = sum(/^switchyard_hub_streams\{thread="[^"]+"\} (\d+)$/gm);
    assert.equal(agents, 2, "host-1 and edge-1");
    assert.ok(
      streams >= agents,
      `${streams} streams for ${agents} agents:\n${text.match(/^switchyard_hub_streams.*$/gm)}`,
    );
  });

  it("keeps, then withdraws, then restores an unreachable cluster's backends, as configured", async () => {
    west.outage();
    await waitUntil("west marked stale", async () =>
      (await metric(metricsUrl, 'switchyard_hub_cluster_stale{cluster="west"}')).endsWith(" 1")
        ? true
        : undefined,
    );
    // pods move and a Service goes while the hub cannot see west, and west's history is compacted:
    // the hub's watches must relist on return (410) and notice the deletion without a watch event
    west.apply(slice("pay-1", "pay", "10.53.0.9", 8080, "west-1"));
    west.delete("Service", "shop", "cart");
    west.delete("EndpointSlice", "shop", "cart-1");
    west.compact();
    await waitUntil("west withdrawn after the grace period", async () =>
      (await metric(metricsUrl, 'switchyard_hub_cluster_withdrawn{cluster="west"}')).endsWith(" 1")
        ? true
        : undefined,
    );
    const refused = await waitUntil("east's host to lose west's backends", async () => {
      const p = await host.probe("10.97.53.10", 80);
      return !p.ok ? p : undefined;
    });
    assert.equal(refused.code, "ECONNREFUSED", "an empty set refuses at once, no timeout");
    assert.match(host.hub!.output(), /cluster unreachable/);
    assert.match(host.hub!.output(), /backends are withdrawn/);
    // west's own edge agent keeps resolving west's Service from the last known state
    const p = await edge.probe("10.97.53.10", 80);
    assert.ok(p.ok && p.reply.startsWith("west-1-nodeport "), JSON.stringify(p));
    // east's own Services are untouched
    await replyOf(host, "10.96.52.10", "east-front");

    west.recover();
    await replyOf(host, "10.97.53.10", "west-pay-moved");
    const gone = await waitUntil("west's deleted Service to leave", async () => {
      const p = await host.probe("10.97.53.20", 80);
      return !p.ok && p.code !== "ECONNREFUSED" ? p : undefined;
    });
    assert.equal(gone.code, "ENETUNREACH", "no frontend any more: the connect is not translated");
    assert.ok(west.goneSent > 0, "the hub's watches were told 410 Gone and relisted");
    assert.match(
      await metric(metricsUrl, 'switchyard_hub_cluster_stale{cluster="west"}'),
      / 0$/,
      "stale cleared",
    );
  });

  it("notices a partition that drops packets (nothing fails, nothing answers) and recovers from it", async () => {
    await replyOf(host, "10.97.53.10", "west-pay-moved");
    const before = host.hub!.output().length;
    west.hang();
    await waitUntil("west withdrawn while hung", async () =>
      (await metric(metricsUrl, 'switchyard_hub_cluster_withdrawn{cluster="west"}')).endsWith(" 1")
        ? true
        : undefined,
    );
    assert.match(host.hub!.output().slice(before), /the API server did not answer within 1000 ms/);
    await waitUntil("east's host to lose west's backends", async () => {
      const p = await host.probe("10.97.53.10", 80);
      return !p.ok && p.code === "ECONNREFUSED" ? p : undefined;
    });
    // the pod moves back while the partition lasts; the hub learns it when the partition heals
    west.apply(slice("pay-1", "pay", "10.53.0.5", 8080, "west-1"));
    west.recover();
    await replyOf(host, "10.97.53.10", "west-pay");
  });
});
