/**
 * End to end, LocalRedirectPolicies through the hub's real client-node
 * against the test API server (list/watch of the CRD, status merge patches),
 * and a directory cluster: a bad spec is refused by name (the hub's log,
 * `switchyard-hub policies`, status InvalidSpec) and nothing else is
 * disturbed (the agent's Service still resolves); a valid policy is
 * Accepted, a second one on the same Service gets Conflict naming the
 * winner, a policy on a missing Service ServiceNotFound; fixing the bad one
 * is an update in place (a new generation, Accepted); status.nodes counts
 * the node whose agent holds it.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeKubeApiServer } from "../kit/kube-apiserver.ts";
import { REPO, waitUntil } from "../kit/proc.ts";
import { HUB, Stack } from "../kit/stack.ts";

const VIP = "10.96.9.20";
const DNS = "10.96.0.10";

type Condition = {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration: number;
};
type Status = { observedGeneration?: number; frontend?: string; nodes?: number; conditions?: Condition[] };
type PolicyInfo = {
  cluster: string;
  namespace: string;
  name: string;
  generation: number;
  frontend: string;
  state: string;
  reason: string;
  message: string;
  winner: string;
};

function policy(name: string, frontend: Record<string, unknown>, created: string) {
  return {
    apiVersion: "switchyard.io/v1alpha1",
    kind: "LocalRedirectPolicy",
    metadata: { name, namespace: "kube-system", creationTimestamp: created },
    spec: {
      frontend,
      backend: {
        selector: { matchLabels: { "k8s-app": "node-local-dns" } },
        toPorts: [{ name: "dns", port: 53, protocol: "UDP" }],
      },
    },
  };
}

const dnsService = { service: { name: "kube-dns", ports: ["dns"] } };
const BOTH = {
  ...dnsService,
  address: { ip: "169.254.20.10", ports: [{ name: "dns", port: 53, protocol: "UDP" }] },
};

describe("LocalRedirectPolicies: sources, verdicts, status and the policies command", () => {
  let stack: Stack;
  let api: FakeKubeApiServer;
  let dir: string;
  let metricsUrl: string;

  const cli = (...args: string[]) =>
    execFileSync(
      process.execPath,
      [path.join(REPO, HUB), "policies", "--state-dir", stack.stateDir, ...args],
      {
        encoding: "utf8",
      },
    );
  const listed = () => JSON.parse(cli("--json")) as PolicyInfo[];
  const statusOf = (name: string) =>
    (api.get("LocalRedirectPolicy", "kube-system", name)?.["status"] ?? {}) as Status;
  const accepted = (name: string, reason: string, generation = 1) =>
    waitUntil(`${name}'s status says ${reason} for generation ${generation}`, () => {
      const s = statusOf(name);
      const c = s.conditions?.find((x) => x.type === "Accepted");
      return c?.reason === reason && s.observedGeneration === generation ? c : undefined;
    });

  before(async () => {
    stack = Stack.create("e2elrp");
    api = new FakeKubeApiServer();
    api.mcsInstalled = false;
    await api.start();
    stack.onCleanup(() => api.stop());
    api.apply({
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: "node-1" },
      status: { addresses: [{ type: "InternalIP", address: "198.18.3.1" }] },
    });
    api.apply({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "api", namespace: "prod" },
      spec: { clusterIP: VIP, ports: [{ name: "grpc", port: 9000, protocol: "TCP" }] },
    });
    api.apply({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: "api-1", namespace: "prod", labels: { "kubernetes.io/service-name": "api" } },
      addressType: "IPv4",
      ports: [{ name: "grpc", port: 7000, protocol: "TCP" }],
      endpoints: [{ addresses: ["198.18.3.11"], nodeName: "node-1", conditions: { ready: true } }],
    });
    api.apply({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "kube-dns", namespace: "kube-system" },
      spec: { clusterIP: DNS, ports: [{ name: "dns", port: 53, protocol: "UDP" }] },
    });
    await stack.startBackend("pod-a", "198.18.3.11", 7000);
    // a directory cluster holding a bad policy: listed, never written
    dir = fs.mkdtempSync(path.join(stack.stateDir, "dir-"));
    fs.writeFileSync(
      path.join(dir, "policies.yaml"),
      `apiVersion: switchyard.io/v1alpha1
kind: LocalRedirectPolicy
metadata: { name: no-selector, namespace: kube-system }
spec:
  frontend: { address: { ip: 169.254.20.10, ports: [{ name: dns, port: 53, protocol: UDP }] } }
  backend: { selector: {}, toPorts: [{ name: dns, port: 53, protocol: UDP }] }
`,
    );
    const kubeconfig = api.writeKubeconfig(stack.stateDir, "west");
    const token = stack.createToken("west");
    const hub = await stack.startHub(
      [`west=kubeconfig:${kubeconfig}`, `edge=dir:${dir}`],
      ["--metrics-listen", "127.0.0.1:0"],
    );
    metricsUrl = (await hub.waitFor(/metrics (http:\/\/\S+)/))[1]!;
    await stack.startAgent(token);
    await waitUntil("the Service resolves", async () => {
      const p = await stack.probe(VIP, 9000);
      return p.ok ? p : undefined;
    });
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("refuses a bad spec by name (log, policies, status InvalidSpec) and disturbs nothing else", async () => {
    api.apply(policy("broken", BOTH, "2026-01-01T00:00:03Z"));
    const c = await accepted("broken", "InvalidSpec");
    assert.equal(c.status, "False");
    assert.match(
      c.message,
      /LocalRedirectPolicy kube-system\/broken in cluster west: frontend has both service and address; give exactly one/,
    );
    await stack.hub!.waitFor(
      /"reason":"LocalRedirectPolicy kube-system\/broken[^\n]*"msg":"object rejected"/,
    );
    await accepted("broken", "InvalidSpec");
    assert.equal(
      stack
        .hub!.output()
        .match(/kube-system\/broken in cluster west: frontend has both[^\n]*"msg":"object rejected"/g)
        ?.length,
      1,
      "its own status write coming back is not refused again in the log",
    );
    const rows = listed();
    const broken = rows.find((r) => r.cluster === "west" && r.name === "broken");
    assert.deepEqual([broken?.state, broken?.reason], ["NotAccepted", "InvalidSpec"]);
    const edge = rows.find((r) => r.cluster === "edge" && r.name === "no-selector");
    assert.deepEqual([edge?.state, edge?.reason], ["NotAccepted", "InvalidSpec"]);
    assert.match(edge!.message, /backend.selector is empty and would select every pod/);
    assert.equal(
      api.statusPatches.filter((p) => p.name === "no-selector").length,
      0,
      "directories: never written",
    );
    assert.ok(api.statusPatches.every((p) => p.contentType.startsWith("application/merge-patch+json")));
    const metrics = await (await fetch(metricsUrl)).text();
    assert.match(
      metrics,
      /switchyard_hub_policies\{cluster="west",kind="LocalRedirectPolicy",state="NotAccepted",reason="InvalidSpec"\} 1/,
    );
    assert.match(metrics, /switchyard_hub_cluster_objects\{cluster="west",kind="Pod"\} 0/);
    const p = await stack.probe(VIP, 9000);
    assert.ok(p.ok && p.reply.startsWith("pod-a "), "the Service still resolves");
  });

  it("accepts a valid policy; a second one on the same Service gets Conflict naming the winner; a missing Service is said", async () => {
    api.apply(policy("node-local-dns", dnsService, "2026-01-01T00:00:01Z"));
    api.apply(policy("late-dns", dnsService, "2026-01-01T00:00:02Z"));
    api.apply(policy("no-svc", { service: { name: "nowhere", ports: ["dns"] } }, "2026-01-01T00:00:04Z"));
    const ok = await accepted("node-local-dns", "Accepted");
    assert.equal(ok.status, "True");
    assert.match(statusOf("node-local-dns").frontend ?? "", /10\.96\.0\.10:53\/UDP/);
    // the agent of node-1 holds the view with it (it ACKed): counted
    await waitUntil("status.nodes counts node-1", () =>
      statusOf("node-local-dns").nodes === 1 ? true : undefined,
    );
    const lost = await accepted("late-dns", "Conflict");
    assert.match(lost.message, /kube-system\/node-local-dns holds/);
    await accepted("no-svc", "ServiceNotFound");
    const rows = listed().filter((r) => r.cluster === "west");
    const late = rows.find((r) => r.name === "late-dns");
    assert.equal(late?.winner, "kube-system/node-local-dns");
    const table = cli();
    assert.match(
      table,
      /west\s+LocalRedirectPolicy\s+kube-system\/late-dns\s+1\s+\S+\s+NotAccepted\s+Conflict\s+kube-system\/node-local-dns/,
    );
    const clusters = JSON.parse(
      execFileSync(
        process.execPath,
        [path.join(REPO, HUB), "clusters", "--json", "--state-dir", stack.stateDir],
        {
          encoding: "utf8",
        },
      ),
    ) as Array<{ name: string; localRedirectPolicies: number; pods: number }>;
    assert.equal(clusters.find((c) => c.name === "west")?.localRedirectPolicies, 3, "the three valid ones");
    // the winner goes: the next one takes over
    api.delete("LocalRedirectPolicy", "kube-system", "node-local-dns");
    await accepted("late-dns", "Accepted");
  });

  it("fixing the bad policy is an update in place: a new generation, judged again", async () => {
    api.apply(
      policy(
        "broken",
        { address: { ip: "169.254.20.10", ports: [{ name: "dns", port: 53, protocol: "UDP" }] } },
        "2026-01-01T00:00:03Z",
      ),
    );
    const c = await accepted("broken", "Accepted", 2);
    assert.equal(c.status, "True");
    // a status write comes back as a MODIFIED event: nothing is written again for it (one more policy
    // judged and written later, "broken" still has its two writes: InvalidSpec, then Accepted)
    api.apply(policy("later", { service: { name: "nowhere-2" } }, "2026-01-01T00:00:05Z"));
    await accepted("later", "ServiceNotFound");
    assert.equal(api.statusPatches.filter((p) => p.name === "broken").length, 2, "no write loop");
  });
});
