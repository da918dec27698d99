/**
 * An edge node without CNI (or a host that cannot route to pods): its agent
 * resolves the ClusterIP to the pod's node IP + NodePort, and follows that
 * node's IP when it changes. Endpoints on node addresses (the API servers',
 * hostNetwork pods) are reached directly, with or without a NodePort; an
 * externalTrafficPolicy: Local Service goes to the NodePort of the nodes
 * with a ready endpoint, from its external frontends too.
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

/** Other nodes and Services of the cloud, in a file of their own (cloud.yaml changes below). */
const MORE = `${[
  ["cp-1", "198.18.40.21"],
  ["cloud-2", "198.18.40.3"],
  ["cloud-3", "198.18.40.4"],
  ["cloud-4", "198.18.40.5"],
  ["cloud-5", "198.18.40.6"],
]
  .map(
    ([name, ip]) => `apiVersion: v1
kind: Node
metadata: { name: ${name} }
status: { addresses: [{ type: InternalIP, address: ${ip} }] }
---
`,
  )
  .join("")}
# the API servers' endpoints: node addresses, no nodeName, no NodePort
apiVersion: v1
kind: Service
metadata: { name: kubernetes, namespace: default }
spec: { clusterIP: 10.96.0.1, ports: [{ name: https, port: 443, targetPort: 6443 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: kubernetes, namespace: default, labels: { kubernetes.io/service-name: kubernetes } }
addressType: IPv4
ports: [{ name: https, port: 6443 }]
endpoints: [{ addresses: [198.18.40.21] }]
---
# a hostNetwork pod on cloud-2 beside an ordinary pod on cloud-3
apiVersion: v1
kind: Service
metadata: { name: mixed, namespace: app }
spec: { type: NodePort, clusterIP: 10.96.40.20, ports: [{ name: http, port: 80, nodePort: 30091, targetPort: http }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: mixed-1, namespace: app, labels: { kubernetes.io/service-name: mixed } }
addressType: IPv4
ports: [{ name: http, port: 9091 }]
endpoints:
  - { addresses: [198.18.40.3], nodeName: cloud-2 }
  - { addresses: [10.42.7.30], nodeName: cloud-3 }
---
# externalTrafficPolicy: Local, ready on cloud-4 only
apiVersion: v1
kind: Service
metadata: { name: ingress, namespace: app }
spec:
  type: NodePort
  clusterIP: 10.96.40.30
  externalIPs: [198.18.40.50]
  externalTrafficPolicy: Local
  ports: [{ name: http, port: 80, nodePort: 30092, targetPort: http }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ingress-1, namespace: app, labels: { kubernetes.io/service-name: ingress } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints:
  - { addresses: [10.42.7.40], nodeName: cloud-4, conditions: { ready: true } }
  - { addresses: [10.42.9.40], nodeName: cloud-5, conditions: { ready: false, serving: false } }
`;

describe("an edge agent reaches backends through node ports", () => {
  let stack: Stack;
  let dir: string;
  before(async () => {
    stack = Stack.create("edge");
    dir = path.join(stack.stateDir, "cloud");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "cloud.yaml"), cloud("198.18.40.1"));
    fs.writeFileSync(path.join(dir, "more.yaml"), MORE);
    // the cloud node's NodePort, as the edge node sees it; the pod IP 10.42.7.9 is not routable from here
    await stack.startBackend("cloud-1-nodeport", "198.18.40.1", 30080);
    await stack.startBackend("cloud-1-new-ip", "198.18.40.2", 30080);
    await stack.startBackend("apiserver", "198.18.40.21", 6443);
    await stack.startBackend("cloud-2-hostnet", "198.18.40.3", 9091);
    await stack.startBackend("cloud-3-mixed-nodeport", "198.18.40.4", 30091);
    await stack.startBackend("cloud-4-ingress", "198.18.40.5", 30092);
    // cloud-5 has no ready endpoint of ingress: its NodePort would drop the connection
    await stack.startBackend("cloud-5-ingress", "198.18.40.6", 30092);
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

  it("reaches endpoints on node addresses directly: default/kubernetes (no nodeName, no NodePort)", async () => {
    const r = await waitUntil("the API servers' endpoint to resolve", async () => {
      const p = await stack.probe("10.96.0.1", 443);
      return p.ok ? p : undefined;
    });
    assert.match(r.reply, /^apiserver /);
  });

  it("reaches a Service per endpoint: a hostNetwork pod directly, a pod through its node's NodePort", async () => {
    const seen = new Set<string>();
    await waitUntil("connects to reach both endpoints", async () => {
      const p = await stack.probe("10.96.40.20", 80);
      if (p.ok) seen.add(p.reply.split(" ")[0]!);
      return seen.size === 2 ? true : undefined;
    });
    assert.deepEqual([...seen].sort(), ["cloud-2-hostnet", "cloud-3-mixed-nodeport"]);
  });

  it("sends an externalTrafficPolicy: Local Service to the nodes with a ready endpoint, from its external IP too", async () => {
    await waitUntil("the external IP to resolve", async () =>
      (await stack.probe("198.18.40.50", 80)).ok ? true : undefined,
    );
    for (const ip of ["198.18.40.50", "10.96.40.30", "198.18.40.50", "10.96.40.30"]) {
      const p = await stack.probe(ip, 80);
      assert.ok(p.ok && p.reply.startsWith("cloud-4-ingress "), `${ip}: ${JSON.stringify(p)}`);
    }
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
