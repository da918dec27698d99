/**
 * trafficDistribution end to end: the agent learns its zone from its Node's
 * topology label through the hub's Welcome, and a PreferClose Service
 * resolves to the same-zone backend while there is one, else to the others.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { waitUntil } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";

function cluster(nearReady: boolean): string {
  return `apiVersion: v1
kind: Node
metadata: { name: node-1, labels: { topology.kubernetes.io/zone: zone-a } }
status: { addresses: [{ type: InternalIP, address: 198.18.57.100 }] }
---
apiVersion: v1
kind: Service
metadata: { name: search, namespace: shop }
spec: { clusterIP: 10.96.57.10, trafficDistribution: PreferClose, ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: search-1, namespace: shop, labels: { kubernetes.io/service-name: search } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints:
  - { addresses: [198.18.57.11], zone: zone-a, conditions: { ready: ${nearReady} } }
  - { addresses: [198.18.57.12], zone: zone-b }
  - { addresses: [198.18.57.13], zone: zone-c }
`;
}

describe("topology-aware resolution (trafficDistribution: PreferClose)", () => {
  let stack: Stack;
  let dir: string;
  before(async () => {
    stack = Stack.create("topo");
    dir = path.join(stack.stateDir, "c");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "a.yaml"), cluster(true));
    await stack.startBackend("near", "198.18.57.11", 8080);
    await stack.startBackend("far-b", "198.18.57.12", 8080);
    await stack.startBackend("far-c", "198.18.57.13", 8080);
    await stack.startHub([`prod=dir:${dir}`]);
    await stack.startAgent(stack.createToken("prod"));
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("learns its zone from the hub and resolves only to the same-zone backend", async () => {
    await stack.agent!.waitFor(/"zone":"zone-a","msg":"node zone"/);
    await waitUntil("the Service to resolve", async () =>
      (await stack.probe("10.96.57.10", 80)).ok ? true : undefined,
    );
    const replies = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const p = await stack.probe("10.96.57.10", 80);
      assert.ok(p.ok);
      replies.add(p.reply.split(" ")[0]!);
    }
    assert.deepEqual([...replies], ["near"], "20 connects, all to the backend in zone-a");
  });

  it("falls back to the other zones when its zone has no ready backend", async () => {
    fs.writeFileSync(path.join(dir, "a.yaml"), cluster(false));
    const seen = new Set<string>();
    await waitUntil("connects to reach both other zones", async () => {
      const p = await stack.probe("10.96.57.10", 80);
      if (p.ok && p.reply.startsWith("far")) seen.add(p.reply.split(" ")[0]!);
      return seen.size === 2 ? true : undefined;
    });
    // from now on the unready same-zone backend is never used
    for (let i = 0; i < 20; i++) {
      const p = await stack.probe("10.96.57.10", 80);
      assert.ok(p.ok && p.reply.startsWith("far"), JSON.stringify(p));
    }
  });
});
