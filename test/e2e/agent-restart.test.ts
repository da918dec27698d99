/**
 * Never lose a Service on a node: a restarted agent keeps serving what its
 * pinned maps hold until a hub has given it a complete view, and then writes
 * only what differs. Real hub, real agent, real BPF in a sandbox cgroup.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO } from "../kit/proc.ts";
import { AGENT, Stack } from "../kit/stack.ts";

const SERVICES = 10_000;
const TARGET_VIP = "10.97.255.250";
const BACKEND = "198.18.40.11";

/** `count` Services with a slice each, every Service before every slice; the target Service last of each kind. */
function bigCluster(count: number): string {
  const docs: string[] = [];
  const vip = (i: number) => `10.97.${i >> 8}.${i & 255}`;
  for (let i = 0; i < count - 1; i++)
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata: { name: s${i}, namespace: big }\nspec: { clusterIP: ${vip(i)}, ports: [{ name: http, port: 80 }] }`,
    );
  docs.push(
    `apiVersion: v1\nkind: Service\nmetadata: { name: zz-target, namespace: big }\nspec: { clusterIP: ${TARGET_VIP}, ports: [{ name: http, port: 80 }] }`,
  );
  for (let i = 0; i < count - 1; i++)
    docs.push(
      `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: { name: s${i}-1, namespace: big, labels: { kubernetes.io/service-name: s${i} } }\naddressType: IPv4\nports: [{ name: http, port: 8080 }]\nendpoints: [{ addresses: [198.19.${i >> 8}.${i & 255}] }]`,
    );
  docs.push(
    `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: { name: zz-target-1, namespace: big, labels: { kubernetes.io/service-name: zz-target } }\naddressType: IPv4\nports: [{ name: http, port: 8080 }]\nendpoints: [{ addresses: [${BACKEND}] }]`,
  );
  return `${docs.join("\n---\n")}\n`;
}

describe("agent restart keeps every Service", () => {
  let stack: Stack;
  let token: string;
  let heldView: string;
  const dump = () =>
    execFileSync(process.execPath, [path.join(REPO, AGENT), "dump", "--pin-dir", stack.pinDir], {
      encoding: "utf8",
    })
      .split("\n")
      .filter((l) => !l.startsWith("# sync:"))
      .join("\n");
  const reachesTarget = async () => {
    const p = await stack.probe(TARGET_VIP, 80);
    assert.ok(p.ok && p.reply.startsWith("target "), `connect to the target Service: ${JSON.stringify(p)}`);
  };

  before(async () => {
    stack = Stack.create("restart");
    const dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "big.yaml"), bigCluster(SERVICES));
    await stack.startBackend("target", BACKEND, 8080);
    await stack.startHub([`prod=dir:${dir}`]);
    token = stack.createToken("prod");
    heldView = path.join(stack.stateDir, "agent", "held-view.bin");
    const agent = await stack.startAgent(token);
    await agent.waitFor(/complete view from the hub/, 120_000);
    await reachesTarget();
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("restarted from nothing but its pins while the hub is reachable, it takes the view in many messages with 0 failed connects and 0 map writes", async () => {
    const loop = await stack.connectLoop(TARGET_VIP, 80);
    await stack.agent!.stop();
    fs.rmSync(heldView, { force: true }); // the hard case: no held view, the whole view walks again
    const agent = await stack.startAgent(token);
    const done = await agent.waitFor(/\{[^\n]*complete view from the hub[^\n]*\}/, 120_000);
    assert.equal((JSON.parse(done[0]) as { ops: number }).ops, 0, "the complete view's plan wrote nothing");
    await reachesTarget();
    const result = await loop.finish();
    const out = agent.output();
    const held = out.match(/delta held until the view is complete/g)?.length ?? 0;
    assert.ok(held >= 2, `the view came in several messages (${held} held before the last)`);
    assert.equal(result.failed, 0, `failed connects during the restart: ${JSON.stringify(result.errors)}`);
    assert.ok(result.ok > 0, "the loop connected");
    assert.doesNotMatch(out, /"msg":"maps updated"/, "nothing changed: nothing written, nothing deleted");
  });

  it("restarted while the hub is down, it serves its pinned maps unchanged through several resyncs, and says so", async () => {
    const previous = stack.agent!;
    await previous.stop();
    assert.ok(fs.existsSync(heldView), `the agent kept its view on disk: ${previous.output().slice(-3000)}`);
    const before = dump();
    const hubAddress = stack.hubAddress;
    await stack.hub!.stop();
    const agent = await stack.startAgent(token, ["--resync-seconds", "1"], [hubAddress]);
    await agent.waitFor(/held view resumed from the state directory/);
    // three resync periods pass with no hub
    for (let i = 1; i <= 3; i++)
      await agent.waitFor(new RegExp(`(no complete view from a hub yet[\\s\\S]*){${i}}`), 30_000);
    assert.doesNotMatch(agent.output(), /maps had drifted|"msg":"maps updated"/);
    assert.equal(dump(), before, "maps unchanged");
    const status = execFileSync(
      process.execPath,
      [
        path.join(REPO, AGENT),
        "dump",
        "--pin-dir",
        stack.pinDir,
        "--state-dir",
        path.join(stack.stateDir, "agent"),
      ],
      { encoding: "utf8" },
    );
    assert.match(
      status.split("\n")[0]!,
      /# sync: serving the pinned maps as found .*no complete view from a hub yet/,
    );
    await reachesTarget();
  });

  it("restarted with its held view, it resumes in sync: the hub sends nothing and the maps are not written", async () => {
    await stack.agent!.stop();
    const dir = path.join(stack.stateDir, "cluster");
    await stack.startHub([`prod=dir:${dir}`]);
    const agent = await stack.startAgent(token);
    const done = await agent.waitFor(/\{[^\n]*complete view from the hub[^\n]*\}/, 120_000);
    assert.equal((JSON.parse(done[0]) as { ops: number }).ops, 0, "the complete view's plan wrote nothing");
    const out = agent.output();
    assert.match(out, /held view resumed from the state directory/);
    assert.doesNotMatch(out, /"msg":"delta (applied|held)/, "no delta: the Hello's view version was current");
    assert.doesNotMatch(out, /"msg":"maps updated"/);
    await reachesTarget();
  });

  it("after a reboot during a hub outage (bpffs empty), it serves its held view at once", async () => {
    await stack.agent!.stop();
    const hubAddress = stack.hubAddress;
    await stack.hub!.stop();
    // a reboot empties bpffs: no maps, no links
    execFileSync(process.execPath, [path.join(REPO, AGENT), "uninstall", "--pin-dir", stack.pinDir]);
    const agent = await stack.startAgent(token, [], [hubAddress]);
    await agent.waitFor(/held view planned into the new maps/);
    await reachesTarget();
  });
});
