/**
 * A LocalRedirectPolicy end to end through the real binaries: a directory
 * cluster (Service, its slice, Pods, the policy) → the hub (verdict, the
 * shared lrp resource, this node's lrpb) → the agent (one frontend entry with
 * the Service as fallback) → the kernel. Connects to the Service's ClusterIP
 * go to the pod on the agent's own node at the policy's toPort; when that pod
 * is not ready they go to the Service's endpoints, and back when it is ready
 * again; the policy's removal leaves the plain Service. A pod on another node
 * is never chosen.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { waitUntil } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";

const VIP = "10.96.51.10";
const CENTRAL = "198.18.51.20";
const LOCAL = "198.18.51.11";
const REMOTE = "198.18.51.12";

const service = `apiVersion: v1
kind: Service
metadata: { name: cache, namespace: infra }
spec: { clusterIP: ${VIP}, ports: [{ name: http, port: 80 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: cache-1, namespace: infra, labels: { kubernetes.io/service-name: cache } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [{ addresses: [${CENTRAL}], nodeName: node-2, conditions: { ready: true } }]
`;

const pod = (name: string, node: string, ip: string, ready: boolean) => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: infra, uid: 00000000-0000-0000-0000-0000000000${name === "proxy-a" ? "0a" : "0b"}, labels: { app: node-proxy } }
spec: { nodeName: ${node}, containers: [{ name: proxy, ports: [{ name: proxy, containerPort: 8081 }] }] }
status: { podIPs: [{ ip: ${ip} }], conditions: [{ type: Ready, status: "${ready ? "True" : "False"}" }] }
`;

const policy = `apiVersion: switchyard.io/v1alpha1
kind: LocalRedirectPolicy
metadata: { name: cache-local, namespace: infra, creationTimestamp: "2026-12-01T00:00:00Z" }
spec:
  frontend: { service: { name: cache, ports: [http] } }
  backend:
    selector: { matchLabels: { app: node-proxy } }
    toPorts: [{ name: http, port: proxy, protocol: TCP }]
`;

describe("LocalRedirectPolicy through the hub and the agent", () => {
  let stack: Stack;
  let dir: string;
  const reaches = (who: string) =>
    waitUntil(`connects to ${VIP}:80 to reach ${who}`, async () => {
      const p = await stack.probe(VIP, 80);
      return p.ok && p.reply.startsWith(`${who} `) ? p : undefined;
    });

  before(async () => {
    stack = Stack.create("lrpstack");
    dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "service.yaml"), service);
    fs.writeFileSync(path.join(dir, "pod-a.yaml"), pod("proxy-a", "node-1", LOCAL, true));
    fs.writeFileSync(path.join(dir, "pod-b.yaml"), pod("proxy-b", "node-2", REMOTE, true));
    await stack.startBackend("central", CENTRAL, 8080);
    await stack.startBackend("local", LOCAL, 8081);
    await stack.startBackend("remote", REMOTE, 8081);
    await stack.startHub([`prod=dir:${dir}`]);
    await stack.startAgent(stack.createToken("prod"));
    await reaches("central");
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("redirects the Service's ClusterIP to the pod on this node at the policy's toPort, never to another node's", async () => {
    fs.writeFileSync(path.join(dir, "policy.yaml"), policy);
    await reaches("local");
    for (let i = 0; i < 10; i++) {
      const p = await stack.probe(VIP, 80);
      assert.ok(p.ok && p.reply.startsWith("local "), `connect ${i}: ${JSON.stringify(p)}`);
    }
  });

  it("falls back to the Service while the local pod is not ready, with no failed connect, and comes back", async () => {
    const loop = await stack.connectLoop(VIP, 80);
    fs.writeFileSync(path.join(dir, "pod-a.yaml"), pod("proxy-a", "node-1", LOCAL, false));
    await reaches("central");
    fs.writeFileSync(path.join(dir, "pod-a.yaml"), pod("proxy-a", "node-1", LOCAL, true));
    await reaches("local");
    const counts = await loop.finish();
    assert.ok(counts.ok > 0);
    assert.equal(counts.failed, 0, `failed connects: ${JSON.stringify(counts.errors)}`);
    assert.equal(counts.replies["remote"] ?? 0, 0, "another node's pod is never chosen");
  });

  it("leaves the plain Service when the policy is removed", async () => {
    fs.rmSync(path.join(dir, "policy.yaml"));
    await reaches("central");
  });
});
