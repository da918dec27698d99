/**
 * End to end with a Kubernetes cluster: the hub's real client-node informers
 * against the test API server (list/watch, 410 relist), the agent's BPF in a
 * sandbox, and agents that are refused or restarted.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { FakeKubeApiServer } from "../kit/kube-apiserver.ts";
import { waitUntil } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";

const VIP = "10.96.8.20";

function service() {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "api", namespace: "prod" },
    spec: {
      type: "ClusterIP",
      clusterIP: VIP,
      clusterIPs: [VIP],
      ports: [{ name: "grpc", port: 9000, protocol: "TCP", targetPort: "grpc" }],
    },
  };
}

function slice(ips: string[], port = 7000) {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: "api-x1", namespace: "prod", labels: { "kubernetes.io/service-name": "api" } },
    addressType: "IPv4",
    ports: [{ name: "grpc", port, protocol: "TCP" }],
    endpoints: ips.map((ip) => ({
      addresses: [ip],
      nodeName: "node-1",
      conditions: { ready: true, serving: true, terminating: false },
    })),
  };
}

async function reaches(stack: Stack, name: string) {
  return waitUntil(`connects to reach ${name}`, async () => {
    const p = await stack.probe(VIP, 9000);
    return p.ok && p.reply.startsWith(`${name} `) ? p : undefined;
  });
}

describe("a Kubernetes cluster through the test API server", () => {
  let stack: Stack;
  let api: FakeKubeApiServer;
  let token: string;
  before(async () => {
    stack = Stack.create("e2ekube");
    api = new FakeKubeApiServer();
    // a cluster without the MCS CRDs: their 404s are not an outage
    api.mcsInstalled = false;
    await api.start();
    stack.onCleanup(() => api.stop());
    api.apply({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "node-1" },
      status: { addresses: [{ type: "InternalIP", address: "198.18.2.1" }] },
    });
    api.apply(service());
    api.apply(slice(["198.18.2.11"]));
    await stack.startBackend("pod-a", "198.18.2.11", 7000);
    await stack.startBackend("pod-b", "198.18.2.12", 7000);
    const kubeconfig = api.writeKubeconfig(stack.stateDir, "west");
    token = stack.createToken("west");
    await stack.startHub([`west=kubeconfig:${kubeconfig}`]);
    await stack.startAgent(token);
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("resolves a Service listed from the API server", async () => {
    await reaches(stack, "pod-a");
    await stack.hub!.waitFor(/"kind":"ServiceImport"[^\n]*CRD not installed/);
    assert.doesNotMatch(
      stack.hub!.output(),
      /cluster unreachable/,
      "missing optional CRDs are not an outage",
    );
  });

  it("moves new connections when the EndpointSlice changes, through the watch", async () => {
    api.apply(slice(["198.18.2.12"]));
    await reaches(stack, "pod-b");
  });

  it("relists after 410 Gone and picks up what changed meanwhile", async () => {
    const listsBefore = api.requests.filter(
      (r) => r.includes("endpointslices") && !r.includes("watch="),
    ).length;
    // in one tick (the client cannot reconnect in between): watches drop, the
    // slice changes while nobody watches, and that history is compacted away
    api.dropWatches();
    api.apply(slice(["198.18.2.11"]));
    api.compact();
    await reaches(stack, "pod-a");
    assert.ok(api.goneSent > 0, "the resumed watch must have been answered 410 Gone");
    await waitUntil("a relist of endpointslices", () =>
      api.requests.filter((r) => r.includes("endpointslices") && !r.includes("watch=")).length > listsBefore
        ? true
        : undefined,
    );
  });

  it("refuses an agent with a wrong token with a clear error, and keeps serving the others", async () => {
    const bad = stack.startExtraAgent("intruder", "abcdef.0123456789abcdef");
    await bad.waitFor(/hub refused this agent/);
    await bad.waitFor(/join token not accepted \(unknown, revoked or wrong secret\)/);
    await bad.stop();
    const p = await stack.probe(VIP, 9000);
    assert.equal(p.ok, true, "the good agent's service still resolves");
  });

  it("keeps resolving while the agent is killed and restarted, and the restarted agent writes nothing when nothing changed", async () => {
    await reaches(stack, "pod-a");
    const loop = await stack.connectLoop(VIP, 9000);
    await stack.agent!.stop("SIGKILL");
    // agent gone: pinned maps and links keep resolving
    const during = await stack.probe(VIP, 9000);
    assert.equal(during.ok, true, "resolution must survive the agent being down");
    const agent = await stack.startAgent(token);
    await agent.waitFor(/"msg":"maps adopted from pins"/);
    // it resumes from the view it kept on disk: the hub finds it current and sends nothing; the one full plan writes nothing
    await agent.waitFor(/"msg":"held view resumed from the state directory"/);
    const done = await agent.waitFor(/\{[^\n]*"msg":"complete view from the hub[^\n]*\}/);
    assert.equal((JSON.parse(done[0]) as { ops: number }).ops, 0, "the complete view's plan wrote nothing");
    assert.doesNotMatch(agent.output(), /"msg":"delta applied"/, "nothing re-sent");
    assert.doesNotMatch(agent.output(), /"msg":"maps updated"/);
    const counts = await loop.finish();
    assert.ok(counts.ok > 0);
    assert.equal(
      counts.failed,
      0,
      `no connect may fail across the restart: ${JSON.stringify(counts.errors)}`,
    );
  });
});
