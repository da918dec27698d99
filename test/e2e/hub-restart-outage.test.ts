/**
 * Safe hub starts: a hub restarted while one of its clusters' API server is
 * unreachable never tells agents to remove that cluster's Services because
 * it has not seen it yet.
 *
 * Two clusters (two test API servers), a hub configured by a file, a plain
 * host that joins east and imports west, with real BPF in its sandbox:
 *
 * - west's last known state is in the hub's state file: the restarted hub
 *   serves it (stale), the resuming agent's maps stay byte for byte, and
 *   after the grace — counted from when west was last seen — its backends
 *   are withdrawn from east's agent (the frontend stays, connects refused);
 * - with no last known state at all, east's view is held back: the agent
 *   gets its Welcome and nothing else, and keeps what it holds; after the
 *   grace from the hub's start east's view is served without west;
 * - when west answers again it is listed and everything comes back.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { FakeKubeApiServer } from "../kit/kube-apiserver.ts";
import { REPO, waitUntil } from "../kit/proc.ts";
import { AGENT, HUB, Stack } from "../kit/stack.ts";

function service(name: string, ip: string) {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: "shop" },
    spec: { clusterIP: ip, ports: [{ name: "http", port: 80, protocol: "TCP" }] },
  };
}

function slice(name: string, service: string, ip: string, node: string) {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name, namespace: "shop", labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv4",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    endpoints: [{ addresses: [ip], nodeName: node, conditions: { ready: true } }],
  };
}

const EAST_FRONT = "10.96.54.10";
const WEST_PAY = "10.97.55.10";

describe("a hub (re)started while a cluster's API server is unreachable", () => {
  let host: Stack;
  let east: FakeKubeApiServer;
  let west: FakeKubeApiServer;
  let config: string;
  let metricsUrl = "";

  const writeConfig = (staleGrace: string) =>
    fs.writeFileSync(
      config,
      `staleGrace: ${staleGrace}
apiTimeout: 1s
metricsListen: 127.0.0.1:0
clusters:
  - name: east
    kubeconfig: ${path.join(host.stateDir, "east.kubeconfig")}
    imports: [west]
  - name: west
    kubeconfig: ${path.join(host.stateDir, "west.kubeconfig")}
`,
    );
  const startHub = async () => {
    // the same address: the agent knows only that one
    const extra = ["--config", config, ...(host.hubAddress ? ["--listen", host.hubAddress] : [])];
    const hub = await host.startHub([], extra);
    metricsUrl = (await hub.waitFor(/metrics (http:\/\/\S+)/))[1]!;
    return hub;
  };
  const metric = async (series: string): Promise<string | undefined> => {
    const text = await (await fetch(metricsUrl)).text();
    return text
      .split("\n")
      .find((l) => l.startsWith(`${series} `))
      ?.slice(series.length + 1);
  };
  const metricIs = (series: string, want: string) =>
    waitUntil(`${series} = ${want}`, async () => ((await metric(series)) === want ? true : undefined));
  /** the agent's frontends and backends (not its counters or sync header) */
  const maps = () =>
    execFileSync(process.execPath, [path.join(REPO, AGENT), "dump", "--pin-dir", host.pinDir], {
      encoding: "utf8",
    })
      .split("\n")
      .filter((l) => !l.startsWith("#") && !l.startsWith("counters:"))
      .join("\n");
  const probe = (ip: string) => host.probe(ip, 80);
  const reaches = (ip: string, want: string) =>
    waitUntil(`${ip} to reach ${want}`, async () => {
      const p = await probe(ip);
      return p.ok && p.reply.startsWith(`${want} `) ? p : undefined;
    });
  /** the agent on the running hub, once it joined, as `switchyard-hub agents` shows it */
  const agentStatus = () => {
    if (!/agent joined/.test(host.hub!.output())) return undefined;
    const agents = JSON.parse(
      execFileSync(
        process.execPath,
        [path.join(REPO, HUB), "agents", "--json", "--state-dir", host.stateDir],
        {
          encoding: "utf8",
        },
      ),
    ) as Array<{ node: string; pendingResources: number }>;
    return agents.find((a) => a.node === "host-1");
  };
  /** the agent resumed on the running hub and holds what the hub has for it (nothing pending) */
  const agentInSync = () =>
    waitUntil("the agent to resume on the restarted hub and hold all it has for it", () =>
      agentStatus()?.pendingResources === 0 ? true : undefined,
    );
  const restartHub = async (beforeStart: () => void) => {
    await host.hub!.stop();
    beforeStart();
    await startHub();
  };

  before(async () => {
    host = Stack.create("hubre");
    east = new FakeKubeApiServer();
    west = new FakeKubeApiServer();
    await east.start();
    await west.start();
    host.onCleanup(() => east.stop());
    host.onCleanup(() => west.stop());
    east.writeKubeconfig(host.stateDir, "east");
    west.writeKubeconfig(host.stateDir, "west");
    east.apply({ apiVersion: "v1", kind: "Node", metadata: { name: "east-1" } });
    east.apply(service("front", EAST_FRONT));
    east.apply(slice("front-1", "front", "10.54.0.5", "east-1"));
    west.apply({ apiVersion: "v1", kind: "Node", metadata: { name: "west-1" } });
    west.apply(service("pay", WEST_PAY));
    west.apply(slice("pay-1", "pay", "10.55.0.5", "west-1"));
    await host.startBackend("east-front", "10.54.0.5", 8080);
    await host.startBackend("west-pay", "10.55.0.5", 8080);

    config = path.join(host.stateDir, "hub.yaml");
    writeConfig("1h");
    await startHub();
    await host.startAgent(host.createToken("east"), ["--node-name", "host-1"]);
  });
  after(async () => {
    await host?.cleanup();
  });

  it("serves both clusters to east's host", async () => {
    await reaches(EAST_FRONT, "east-front");
    await reaches(WEST_PAY, "west-pay");
  });

  it("restarted from its last known state: the resuming agent keeps west's Services, byte for byte", async () => {
    const before = maps();
    assert.match(before, new RegExp(`${WEST_PAY.replaceAll(".", "\\.")}:80/tcp`));
    await restartHub(() => west.outage());
    const hub = host.hub!;
    await agentInSync();
    assert.equal(maps(), before, "no removal, no write: the maps are as they were");
    await reaches(WEST_PAY, "west-pay");
    await reaches(EAST_FRONT, "east-front");
    await metricIs('switchyard_hub_cluster_stale{cluster="west"}', "1");
    assert.equal(await metric('switchyard_hub_cluster_withdrawn{cluster="west"}'), "0", "within the grace");
    assert.equal(await metric('switchyard_hub_cluster_synced{cluster="west"}'), "0", "not listed: restored");
    // log lines are read from the hub's pipe: wait for them rather than read what has arrived so far
    await hub.waitFor(/cluster starts from its last known state until it is listed/);
    await hub.waitFor(/cluster unreachable: serving its last known state/);
  });

  it("withdraws west's backends from east's agent after the grace, counted from when west was last seen", async () => {
    writeConfig("1s"); // west was last seen before this hub started: past the grace at once
    await metricIs('switchyard_hub_cluster_withdrawn{cluster="west"}', "1");
    const refused = await waitUntil("east's host to lose west's backends", async () => {
      const p = await probe(WEST_PAY);
      return !p.ok ? p : undefined;
    });
    assert.equal(refused.code, "ECONNREFUSED", "the frontend stays with no backends: refused at once");
    await reaches(EAST_FRONT, "east-front");
  });

  it("lists west when it answers again, and its backends come back", async () => {
    west.recover();
    await reaches(WEST_PAY, "west-pay");
    await metricIs('switchyard_hub_cluster_synced{cluster="west"}', "1");
    await metricIs('switchyard_hub_cluster_stale{cluster="west"}', "0");
  });

  it("with no last known state, holds east's view back: the agent gets nothing and keeps what it holds", async () => {
    writeConfig("1h");
    const before = maps();
    await restartHub(() => {
      west.outage();
      // a hub that never saw west: its shared state has no record of it
      const file = path.join(host.stateDir, "state.json");
      const state = JSON.parse(fs.readFileSync(file, "utf8")) as { entries: Record<string, unknown> };
      const kept = Object.entries(state.entries).filter(([k]) => !k.startsWith("lastknown"));
      fs.writeFileSync(file, JSON.stringify({ entries: Object.fromEntries(kept) }));
    });
    const hub = host.hub!;
    const settled = await waitUntil("the agent to rejoin, its view held back or in sync", async () => {
      if (!agentStatus()) return undefined;
      if ((await metric('switchyard_hub_view_held{view="east+west/pod"}')) === "1") return "held";
      return agentStatus()?.pendingResources === 0 ? "in sync" : undefined;
    });
    assert.equal(maps(), before, "the agent was sent no delta");
    assert.equal(settled, "held");
    await hub.waitFor(/view held back: clusters not seen yet/);
    await hub.waitFor(/"waitingFor":\["west"\]/);
    const clusters = execFileSync(
      process.execPath,
      [path.join(REPO, HUB), "clusters", "--state-dir", host.stateDir],
      { encoding: "utf8" },
    );
    assert.match(clusters, /west .*views held back until it is seen: east\+west/);
    await reaches(WEST_PAY, "west-pay");
    await reaches(EAST_FRONT, "east-front");
  });

  it("after the grace from the hub's start, serves east's view without the unseen cluster", async () => {
    writeConfig("1s");
    await metricIs('switchyard_hub_cluster_withdrawn{cluster="west"}', "1");
    const gone = await waitUntil("west's Service to leave east's host", async () => {
      const p = await probe(WEST_PAY);
      return !p.ok && p.code !== "ECONNREFUSED" ? p : undefined;
    });
    assert.equal(gone.code, "ENETUNREACH", "the hub knows nothing of west: no frontend");
    await reaches(EAST_FRONT, "east-front");
    west.recover();
    await reaches(WEST_PAY, "west-pay");
  });
});
