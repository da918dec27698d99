/**
 * BalancingPolicy end to end through the real binaries: the test API server
 * (Services, slices, Nodes, Pods, both policy kinds; status patches) → the
 * hub (verdicts, the shared bp/ resource) → the agent on node-1 (one frontend
 * entry per address:port in place of the Service's) → the kernel, with the
 * clients in the sandbox's cgroup and namespace (every address below lives
 * in that namespace; a frontend that is not translated fails there).
 *
 * - podEndpoint: the Service's ClusterIPs (TCP and UDP, v4 and v6) reach the
 *   selected pods on any node, never the Service's own endpoints; an
 *   in-place selector change under a connect loop fails nothing; deleting
 *   the policy gives the Service back its endpoints.
 * - hostPort: a virtual address reaches the pods' nodes' addresses at the
 *   policy's port.
 * - addressEndpoint: a v4 and a v6 virtual address reach the listed address
 *   of their family (TCP and UDP); an in-place change of the addresses under a connect loop
 *   fails nothing.
 * - A LocalRedirectPolicy and a BalancingPolicy on one Service: the younger
 *   (either kind) is refused with status Conflict naming the winner and its
 *   kind, connects keep going where the winner says (also after the loser
 *   is edited), and the loser takes over when the winner is deleted.
 * - `switchyard-hub clusters` counts both kinds.
 *
 * Without BalancingPolicy support each of these fails: the Service frontends
 * reach svc-ep (the Service's endpoint), the virtual addresses are not
 * translated at all (no route in the namespace), and no BalancingPolicy gets
 * a status.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeKubeApiServer } from "../kit/kube-apiserver.ts";
import { REPO, waitUntil } from "../kit/proc.ts";
import { HUB, Stack } from "../kit/stack.ts";

const NS = "shop";
const WEB = { v4: "10.96.80.10", v6: "fd00:96:80::10" };
const CACHE = "10.96.80.30";
const API = "10.96.80.31";
const HOST_VIP = "10.96.80.50";
const PARTNER = { v4: "10.96.80.60", v6: "fd00:96:80::60" };
const NODE = { "node-1": "198.18.80.1", "node-2": "198.18.80.2" };
const SVC_EP = { v4: "198.18.80.20", v6: "fd00:80::20" };
const POD = {
  "web-1": { node: "node-1", app: "web", v4: "10.244.80.11", v6: "fd00:244:80::11" },
  "web-2": { node: "node-2", app: "web", v4: "10.244.80.12", v6: "fd00:244:80::12" },
  "web-3": { node: "node-2", app: "web-next", v4: "10.244.80.13", v6: "fd00:244:80::13" },
} as const;
const ADDR = { v4: "198.18.80.40", v6: "fd00:80::40" };
const ADDR_NEXT = { v4: "198.18.80.41", v6: "fd00:80::41" };
const HOST_PORT = 8090;

type Obj = { apiVersion: string; kind: string; metadata: Record<string, unknown> & { name: string } };
type Condition = { type: string; status: string; reason: string; message: string };
type Status = { observedGeneration?: number; conditions?: Condition[] };

function service(
  name: string,
  ips: string[],
  ports: Array<{ name: string; port: number; protocol: string }>,
) {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: NS },
    spec: { clusterIP: ips[0], clusterIPs: ips, ports },
  };
}

function slice(name: string, service: string, family: "IPv4" | "IPv6", address: string, udp = false) {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, namespace: NS, labels: { "kubernetes.io/service-name": service } },
    addressType: family,
    ports: [
      { name: "http", port: 8080, protocol: "TCP" },
      ...(udp ? [{ name: "dns", port: 8080, protocol: "UDP" }] : []),
    ],
    endpoints: [{ addresses: [address], nodeName: "node-2", conditions: { ready: true } }],
  };
}

function pod(name: keyof typeof POD) {
  const p = POD[name];
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: NS,
      uid: `5e1b9c2e-0000-4000-8000-0000000080${name.slice(-1)}0`,
      labels: { app: p.app },
    },
    spec: {
      nodeName: p.node,
      containers: [
        { name: "web", ports: [{ name: "http", containerPort: 8080, hostPort: HOST_PORT, protocol: "TCP" }] },
      ],
    },
    status: { podIPs: [{ ip: p.v4 }, { ip: p.v6 }], conditions: [{ type: "Ready", status: "True" }] },
  };
}

function balancing(name: string, created: string, frontend: unknown, backend: unknown) {
  return {
    apiVersion: "switchyard.io/v1alpha1",
    kind: "BalancingPolicy",
    metadata: { name, namespace: NS, creationTimestamp: created },
    spec: { frontend, backend },
  };
}

const HTTP = [{ name: "http", port: 8080, protocol: "TCP" }];
const selectorOf = (app: string) => ({ matchLabels: { app } });
const pods = (app: string, redirectMode = "podEndpoint", toPorts: unknown = HTTP) => ({
  serviceEndpoint: { selector: selectorOf(app), redirectMode, toPorts },
});

const webPods = (app: string) =>
  balancing(
    "web-pods",
    "2026-01-01T00:00:10Z",
    { service: { name: "web", ports: ["http", "dns"] } },
    pods(app, "podEndpoint", [...HTTP, { name: "dns", port: 8080, protocol: "UDP" }]),
  );
const partner = (name: string, ip: string, addresses: string[]) =>
  balancing(
    name,
    "2026-01-01T00:00:12Z",
    {
      address: {
        ip,
        ports: [
          { name: "https", port: 443, protocol: "TCP" },
          { name: "quic", port: 443, protocol: "UDP" },
        ],
      },
    },
    {
      addressEndpoint: {
        addresses,
        toPorts: [
          { name: "https", port: 8443, protocol: "TCP" },
          { name: "quic", port: 8443, protocol: "UDP" },
        ],
      },
    },
  );

function localRedirect(name: string, svc: string, created: string, app: string) {
  return {
    apiVersion: "switchyard.io/v1alpha1",
    kind: "LocalRedirectPolicy",
    metadata: { name, namespace: NS, creationTimestamp: created },
    spec: {
      frontend: { service: { name: svc, ports: ["http"] } },
      backend: { selector: selectorOf(app), toPorts: HTTP },
    },
  };
}

describe("BalancingPolicy through the hub and the agent, in the kernel", () => {
  let stack: Stack;
  let api: FakeKubeApiServer;

  /** the first word of each reply of `n` TCP connects, counted */
  async function replies(ip: string, port: number, n = 16): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const p = await stack.probe(ip, port);
      const who = p.ok ? (p.reply.split(" ")[0] ?? "") : `failed:${p.code}`;
      out[who] = (out[who] ?? 0) + 1;
    }
    return out;
  }
  const reaches = (ip: string, port: number, who: RegExp) =>
    waitUntil(`connects to ${ip}:${port} to reach ${who}`, async () => {
      const p = await stack.probe(ip, port);
      return p.ok && who.test(p.reply.split(" ")[0] ?? "") ? p : undefined;
    });
  const udp = async (ip: string, port: number) =>
    (await stack.sandbox.runKitClient("udp-probe.ts", [ip, String(port), "unconnected"])) as
      | { ok: true; reply: string; from: string }
      | { ok: false; code: string };
  const statusOf = (kind: "BalancingPolicy" | "LocalRedirectPolicy", name: string) =>
    (api.get(kind, NS, name)?.["status"] ?? {}) as Status;
  const condition = (kind: "BalancingPolicy" | "LocalRedirectPolicy", name: string, reason: string) =>
    waitUntil(`${kind} ${name}'s status says ${reason}`, () => {
      const c = statusOf(kind, name).conditions?.find((x) => x.type === "Accepted");
      return c?.reason === reason ? c : undefined;
    });
  const listed = () =>
    JSON.parse(
      execFileSync(
        process.execPath,
        [path.join(REPO, HUB), "policies", "--json", "--state-dir", stack.stateDir],
        { encoding: "utf8" },
      ),
    ) as Array<{ kind: string; name: string; state: string; reason: string; winner: string }>;

  before(async () => {
    stack = Stack.create("e2ebp");
    api = new FakeKubeApiServer();
    api.mcsInstalled = false;
    await api.start();
    stack.onCleanup(() => api.stop());
    const objects: Obj[] = [
      ...Object.entries(NODE).map(([name, ip]) => ({
        apiVersion: "v1",
        kind: "Node",
        metadata: { name },
        status: { addresses: [{ type: "InternalIP", address: ip }] },
      })),
      service(
        "web",
        [WEB.v4, WEB.v6],
        [
          { name: "http", port: 80, protocol: "TCP" },
          { name: "dns", port: 53, protocol: "UDP" },
        ],
      ),
      slice("web-v4", "web", "IPv4", SVC_EP.v4, true),
      slice("web-v6", "web", "IPv6", SVC_EP.v6, true),
      service("cache", [CACHE], [{ name: "http", port: 80, protocol: "TCP" }]),
      slice("cache-1", "cache", "IPv4", SVC_EP.v4),
      service("api", [API], [{ name: "http", port: 80, protocol: "TCP" }]),
      slice("api-1", "api", "IPv4", SVC_EP.v4),
      pod("web-1"),
      pod("web-2"),
      pod("web-3"),
    ];
    for (const o of objects) api.apply(o);
    await stack.sandbox.startEchoServers([
      ...["v4", "v6"].map((f) => ({ name: "svc-ep", ip: SVC_EP[f as "v4"], port: 8080 })),
      ...Object.entries(POD).flatMap(([name, p]) => [
        { name: `pod-${name.slice(-1)}`, ip: p.v4, port: 8080 },
        { name: `pod-${name.slice(-1)}`, ip: p.v6, port: 8080 },
      ]),
      ...Object.entries(NODE).map(([name, ip]) => ({ name: `host-${name.slice(-1)}`, ip, port: HOST_PORT })),
      { name: "addr-v4", ip: ADDR.v4, port: 8443 },
      { name: "addr-v6", ip: ADDR.v6, port: 8443 },
      { name: "addr-next-v4", ip: ADDR_NEXT.v4, port: 8443 },
      { name: "addr-next-v6", ip: ADDR_NEXT.v6, port: 8443 },
    ]);
    const kubeconfig = api.writeKubeconfig(stack.stateDir, "west");
    await stack.startHub([`west=kubeconfig:${kubeconfig}`]);
    await stack.startAgent(stack.createToken("west"));
    await reaches(WEB.v4, 80, /^svc-ep$/);
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("podEndpoint: the Service's ClusterIPs (TCP and UDP, v4 and v6) reach the selected pods on any node, never the Service's endpoints", async () => {
    api.apply(webPods("web"));
    await condition("BalancingPolicy", "web-pods", "Accepted");
    await reaches(WEB.v4, 80, /^pod-/);
    for (const ip of [WEB.v4, WEB.v6]) {
      await reaches(ip, 80, /^pod-/);
      const r = await replies(ip, 80);
      assert.deepEqual(Object.keys(r).sort(), ["pod-1", "pod-2"], `${ip}: ${JSON.stringify(r)}`);
      const p = await stack.probe(ip, 80);
      assert.ok(p.ok, JSON.stringify(p));
      assert.equal(p.peer, `${ip}:80`, "the client sees the Service address");
      const u = await udp(ip, 53);
      assert.ok(u.ok, `${ip} UDP: ${JSON.stringify(u)}`);
      assert.match(u.reply, /^pod-[12] /, "UDP goes to a selected pod too");
    }
  });

  it("podEndpoint, an in-place selector change under a connect loop: 0 failed connects, the new pod takes over; deleted, the Service's endpoints again", async () => {
    const loop = await stack.connectLoop(WEB.v4, 80);
    api.apply(webPods("web-next"));
    await reaches(WEB.v4, 80, /^pod-3$/);
    const counts = await loop.finish();
    assert.equal(counts.failed, 0, `failed connects: ${JSON.stringify(counts.errors)}`);
    assert.equal(counts.replies["svc-ep"] ?? 0, 0, "the Service's endpoint never took a connect");
    assert.ok((counts.replies["pod-3"] ?? 0) > 0, JSON.stringify(counts.replies));
    assert.deepEqual(Object.keys(await replies(WEB.v4, 80, 8)), ["pod-3"]);
    // an update of the one policy (generation 2), not a new one
    await waitUntil("web-pods' status for generation 2", () =>
      statusOf("BalancingPolicy", "web-pods").observedGeneration === 2 ? true : undefined,
    );
    // deleted: the Service's own endpoints again
    api.delete("BalancingPolicy", NS, "web-pods");
    await reaches(WEB.v4, 80, /^svc-ep$/);
    await reaches(WEB.v6, 80, /^svc-ep$/);
    const u = await udp(WEB.v4, 53);
    assert.ok(u.ok && u.reply.startsWith("svc-ep "), JSON.stringify(u));
  });

  it("hostPort: a virtual address reaches the selected pods' nodes' addresses at the policy's port", async () => {
    api.apply(
      balancing(
        "web-host",
        "2026-01-01T00:00:11Z",
        { address: { ip: HOST_VIP, ports: [{ name: "http", port: 80, protocol: "TCP" }] } },
        pods("web", "hostPort", [{ name: "http", port: HOST_PORT, protocol: "TCP" }]),
      ),
    );
    await reaches(HOST_VIP, 80, /^host-/);
    const r = await replies(HOST_VIP, 80);
    assert.deepEqual(Object.keys(r).sort(), ["host-1", "host-2"], JSON.stringify(r));
  });

  it("addressEndpoint: a v4 and a v6 virtual address reach the listed address of their family (TCP and UDP)", async () => {
    api.apply(partner("partner-v4", PARTNER.v4, [ADDR.v4, ADDR.v6]));
    api.apply(partner("partner-v6", PARTNER.v6, [ADDR.v4, ADDR.v6]));
    await reaches(PARTNER.v4, 443, /^addr-v4$/);
    await reaches(PARTNER.v6, 443, /^addr-v6$/);
    assert.deepEqual(await replies(PARTNER.v4, 443, 8), { "addr-v4": 8 });
    assert.deepEqual(await replies(PARTNER.v6, 443, 8), { "addr-v6": 8 });
    for (const [ip, who] of [
      [PARTNER.v4, "addr-v4"],
      [PARTNER.v6, "addr-v6"],
    ] as const) {
      const u = await udp(ip, 443);
      assert.ok(u.ok, `${ip} UDP: ${JSON.stringify(u)}`);
      assert.match(u.reply, new RegExp(`^${who} `));
      assert.equal(u.from, `${ip}:443`, "the reply comes from the frontend");
    }
  });

  it("addressEndpoint, an in-place change of the addresses under a connect loop: 0 failed connects", async () => {
    const loop = await stack.connectLoop(PARTNER.v4, 443);
    api.apply(partner("partner-v4", PARTNER.v4, [ADDR_NEXT.v4, ADDR_NEXT.v6]));
    await reaches(PARTNER.v4, 443, /^addr-next-v4$/);
    const counts = await loop.finish();
    assert.equal(counts.failed, 0, `failed connects: ${JSON.stringify(counts.errors)}`);
    assert.ok((counts.replies["addr-next-v4"] ?? 0) > 0, JSON.stringify(counts.replies));
    assert.deepEqual(await replies(PARTNER.v4, 443, 8), { "addr-next-v4": 8 });
  });

  it("a younger BalancingPolicy on a LocalRedirectPolicy's Service is refused naming it, and nothing of the winner is overwritten", async () => {
    api.apply(localRedirect("cache-local", "cache", "2026-01-01T00:00:01Z", "web"));
    await condition("LocalRedirectPolicy", "cache-local", "Accepted");
    // the local pod of node-1 (the agent's node) is web-1
    await reaches(CACHE, 80, /^pod-1$/);
    const loser = (app: string) =>
      balancing(
        "cache-balance",
        "2026-01-01T00:00:02Z",
        { service: { name: "cache", ports: ["http"] } },
        pods(app),
      );
    api.apply(loser("web-next"));
    const c = await condition("BalancingPolicy", "cache-balance", "Conflict");
    assert.equal(c.status, "False");
    assert.match(c.message, /LocalRedirectPolicy shop\/cache-local holds/);
    const row = listed().find((r) => r.kind === "BalancingPolicy" && r.name === "cache-balance");
    assert.deepEqual([row?.state, row?.reason], ["NotAccepted", "Conflict"]);
    assert.match(row?.winner ?? "", /shop\/cache-local/);
    assert.deepEqual(await replies(CACHE, 80, 8), { "pod-1": 8 }, "connects go where the winner says");
    // the loser edited: still refused, still nothing of the winner changes
    api.apply(loser("web"));
    await waitUntil("the edit judged", () =>
      statusOf("BalancingPolicy", "cache-balance").observedGeneration === 2 ? true : undefined,
    );
    assert.equal(statusOf("BalancingPolicy", "cache-balance").conditions?.[0]?.reason, "Conflict");
    assert.deepEqual(await replies(CACHE, 80, 8), { "pod-1": 8 });
    // the winner goes: the BalancingPolicy takes over
    api.delete("LocalRedirectPolicy", NS, "cache-local");
    await condition("BalancingPolicy", "cache-balance", "Accepted");
    await reaches(CACHE, 80, /^pod-2$/);
  });

  it("a younger LocalRedirectPolicy on a BalancingPolicy's Service is refused naming it, and connects stay with the BalancingPolicy", async () => {
    api.apply(
      balancing(
        "api-balance",
        "2026-01-01T00:00:03Z",
        { service: { name: "api", ports: ["http"] } },
        pods("web-next"),
      ),
    );
    await condition("BalancingPolicy", "api-balance", "Accepted");
    await reaches(API, 80, /^pod-3$/);
    api.apply(localRedirect("api-local", "api", "2026-01-01T00:00:04Z", "web"));
    const c = await condition("LocalRedirectPolicy", "api-local", "Conflict");
    assert.match(c.message, /BalancingPolicy shop\/api-balance holds/);
    assert.deepEqual(
      await replies(API, 80, 8),
      { "pod-3": 8 },
      "the local pod (pod-1) never takes the Service",
    );
  });

  it("`switchyard-hub clusters` counts the BalancingPolicies beside the LocalRedirectPolicies", () => {
    // web-host, partner-v4, partner-v6, cache-balance, api-balance; api-local (web-pods and cache-local went)
    const hub = (...args: string[]) =>
      execFileSync(
        process.execPath,
        [path.join(REPO, HUB), "clusters", "--state-dir", stack.stateDir, ...args],
        {
          encoding: "utf8",
        },
      );
    const west = (JSON.parse(hub("--json")) as Array<Record<string, unknown>>).find(
      (c) => c["name"] === "west",
    );
    assert.deepEqual([west?.["localRedirectPolicies"], west?.["balancingPolicies"]], [1, 5]);
    const lines = hub().split("\n");
    const cols = (l: string | undefined) => (l ?? "").trim().split(/\s+/);
    const header = cols(lines[0]);
    const row = cols(lines.find((l) => l.startsWith("west ")));
    assert.deepEqual([row[header.indexOf("LRP")], row[header.indexOf("BP")]], ["1", "5"]);
  });
});
