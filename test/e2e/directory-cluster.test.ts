/**
 * End to end with a directory cluster: YAML → hub → gRPC → agent → BPF →
 * a real connect from a sandbox cgroup, and the NAT event over NATS.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, type Subscription } from "@nats-io/transport-node";
import { waitUntil } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";

const VIP = "10.96.7.10";

function serviceYaml(endpoints: string[]): string {
  return `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  clusterIP: ${VIP}
  ports: [{ name: http, port: 80, protocol: TCP, targetPort: http }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: { kubernetes.io/service-name: web }
addressType: IPv4
ports: [{ name: http, port: 8080, protocol: TCP }]
endpoints:
${endpoints.map((ip) => `  - addresses: [${ip}]\n    conditions: { ready: true }`).join("\n")}
`;
}

describe("a directory cluster, resolved end to end", () => {
  let stack: Stack;
  let dir: string;
  let token: string;
  before(async () => {
    stack = Stack.create("e2edir");
    dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "web.yaml"), serviceYaml(["198.18.1.11"]));
    await stack.startBackend("backend-a", "198.18.1.11", 8080);
    await stack.startBackend("backend-b", "198.18.1.12", 8080);
    await stack.startNats();
    token = stack.createToken("east");
    await stack.startHub([`east=dir:${dir}`]);
    await stack.startAgent(token);
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("translates a connect to the ClusterIP inside the cgroup, and not outside it", async () => {
    const r = await waitUntil("VIP to resolve", async () => {
      const p = await stack.probe(VIP, 80);
      return p.ok ? p : undefined;
    });
    assert.match(r.reply, /^backend-a /);
    const outside = await stack.probe(VIP, 80, { inCgroup: false });
    assert.equal(outside.ok, false, "a process outside the agent's cgroup must not be translated");
    if (!outside.ok) assert.equal(outside.code, "ENETUNREACH");
  });

  it("publishes the NAT event of a connect over NATS with addresses, protocol and service", async () => {
    const nc = await connect({ servers: stack.nats!.url });
    const sub: Subscription = nc.subscribe("switchyard.nat.east.node-1.shop.web");
    const got = (async () => {
      for await (const m of sub) return m.json<Record<string, unknown>>();
      return undefined;
    })();
    await nc.flush();
    const r = await stack.probe(VIP, 80);
    assert.equal(r.ok, true);
    const ev = await got;
    await nc.close();
    assert.ok(ev);
    assert.equal(ev["service"], "east/shop/web");
    assert.equal(ev["originalDestIp"], VIP);
    assert.equal(ev["originalDestPort"], 80);
    assert.equal(ev["natIp"], "198.18.1.11");
    assert.equal(ev["natPort"], 8080);
    assert.equal(ev["protocol"], "tcp");
    assert.equal(ev["isSuccess"], true);
    assert.equal(ev["natMode"], "ServiceClusterIP");
    assert.equal(ev["cluster"], "east");
  });

  it("follows an edit of the YAML file without restarting hub or agent", async () => {
    fs.writeFileSync(path.join(dir, "web.yaml"), serviceYaml(["198.18.1.12"]));
    const r = await waitUntil("connects to move to backend-b", async () => {
      const p = await stack.probe(VIP, 80);
      return p.ok && p.reply.startsWith("backend-b") ? p : undefined;
    });
    assert.match(r.reply, /^backend-b /);
  });

  it("keeps serving when a file turns invalid, and says which file", async () => {
    fs.writeFileSync(path.join(dir, "broken.yaml"), "kind: Service\nmetadata: [oops\n");
    await stack.hub!.waitFor(/invalid YAML/);
    const p = await stack.probe(VIP, 80);
    assert.equal(p.ok, true);
    assert.match(stack.hub!.output(), /broken\.yaml/);
    fs.rmSync(path.join(dir, "broken.yaml"));
  });

  it("stops resolving the VIP when the Service is deleted", async () => {
    fs.rmSync(path.join(dir, "web.yaml"));
    const r = await waitUntil("VIP to stop resolving", async () => {
      const p = await stack.probe(VIP, 80);
      return p.ok ? undefined : p;
    });
    assert.equal(r.code, "ENETUNREACH");
  });
});
