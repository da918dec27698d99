/**
 * An edge node without CNI (or a host that cannot route to pods): its agent
 * resolves the ClusterIP to the pod's node IP + NodePort, and follows that
 * node's IP when it changes.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { waitUntil } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";

function cloud(nodeIp: string): string {
  return `apiVersion: v1
kind: Node
metadata: { name: cloud-1 }
status: { addresses: [{ type: InternalIP, address: ${nodeIp} }] }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: app }
spec: { type: NodePort, clusterIP: 10.96.40.10, ports: [{ name: http, port: 80, nodePort: 30080, targetPort: http }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: app, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [{ addresses: [10.42.7.9], nodeName: cloud-1 }]
`;
}

describe("an edge agent reaches backends through node ports", () => {
  let stack: Stack;
  let dir: string;
  before(async () => {
    stack = Stack.create("edge");
    dir = path.join(stack.stateDir, "cloud");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "cloud.yaml"), cloud("198.18.40.1"));
    // the cloud node's NodePort, as the edge node sees it; the pod IP 10.42.7.9 is not routable from here
    await stack.startBackend("cloud-1-nodeport", "198.18.40.1", 30080);
    await stack.startBackend("cloud-1-new-ip", "198.18.40.2", 30080);
    await stack.startHub([`cloud=dir:${dir}`]);
    await stack.startAgent(stack.createToken("cloud", ["--reach", "nodeport"]));
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("resolves the ClusterIP to the pod's node IP and the NodePort", async () => {
    const r = await waitUntil("the ClusterIP to resolve", async () => {
      const p = await stack.probe("10.96.40.10", 80);
      return p.ok ? p : undefined;
    });
    assert.match(r.reply, /^cloud-1-nodeport /);
  });

  it("follows the node's new IP", async () => {
    fs.writeFileSync(path.join(dir, "cloud.yaml"), cloud("198.18.40.2"));
    const r = await waitUntil("connects to follow the node", async () => {
      const p = await stack.probe("10.96.40.10", 80);
      return p.ok && p.reply.startsWith("cloud-1-new-ip") ? p : undefined;
    });
    assert.ok(r.ok);
  });
});
