/**
 * KubeSource with the real client-node against the test API server, in
 * process: Pods and LocalRedirectPolicies listed and watched, a policy CRD
 * that is not installed or Pods the RBAC does not grant are not an outage
 * (and are picked up once they are), and a policy's status written with a
 * merge patch of the status subresource.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { FakeKubeApiServer } from "../../../../test/kit/kube-apiserver.ts";
import { waitUntil } from "../../../../test/kit/proc.ts";
import { World } from "../model/world.ts";
import type { ClusterHealthTracker } from "./health.ts";
import { KubeSource } from "./kube.ts";
import { WorldWriter } from "./source.ts";

function pod(name: string, ready: boolean, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: "kube-system", uid: `uid-${name}`, labels: { app: "nl-dns" } },
    spec: {
      nodeName: "n1",
      containers: [{ name: "dns", image: "x", ports: [{ name: "dns", containerPort: 53, protocol: "UDP" }] }],
    },
    status: {
      podIPs: [{ ip: "10.0.0.5" }],
      conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
      ...extra,
    },
  };
}

function policy(name: string) {
  return {
    apiVersion: "switchyard.io/v1alpha1",
    kind: "LocalRedirectPolicy",
    metadata: { name, namespace: "kube-system" },
    spec: {
      frontend: { service: { name: "kube-dns", ports: ["dns"] } },
      backend: {
        selector: { matchLabels: { app: "nl-dns" } },
        toPorts: [{ name: "dns", port: 53, protocol: "UDP" }],
      },
    },
  };
}

describe("KubeSource: Pods, LocalRedirectPolicies and policy status against the test API server", () => {
  let api: FakeKubeApiServer;
  let dir: string;
  const sources: KubeSource[] = [];
  before(async () => {
    api = new FakeKubeApiServer();
    api.mcsInstalled = false;
    await api.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-kube-source-"));
  });
  after(async () => {
    await Promise.all(sources.map((s) => s.stop()));
    await api.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function start(name: string) {
    const world = new World();
    const health: string[] = [];
    const tracker = {
      report: (_c: string, up: boolean, reason?: string) => health.push(up ? "up" : `down: ${reason}`),
      synced: () => {},
    } as unknown as ClusterHealthTracker;
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (l: string) => void lines.push(l) });
    const writer = new WorldWriter(world, name, log, tracker);
    const source = new KubeSource(writer, log, {
      kubeconfig: api.writeKubeconfig(dir, name),
      maxBackoffMs: 200,
    });
    sources.push(source);
    return { world, health, lines, source, cluster: () => world.cluster(name) };
  }

  it("lists and watches Pods and policies; a Pod update that changes nothing kept does not touch the world", async () => {
    api.apply(pod("dns-a", true));
    api.apply(policy("nl-dns"));
    const s = start("a");
    assert.equal(await s.source.start(), true);
    assert.equal(s.cluster().sync, "synced");
    assert.equal(s.cluster().pods.get("kube-system/dns-a")?.ready, true);
    assert.equal(s.cluster().localRedirects.get("kube-system/nl-dns")?.generation, 1);
    api.apply(pod("dns-a", false));
    await waitUntil("the Pod is not ready", () =>
      s.cluster().pods.get("kube-system/dns-a")?.ready === false ? true : undefined,
    );
    const gen = s.cluster().generation;
    // a restart count or a new condition: nothing the hub keeps
    api.apply(pod("dns-a", false, { containerStatuses: [{ name: "dns", restartCount: 4 }] }));
    api.apply(pod("dns-b", true));
    await waitUntil("the second Pod", () => s.cluster().pods.get("kube-system/dns-b"));
    assert.equal(s.cluster().generation, gen + 1, "only the new Pod changed the world");
    api.delete("Pod", "kube-system", "dns-b");
    await waitUntil("the Pod is gone", () => (s.cluster().pods.has("kube-system/dns-b") ? undefined : true));
    assert.deepEqual(s.health, []);
  });

  it("lists Pods in pages: every one arrives, several pages asked for", async () => {
    for (let i = 0; i < 1234; i++)
      api.apply({ ...pod(`many-${i}`, true), metadata: { ...pod("x", true).metadata, name: `many-${i}` } });
    const pages = api.pagesServed;
    const s = start("p");
    assert.equal(await s.source.start(), true);
    assert.equal([...s.cluster().pods.keys()].filter((k) => k.includes("/many-")).length, 1234);
    assert.ok(api.pagesServed - pages >= 3, `${api.pagesServed - pages} pages`);
    assert.ok(api.requests.some((r) => r.includes("/api/v1/pods?") && r.includes("continue=")));
    for (let i = 0; i < 1234; i++) api.delete("Pod", "kube-system", `many-${i}`);
  });

  it("writes a policy's status with a merge patch of the status subresource (404 for a missing one)", async () => {
    const s = start("b");
    await s.source.start();
    const client = s.source.policyStatusClient();
    const status = {
      observedGeneration: 1,
      frontend: "10.96.0.10:53/UDP",
      conditions: [
        {
          type: "Accepted" as const,
          status: "True" as const,
          reason: "Accepted" as const,
          message: "redirects 10.96.0.10:53/UDP",
          observedGeneration: 1,
          lastTransitionTime: "2026-01-01T00:00:00.000Z",
        },
      ],
    };
    await client.patchStatus("kube-system", "nl-dns", status);
    const p = api.statusPatches.at(-1)!;
    assert.equal(p.contentType.split(";")[0], "application/merge-patch+json");
    assert.deepEqual(p.body, { status });
    const stored = api.get("LocalRedirectPolicy", "kube-system", "nl-dns")!;
    assert.deepEqual(stored["status"], status);
    assert.equal(stored.metadata["generation"], 1, "a status write is not a new generation");
    await assert.rejects(
      client.patchStatus("kube-system", "nowhere", status),
      (e: { code?: number; statusCode?: number }) => {
        assert.equal(e.code ?? e.statusCode, 404);
        return true;
      },
    );
  });

  it("a policy CRD not installed and Pods not granted are not an outage; both are seen once they are", async () => {
    api.policiesInstalled = false;
    api.forbidden.add("Pod");
    const s = start("c");
    assert.equal(await s.source.start(), true, "listed: what cannot be seen counts as none");
    assert.equal(s.cluster().sync, "synced");
    assert.deepEqual(s.health, [], "never unreachable");
    assert.equal(s.cluster().pods.size + s.cluster().localRedirects.size, 0);
    assert.match(s.lines.join(""), /"kind":"Pod"[^\n]*not permitted to list and watch this kind \(403\)/);
    assert.match(s.lines.join(""), /"kind":"LocalRedirectPolicy"[^\n]*CRD not installed/);
    api.policiesInstalled = true;
    api.forbidden.delete("Pod");
    await waitUntil("Pods and the policy seen", () =>
      s.cluster().pods.size > 0 && s.cluster().localRedirects.size > 0 ? true : undefined,
    );
    assert.deepEqual(s.health, []);
  });

  it("lists and watches BalancingPolicies (an edit in place is one new generation) and writes their status under balancingpolicies", async () => {
    const bp = (addresses: string[]) => ({
      apiVersion: "switchyard.io/v1alpha1",
      kind: "BalancingPolicy",
      metadata: { name: "ext", namespace: "shop" },
      spec: {
        frontend: { address: { ip: "10.96.60.1", ports: [{ name: "https", port: 443 }] } },
        backend: { addressEndpoint: { addresses, toPorts: [{ name: "https", port: 8443 }] } },
      },
    });
    api.apply(bp(["192.0.2.10"]));
    const s = start("bp");
    assert.equal(await s.source.start(), true);
    const held = () => s.cluster().balancing.get("shop/ext");
    assert.equal(held()?.generation, 1);
    api.apply(bp(["192.0.2.11"]));
    await waitUntil("the edit", () => (held()?.generation === 2 ? true : undefined));
    assert.deepEqual(held()?.backend.kind === "addressEndpoint" && held()?.backend, {
      kind: "addressEndpoint",
      addresses: ["192.0.2.11"],
      toPorts: [{ name: "https", port: 8443, targetName: undefined, protocol: "TCP" }],
    });
    const status = {
      observedGeneration: 2,
      frontend: "10.96.60.1:443/TCP",
      conditions: [
        {
          type: "Accepted" as const,
          status: "True" as const,
          reason: "Accepted" as const,
          message: "balances 10.96.60.1:443/TCP (addressEndpoint)",
          observedGeneration: 2,
          lastTransitionTime: "2026-01-01T00:00:00.000Z",
        },
      ],
    };
    await s.source.policyStatusClient().patchStatus("shop", "ext", status, "BalancingPolicy");
    assert.ok(api.requests.some((r) => r.includes("/namespaces/shop/balancingpolicies/ext/status")));
    assert.deepEqual(api.get("BalancingPolicy", "shop", "ext")!["status"], status);
    api.delete("BalancingPolicy", "shop", "ext");
    await waitUntil("the policy is gone", () => (held() ? undefined : true));
  });
});

describe("KubeSource: an API server that cannot be reached", () => {
  it("backs off exponentially and says the cause (address and error) once, not once per kind and retry", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-kube-down-"));
    // a port nothing listens on
    const net = await import("node:net");
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as import("node:net").AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const kubeconfig = path.join(dir, "down.kubeconfig");
    fs.writeFileSync(
      kubeconfig,
      `apiVersion: v1
kind: Config
clusters: [{ name: down, cluster: { server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: t } }]
contexts: [{ name: down, context: { cluster: down, user: u } }]
current-context: down
`,
    );
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: "debug" }, { write: (l: string) => void lines.push(JSON.parse(l)) });
    const health: string[] = [];
    const tracker = {
      report: (_c: string, up: boolean, reason?: string) => health.push(up ? "up" : `down: ${reason}`),
      synced: () => {},
    } as unknown as ClusterHealthTracker;
    const source = new KubeSource(new WorldWriter(new World(), "down", log, tracker), log, {
      kubeconfig,
      apiTimeoutMs: 60_000,
    });
    try {
      assert.equal(await source.start(), false);
      const serviceRetries = () =>
        lines
          .filter((l) => l["kind"] === "Service" && typeof l["retryMs"] === "number")
          .map((l) => l["retryMs"]);
      await waitUntil(
        "three retries of the Service watch",
        () => (serviceRetries().length >= 3 ? true : undefined),
        20_000,
      );
      const retries = serviceRetries() as number[];
      for (let i = 1; i < retries.length; i++)
        assert.ok(retries[i]! > retries[i - 1]!, `each retry waits longer: ${retries.join(", ")}`);
      const said = lines.filter((l) =>
        l["msg"]?.toString().startsWith("cannot watch the cluster's API server"),
      );
      assert.equal(said.length, 1, `said once: ${JSON.stringify(said)}`);
      assert.equal(
        said[0]!["reason"],
        `API server https://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`,
      );
      assert.equal(
        lines.filter((l) => l["level"] === 40 && l["kind"] !== undefined).length,
        1,
        "no warn line per kind",
      );
      assert.match(
        health[0] ?? "",
        new RegExp(`down: \\w+ watch: API server https://127.0.0.1:${port}: connect ECONNREFUSED`),
      );
    } finally {
      await source.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
