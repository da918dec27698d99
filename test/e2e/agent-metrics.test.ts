/**
 * The agent's and the hub's metrics ports (issue 17): the numbers in
 * /metrics after a test made N connects through a VIP, and /healthz and
 * /readyz in the states that matter — an agent with empty maps and no hub
 * (alive, not ready), one following a hub (ready), one restarted with the
 * hub gone (ready on its pinned maps, serving_pinned_without_hub 1); a hub
 * with its cluster listed (ready).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { serviceYaml } from "../kit/k8s-yaml.ts";
import { waitUntil } from "../kit/proc.ts";
import { httpGet, sample, scrape } from "../kit/prom.ts";
import { Stack } from "../kit/stack.ts";

const VIP = "10.96.9.10";
const SERVICE = serviceYaml("web", VIP, "198.18.3.11");
const N = 25;

/** a loopback port nothing listens on */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe("agent and hub metrics ports", () => {
  let stack: Stack;
  let token: string;
  let dir: string;
  before(async () => {
    stack = Stack.create("e2emet");
    dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "web.yaml"), SERVICE);
    await stack.startBackend("backend-a", "198.18.3.11", 8080);
    await stack.startNats();
    stack.onCleanup(async () => {
      await stack.agent?.stop();
    });
    // the hub comes later: the first agent runs with none
  });
  after(async () => {
    await stack?.cleanup();
  });

  const startAgent = async (hubs?: string[], joinToken = token) => {
    const agent = await stack.startAgent(joinToken, ["--metrics-listen", "127.0.0.1:0"], hubs);
    const m = await agent.waitFor(/"address":"127\.0\.0\.1:(\d+)"[^\n]*metrics listening/);
    return `http://127.0.0.1:${m[1]}`;
  };

  it("an agent with empty maps and no hub is alive but not ready", async () => {
    // no hub to join: any token will do
    const base = await startAgent([`127.0.0.1:${await closedPort()}`], "none.none");
    assert.equal((await httpGet(`${base}/healthz`)).status, 200);
    const ready = await httpGet(`${base}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(ready.body, /no complete view from a hub yet/);
    const s = await scrape(base);
    assert.equal(sample(s, "switchyard_agent_hub_connected"), 0);
    assert.equal(sample(s, "switchyard_agent_serving_pinned_without_hub"), 1);
    assert.equal(sample(s, "switchyard_agent_map_entries", { map: "sy_frontends" }), 0);
    await stack.agent!.stop();
  });

  it(`counts ${N} connects in events, resolutions and the datapath; maps' fill; ready with a hub`, async () => {
    const hub = await stack.startHub([`east=dir:${dir}`], ["--metrics-listen", "127.0.0.1:0"]);
    const hubMetrics = (await hub.waitFor(/metrics (http:\/\/\S+)\/metrics/))[1]!;
    token = stack.createToken("east");
    assert.equal((await httpGet(`${hubMetrics}/healthz`)).status, 200);
    await waitUntil("the hub to be ready (its cluster listed)", async () =>
      (await httpGet(`${hubMetrics}/readyz`)).status === 200 ? true : undefined,
    );

    const base = await startAgent();
    await waitUntil("the agent to be ready", async () =>
      (await httpGet(`${base}/readyz`)).status === 200 ? true : undefined,
    );
    const before = await scrape(base);
    const translatedBefore =
      sample(before, "switchyard_agent_datapath_total", { counter: "translated" }) ?? 0;
    for (let i = 0; i < N; i++) {
      const r = await waitUntil("a connect through the VIP", async () => {
        const p = await stack.probe(VIP, 80);
        return p.ok ? p : undefined;
      });
      assert.match(r.reply, /^backend-a /);
    }
    const s = await waitUntil(`all ${N} events published`, async () => {
      const m = await scrape(base);
      return sample(m, "switchyard_agent_events_published_total") === N ? m : undefined;
    });
    assert.equal(sample(s, "switchyard_agent_events_emitted_total"), N);
    for (const reason of ["ring_full", "buffer_full", "publish_error", "stopped"])
      assert.equal(sample(s, "switchyard_agent_events_dropped_total", { reason }), 0, reason);
    assert.equal(sample(s, "switchyard_agent_events_sampled_out_total"), 0);
    assert.equal(sample(s, "switchyard_agent_events_buffered"), 0);
    assert.equal(sample(s, "switchyard_agent_nats_connected"), 1);
    // from the kernel's per-Service counters, not from events
    assert.equal(
      sample(s, "switchyard_agent_resolutions_total", { service: "east/shop/web", result: "ok" }),
      N,
    );
    assert.equal(
      sample(s, "switchyard_agent_resolutions_total", { service: "east/shop/web", result: "noBackend" }),
      0,
    );
    assert.equal(
      (sample(s, "switchyard_agent_datapath_total", { counter: "translated" }) ?? 0) - translatedBefore,
      N,
    );
    assert.equal(sample(s, "switchyard_agent_map_entries", { map: "sy_frontends" }), 1);
    assert.equal(sample(s, "switchyard_agent_map_entries", { map: "sy_backends" }), 1);
    assert.equal(sample(s, "switchyard_agent_map_entries", { map: "sy_svc_names" }), 1);
    assert.equal(sample(s, "switchyard_agent_map_capacity", { map: "sy_frontends" }), 65536);
    assert.equal(sample(s, "switchyard_agent_map_capacity", { map: "sy_backends" }), 1048576);
    assert.equal(sample(s, "switchyard_agent_hub_connected"), 1);
    assert.equal(sample(s, "switchyard_agent_serving_pinned_without_hub"), 0);
    assert.equal(sample(s, "switchyard_agent_changes_pending"), 0);
    assert.equal(sample(s, "switchyard_agent_entries_failing"), 0);
    assert.ok((sample(s, "switchyard_agent_last_change_age_seconds") ?? -1) >= 0);
    await stack.agent!.stop();
    await hub.stop();
  });

  it("an agent restarted with the hub gone serves its pinned maps: ready, serving_pinned_without_hub 1", async () => {
    const base = await startAgent([`127.0.0.1:${await closedPort()}`]);
    assert.equal((await httpGet(`${base}/readyz`)).status, 200);
    const s = await scrape(base);
    assert.equal(sample(s, "switchyard_agent_serving_pinned_without_hub"), 1);
    assert.equal(sample(s, "switchyard_agent_hub_connected"), 0);
    assert.equal(sample(s, "switchyard_agent_map_entries", { map: "sy_frontends" }), 1);
    const r = await stack.probe(VIP, 80);
    assert.equal(r.ok, true, "the pinned maps still resolve the VIP");
  });
});
