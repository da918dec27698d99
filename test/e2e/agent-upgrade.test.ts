/**
 * An agent upgraded onto pins of a build with another map layout (or
 * started with another map size) never loses a Service: the previous
 * build's programs serve from its maps while the new agent fills new maps
 * beside them, and the swap happens only when those hold a whole view — the
 * held view on disk at once (even with no hub), else the hub's complete
 * view. The "previous build" is this object compiled with another
 * sy_affinity size and started with another --max-frontends (which sizes
 * sy_svc_names at load): libbpf cannot reuse its maps. Real hub, real agent
 * binary, real BPF in a sandbox cgroup.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO } from "../kit/proc.ts";
import { AGENT, Stack } from "../kit/stack.ts";

const SERVICES = 200;
const TARGET_VIP = "10.98.255.250";
const BACKEND = "198.18.41.11";

function cluster(count: number): string {
  const docs: string[] = [];
  const vip = (i: number) => `10.98.${i >> 8}.${i & 255}`;
  for (let i = 0; i < count; i++)
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata: { name: s${i}, namespace: up }\nspec: { clusterIP: ${vip(i)}, ports: [{ name: http, port: 80 }] }`,
      `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: { name: s${i}-1, namespace: up, labels: { kubernetes.io/service-name: s${i} } }\naddressType: IPv4\nports: [{ name: http, port: 8080 }]\nendpoints: [{ addresses: [198.19.${i >> 8}.${i & 255}] }]`,
    );
  docs.push(
    `apiVersion: v1\nkind: Service\nmetadata: { name: target, namespace: up }\nspec: { clusterIP: ${TARGET_VIP}, ports: [{ name: http, port: 80 }] }`,
    `apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: { name: target-1, namespace: up, labels: { kubernetes.io/service-name: target } }\naddressType: IPv4\nports: [{ name: http, port: 8080 }]\nendpoints: [{ addresses: [${BACKEND}] }]`,
  );
  return `${docs.join("\n---\n")}\n`;
}

/** The BPF object built by bpf/Makefile with another sy_affinity size: a build whose pinned maps this one cannot reuse. */
function buildPreviousObject(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(REPO, "bpf/build/vmlinux.h"), path.join(dir, "vmlinux.h"));
  const out = path.join(dir, "switchyard.bpf.o");
  execFileSync(
    "make",
    [
      "-s",
      "-C",
      path.join(REPO, "bpf"),
      `BUILD=${dir}`,
      `CFLAGS=-g -O2 -target bpf -Wall -Werror -I${dir} -I. -DSY_MAX_AFFINITY=4096`,
      out,
    ],
    { stdio: "pipe" },
  );
  return out;
}

