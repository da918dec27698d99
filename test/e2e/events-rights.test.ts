/**
 * NATS rights through the real hub and agent (issue 17): nats-server in
 * operator mode with what `switchyard-hub nats init` writes; the agent gets
 * its NATS user with its credential and publishes the NAT event of a real
 * connect; with that user it cannot publish as another node; the hub keeps
 * the history stream; a subscribe-only .creds follows the events live and
 * replays them with `switchyard events`; restarted while the hub is down,
 * the agent publishes on its own cluster's subject at once (it knows the
 * cluster from its stored credential, before any Welcome); with no
 * credential left, it holds its events until a hub names the cluster.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import { serviceYaml } from "../kit/k8s-yaml.ts";
import { startNatsServer } from "../kit/nats.ts";
import { type Proc, REPO, waitUntil, watchProcess } from "../kit/proc.ts";
import { Stack } from "../kit/stack.ts";

const VIP = "10.96.9.10";

describe("NAT events with per-agent NATS rights (operator mode)", () => {
  let stack: Stack;
  let agentState: string;
  let credsFile: string;
  let token: string;
  const procs: Proc[] = [];
  const hubCli = (...args: string[]) =>
    execFileSync(path.join(REPO, "bin/switchyard-hub"), [...args, "--state-dir", stack.stateDir], {
      encoding: "utf8",
    });
  const follow = (...args: string[]) => {
    const p = watchProcess(
      spawn(
        path.join(REPO, "bin/switchyard"),
        ["events", "--server", stack.nats!.url, "--creds", credsFile, ...args],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      ),
    );
    procs.push(p);
    return p;
  };

  before(async () => {
    stack = Stack.create("e2enr");
    const dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "web.yaml"), serviceYaml("web", VIP, "198.18.3.11"));
    await stack.startBackend("backend-a", "198.18.3.11", 8080);
    const conf = path.join(stack.stateDir, "nats-auth.conf");
    hubCli("nats", "init", "--out", conf);
    stack.nats = await startNatsServer({ jetstream: true, config: fs.readFileSync(conf, "utf8") });
    credsFile = path.join(stack.stateDir, "east.creds");
    hubCli("nats-creds", "create", "--subscribe", "switchyard.nat.east.>", "--out", credsFile);
    token = stack.createToken("east");
    const hub = await stack.startHub([`east=dir:${dir}`], ["--events-nats", stack.nats.url]);
    await hub.waitFor(/"result":"created"[^\n]*"msg":"event history stream"/);
    agentState = path.join(stack.stateDir, "agent");
    const agent = await stack.startAgent(token);
    await agent.waitFor(/"natsUser":true[^\n]*"msg":"agent credential received"/);
    await agent.waitFor(/"msg":"nats connected; events flow"/);
  });
  after(async () => {
    for (const p of procs) await p.stop();
    await stack?.cleanup();
  });

  it("the agent publishes a real connect's event as its own node; a subscriber follows it live", async () => {
    const live = follow("--cluster", "east", "--json");
    await live.waitFor(/following switchyard\.nat\.east\.> live/);
    const r = await waitUntil("VIP to resolve", async () => {
      const p = await stack.probe(VIP, 80);
      return p.ok ? p : undefined;
    });
    assert.match(r.reply, /^backend-a /);
    const m = await live.waitFor(/^\{.*"service":"east\/shop\/web".*\}$/m);
    const ev = JSON.parse(m[0]) as Record<string, unknown>;
    assert.equal(ev["node"], "node-1");
    assert.equal(ev["natIp"], "198.18.3.11");
  });

  it("with the agent's NATS user, another node's subject is refused and its own is not", async () => {
    const creds = fs.readFileSync(path.join(agentState, "nats.creds"));
    const nc = await connect({
      servers: stack.nats!.url,
      authenticator: credsAuthenticator(creds),
      reconnect: false,
    });
    const errors: string[] = [];
    (async () => {
      for await (const s of nc.status()) if (s.type === "error") errors.push(s.error.message);
    })().catch(() => {});
    nc.publish("switchyard.nat.east.node-2.shop.web", "{}");
    nc.publish("switchyard.nat.west.node-1.shop.web", "{}");
    nc.publish("switchyard.nat.east.node-1.shop.web", "{}");
    await nc.flush();
    await waitUntil("two permission violations", () => (errors.length >= 2 ? true : undefined));
    assert.deepEqual(errors.map((e) => /Publish to "([^"]+)"/i.exec(e)?.[1]).sort(), [
      "switchyard.nat.east.node-2.shop.web",
      "switchyard.nat.west.node-1.shop.web",
    ]);
    await nc.close().catch(() => {});
  });

  it("the history the hub keeps replays the connect, filtered by node and result", async () => {
    const replay = follow("--since", "10m", "--cluster", "east", "--node", "node-1", "--result", "ok");
    await replay.waitFor(
      /east\/node-1\s+TCP\s+pid \d+ → 10\.96\.9\.10:80 → 198\.18\.3\.11:8080\s+east\/shop\/web\s+ok/,
    );
  });

  it("restarted with the hub down, the agent publishes its connects' events on its own cluster's subject", async () => {
    const hubAddress = stack.hubAddress;
    await stack.agent!.stop();
    await stack.hub!.stop();
    // no hub answers: the cluster comes from the state directory, not from a Welcome
    const agent = await stack.startAgent(token, [], [hubAddress]);
    await agent.waitFor(/"msg":"nats connected; events flow"/);
    const live = follow("--cluster", "east", "--node", "node-1", "--json");
    await live.waitFor(/following switchyard\.nat\.east\.node-1\.> live/);
    const r = await stack.probe(VIP, 80);
    assert.ok(r.ok, "the pinned maps serve the VIP without a hub");
    const m = await live.waitFor(/^\{.*"pid":\d+.*\}$/m);
    const ev = JSON.parse(m[0]) as Record<string, unknown>;
    assert.deepEqual([ev["cluster"], ev["node"], ev["service"]], ["east", "node-1", "east/shop/web"]);
    assert.doesNotMatch(agent.output(), /nats refused nat events/);
  });

  it("with no credential left and the hub down, it holds its events until the hub names the cluster, then sends them", async () => {
    const hubAddress = stack.hubAddress;
    await stack.agent!.stop();
    // the state directory lost (the pins stay and serve); the agent's NATS user given as a file of its own
    const natsCreds = path.join(stack.stateDir, "node-1.creds");
    fs.copyFileSync(path.join(agentState, "nats.creds"), natsCreds);
    fs.rmSync(agentState, { recursive: true, force: true });
    const agent = await stack.startAgent(token, ["--nats-creds", natsCreds], [hubAddress]);
    await agent.waitFor(/"msg":"nats connected; events flow"/);
    const live = follow("--cluster", "east", "--node", "node-1", "--json");
    await live.waitFor(/following switchyard\.nat\.east\.node-1\.> live/);
    const r = await stack.probe(VIP, 80);
    assert.ok(r.ok, "the pinned maps serve the VIP without a hub");
    const status = () =>
      JSON.parse(fs.readFileSync(path.join(agentState, "events-status.json"), "utf8")) as Record<
        string,
        unknown
      >;
    const held = await waitUntil("the connect's event held for the cluster", () => {
      const s = status();
      return (s["awaitingCluster"] as number) >= 1 ? s : undefined;
    });
    assert.equal((held["dropped"] as Record<string, number>)["publish_error"], 0);
    // the hub back on its address: its Welcome names the cluster
    await stack.startHub(
      [`east=dir:${path.join(stack.stateDir, "cluster")}`],
      ["--events-nats", stack.nats!.url, "--listen", hubAddress],
    );
    await agent.waitFor(/"msg":"cluster known: nat events held for it are sent"/);
    const m = await live.waitFor(/^\{.*"pid":\d+.*\}$/m);
    const ev = JSON.parse(m[0]) as Record<string, unknown>;
    assert.deepEqual([ev["cluster"], ev["node"], ev["service"]], ["east", "node-1", "east/shop/web"]);
    const sent = await waitUntil("the held events published", () => {
      const s = status();
      return s["awaitingCluster"] === 0 && s["held"] === 0 ? s : undefined;
    });
    assert.equal((sent["dropped"] as Record<string, number>)["publish_error"], 0);
    assert.equal(sent["emitted"], sent["published"]);
  });
});
