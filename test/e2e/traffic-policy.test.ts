/**
 * externalTrafficPolicy: Local as Kubernetes defines it for connects that
 * start on a node (issue 13): an agent on a node without a local endpoint
 * sends connects to the Service's external IP and NodePort to a ready
 * endpoint elsewhere (the internal policy, Cluster here), as kube-proxy and
 * Cilium's socket LB do. The strict option — the annotation
 * switchyard.io/external-traffic-strict, or the hub's externalTrafficStrict
 * setting — refuses them at once, and lifting it serves them again.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { waitUntil } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";

const CLUSTER_IP = "10.96.61.10";
const EXTERNAL_IP = "198.18.61.50";
/** the agent's node (node-1); the only endpoint runs on node-2 */
const NODE_IP = "198.18.61.100";
const NODE_PORT = 30610;

function cluster(strictAnnotation: boolean): string {
  const annotations = strictAnnotation ? `{ switchyard.io/external-traffic-strict: "true" }` : "{}";
  return `apiVersion: v1
kind: Node
metadata: { name: node-1 }
status: { addresses: [{ type: InternalIP, address: ${NODE_IP} }] }
---
apiVersion: v1
kind: Node
metadata: { name: node-2 }
status: { addresses: [{ type: InternalIP, address: 198.18.61.101 }] }
---
apiVersion: v1
kind: Service
metadata: { name: ingress, namespace: edge, annotations: ${annotations} }
spec:
  type: NodePort
  clusterIP: ${CLUSTER_IP}
  externalIPs: [${EXTERNAL_IP}]
  externalTrafficPolicy: Local
  ports: [{ name: http, port: 80, nodePort: ${NODE_PORT}, targetPort: http }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ingress-1, namespace: edge, labels: { kubernetes.io/service-name: ingress } }
addressType: IPv4
ports: [{ name: http, port: 8080 }]
endpoints: [{ addresses: [198.18.61.11], nodeName: node-2, conditions: { ready: true } }]
`;
}

describe("externalTrafficPolicy: Local from a node without a local endpoint", () => {
  let stack: Stack;
  let dir: string;
  let config: string;
  const writeConfig = (strict: boolean) => {
    fs.writeFileSync(`${config}.tmp`, `externalTrafficStrict: ${strict}\n`);
    fs.renameSync(`${config}.tmp`, config);
  };
  /** the external frontends: the external IP, and the NodePort on this node's address */
  const external = async () => [await stack.probe(EXTERNAL_IP, 80), await stack.probe(NODE_IP, NODE_PORT)];
  const served = () =>
    waitUntil("the external IP and the NodePort to reach the endpoint on node-2", async () => {
      const rs = await external();
      return rs.every((r) => r.ok && r.reply.startsWith("on-node-2 ")) ? rs : undefined;
    });
  const refused = () =>
    waitUntil("the external IP and the NodePort to be refused", async () => {
      const rs = await external();
      return rs.every((r) => !r.ok && r.code === "ECONNREFUSED") ? rs : undefined;
    });

  before(async () => {
    stack = Stack.create("etp");
    dir = path.join(stack.stateDir, "prod");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "prod.yaml"), cluster(false));
    const etc = path.join(stack.stateDir, "etc");
    fs.mkdirSync(etc);
    config = path.join(etc, "hub.yaml");
    writeConfig(false);
    await stack.startBackend("on-node-2", "198.18.61.11", 8080);
    await stack.startHub([`prod=dir:${dir}`], ["--config", config]);
    await stack.startAgent(stack.createToken("prod"), ["--node-address", NODE_IP]);
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("reaches the ready endpoint on another node through the external IP and the NodePort", async () => {
    await served();
    const c = await stack.probe(CLUSTER_IP, 80);
    assert.ok(c.ok && c.reply.startsWith("on-node-2 "), JSON.stringify(c));
  });

  it("refuses them with the strict annotation (the ClusterIP still works), and serves them without it", async () => {
    fs.writeFileSync(path.join(dir, "prod.yaml"), cluster(true));
    await refused();
    const c = await stack.probe(CLUSTER_IP, 80);
    assert.ok(c.ok && c.reply.startsWith("on-node-2 "), JSON.stringify(c));
    fs.writeFileSync(path.join(dir, "prod.yaml"), cluster(false));
    await served();
  });

  it("refuses them with the hub's externalTrafficStrict setting, changed live in its config file", async () => {
    writeConfig(true);
    await refused();
    await stack.hub!.waitFor(/"externalTrafficStrict":true,"msg":"traffic policy setting changed"/);
    writeConfig(false);
    await served();
  });
});