describe("agent upgrade across incompatible pinned maps keeps every Service", () => {
  let stack: Stack;
  let token: string;
  let clusterDir: string;
  let heldView: string;
  const agentState = () => path.join(stack.stateDir, "agent");
  const maxEntries = (map: string): number =>
    (
      JSON.parse(
        execFileSync("bpftool", ["map", "show", "pinned", path.join(stack.pinDir, "maps", map), "--json"], {
          encoding: "utf8",
        }),
      ) as { max_entries: number }
    ).max_entries;
  const dump = () =>
    execFileSync(
      process.execPath,
      [path.join(REPO, AGENT), "dump", "--pin-dir", stack.pinDir, "--state-dir", agentState()],
      { encoding: "utf8" },
    );
  const reachesTarget = async () => {
    const p = await stack.probe(TARGET_VIP, 80);
    assert.ok(p.ok && p.reply.startsWith("target "), `connect to the target Service: ${JSON.stringify(p)}`);
  };
  /** the positions of each message in the agent's log, in order; -1 when absent */
  const order = (out: string, ...msgs: [string, string, string]) =>
    msgs.map((m) => out.indexOf(m)) as [number, number, number];

  before(async () => {
    stack = Stack.create("upgrade");
    clusterDir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(clusterDir);
    fs.writeFileSync(path.join(clusterDir, "up.yaml"), cluster(SERVICES));
    await stack.startBackend("target", BACKEND, 8080);
    await stack.startHub([`prod=dir:${clusterDir}`]);
    token = stack.createToken("prod");
    heldView = path.join(agentState(), "held-view.bin");
    // the previous build, synced, then stopped: its programs and maps stay pinned
    const previous = buildPreviousObject(path.join(stack.stateDir, "previous-build"));
    const agent = await stack.startAgent(token, ["--bpf-object", previous, "--max-frontends", "4096"]);
    await agent.waitFor(/complete view from the hub/, 60_000);
    await reachesTarget();
    assert.equal(maxEntries("sy_svc_names"), 4096, "the previous build's maps are pinned");
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("upgraded while the hub is down, it plans its held view into new maps and swaps at once; 0 failed connects", async () => {
    const loop = await stack.connectLoop(TARGET_VIP, 80);
    await stack.agent!.stop();
    assert.ok(fs.existsSync(heldView), "the previous agent kept its view on disk");
    const hubAddress = stack.hubAddress;
    await stack.hub!.stop();
    const agent = await stack.startAgent(token, ["--resync-seconds", "1"], [hubAddress]);
    await agent.waitFor(/upgrade swapped/, 30_000);
    await reachesTarget();
    const result = await loop.finish();
    assert.equal(result.failed, 0, `failed connects during the upgrade: ${JSON.stringify(result.errors)}`);
    assert.ok(result.ok > 0, "the loop connected");
    const out = agent.output();
    const [staged, planned, swapped] = order(
      out,
      "upgrade staged: serving the previous build's maps until a complete view is ready",
      "held view planned into the new maps",
      "upgrade swapped",
    );
    assert.ok(staged >= 0 && staged < planned && planned < swapped, `staged → planned → swapped:\n${out}`);
    assert.doesNotMatch(out, /complete view from the hub/, "no hub answered");
    // the new maps hold the view and are the pinned ones
    assert.equal(maxEntries("sy_svc_names"), 65536);
    assert.equal(maxEntries("sy_affinity"), 262144);
    assert.ok(!fs.existsSync(path.join(stack.pinDir, "maps-next")), "no staged maps left");
    const d = dump();
    assert.ok(d.includes(`${TARGET_VIP}:80/tcp`) && d.includes(`-> ${BACKEND}:8080`), d);
    assert.equal(d.match(/^10\.98\./gm)?.length, SERVICES + 1, `every Service in the new maps:\n${d}`);
    assert.doesNotMatch(d, /upgrade staged/);
  });

  it("with no held view and no hub it stays staged, says so, and the previous build serves; stopped, it drops the new maps", async () => {
    await stack.agent!.stop();
    fs.rmSync(heldView, { force: true });
    const hubAddress = stack.hubAddress; // still down
    const agent = await stack.startAgent(token, ["--max-backends", "32768"], [hubAddress]);
    await agent.waitFor(/upgrade staged/);
    const d = dump();
    assert.match(d, /# upgrade staged: serving the previous build's maps until a complete view is ready/);
    assert.equal(maxEntries("sy_backends"), 1048576, "the previous maps are still the pinned ones");
    await reachesTarget();
    await agent.stop();
    assert.ok(!fs.existsSync(path.join(stack.pinDir, "maps-next")), "the unswapped new maps are unpinned");
    await reachesTarget();
  });

  it("upgraded with no held view while the hub is up (another --max-backends), it swaps after the hub's complete view; 0 failed connects", async () => {
    await stack.startHub([`prod=dir:${clusterDir}`]);
    const loop = await stack.connectLoop(TARGET_VIP, 80);
    const agent = await stack.startAgent(token, ["--max-backends", "65536"]);
    await agent.waitFor(/upgrade swapped/, 60_000);
    await reachesTarget();
    const result = await loop.finish();
    assert.equal(result.failed, 0, `failed connects during the upgrade: ${JSON.stringify(result.errors)}`);
    assert.ok(result.ok > 0, "the loop connected");
    const out = agent.output();
    const [staged, complete, swapped] = order(
      out,
      "upgrade staged",
      "complete view from the hub",
      "upgrade swapped",
    );
    assert.ok(
      staged >= 0 && staged < complete && complete < swapped,
      `staged → complete view → swapped:\n${out}`,
    );
    assert.doesNotMatch(out, /held view planned/);
    assert.equal(maxEntries("sy_backends"), 65536);
    assert.equal(maxEntries("sy_members"), 65536);
    assert.equal(dump().match(/^10\.98\./gm)?.length, SERVICES + 1);
  });
});
