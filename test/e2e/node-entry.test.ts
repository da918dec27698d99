/**
 * Node-entry DNAT for a nodeProxy BalancingPolicy, end to end through the
 * real binaries, with three network namespaces as hosts:
 *
 *   client "node-1"  ── veth ──  entry "node-2"  ── veth ──  pods
 *   (the sandbox: its agent       (its own agent, run in     (pod-a, pod-b:
 *    runs in the root netns on     this netns: nft table      default route
 *    the sandbox cgroup)           inet switchyard_entry)     via node-2)
 *
 * The hub's config names node-2's interface towards the client
 * (entryInterface); node-2's agent reports that interface's addresses,
 * which become node-2's entry addresses (the node has no annotation:
 * translate/node-entry.test.ts covers it). The client's agent translates
 * the policy's frontend (the Service's ClusterIPs) to node-2's entry
 * address at the policy's port; node-2's agent DNATs entry:port to the ready pods on node-2
 * with the kernel's conntrack; replies come back un-NATed. TCP and UDP, v4
 * and v6; a change of the pod set under a connect loop fails nothing; a
 * UDP flow on a pod that leaves the set moves to the remaining one (its
 * conntrack entries deleted); uninstall removes the table. The entry agent reaches the hub (loopback of
 * the root netns) through a Unix socket the test forwards.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { findCgroup2Root } from "@switchyard/lib/mounts";
import { type Proc, REPO, waitUntil, watchProcess } from "../kit/proc.ts";
import { uniqueName } from "../kit/sandbox.ts";
import { AGENT, Stack } from "../kit/stack.ts";

const VIP4 = "10.96.60.10";
const VIP6 = "fd00:96:60::10";
const ENTRY4 = "198.18.60.2";
const ENTRY6 = "fd00:60::2";
const CLIENT4 = "198.18.60.1";
const CLIENT6 = "fd00:60::1";
const POD = {
  a: { v4: "10.244.60.10", v6: "fd00:244:60::10" },
  b: { v4: "10.244.60.11", v6: "fd00:244:60::11" },
};

const nodes = `apiVersion: v1
kind: Node
metadata: { name: node-1 }
status: { addresses: [{ type: InternalIP, address: ${CLIENT4} }] }
---
apiVersion: v1
kind: Node
metadata: { name: node-2 }
status: { addresses: [{ type: InternalIP, address: ${ENTRY4} }] }
---
apiVersion: v1
kind: Service
metadata: { name: cache, namespace: shop }
spec:
  clusterIPs: [${VIP4}, "${VIP6}"]
  ports: [{ name: http, port: 80, protocol: TCP }, { name: dns, port: 53, protocol: UDP }]
`;

const pod = (name: "a" | "b", ready: boolean) => `apiVersion: v1
kind: Pod
metadata: { name: pod-${name}, namespace: shop, uid: 00000000-0000-0000-0000-00000000006${name}, labels: { app: cache } }
spec: { nodeName: node-2, containers: [{ name: cache }] }
status:
  podIPs: [{ ip: ${POD[name].v4} }, { ip: "${POD[name].v6}" }]
  conditions: [{ type: Ready, status: "${ready ? "True" : "False"}" }]
`;

const policy = `apiVersion: switchyard.io/v1alpha1
kind: BalancingPolicy
metadata: { name: cache-entry, namespace: shop, uid: bp-entry, generation: 1, creationTimestamp: "2026-12-01T00:00:00Z" }
spec:
  frontend: { service: { name: cache, ports: [http, dns] } }
  backend:
    serviceEndpoint:
      selector: { matchLabels: { app: cache } }
      redirectMode: nodeProxy
      toPorts: [{ name: http, port: 8080, protocol: TCP }, { name: dns, port: 8080, protocol: UDP }]
`;

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

describe("node entry DNAT (nodeProxy) across network namespaces", () => {
  let stack: Stack;
  let dir: string;
  const entryNs = uniqueName("entryn");
  const podNs = uniqueName("entryp");
  const entryCgroup = path.join(findCgroup2Root(), uniqueName("entryc"));
  const entryPins = `/sys/fs/bpf/${uniqueName("entryb")}`;
  let entryAgent: Proc | undefined;
  let pods: Proc | undefined;
  let forward: net.Server | undefined;
  let socketPath = "";
  const made = { entryNs: false, podNs: false, cgroup: false };

  const inEntry = (args: string[]) => sh("ip", ["netns", "exec", entryNs, ...args]);
  const table = () => {
    try {
      return inEntry(["nft", "list", "table", "inet", "switchyard_entry"]);
    } catch {
      return "";
    }
  };
  const tcp = async (vip: string) => stack.probe(vip, 80);
  const udp = async (vip: string, mode: "connected" | "unconnected") =>
    (await stack.sandbox.runKitClient("udp-probe.ts", [vip, "53", mode])) as
      | { ok: true; reply: string; from: string }
      | { ok: false; code: string };
  const reaches = (vip: string, who: string) =>
    waitUntil(`connects to ${vip}:80 reach ${who}`, async () => {
      const p = await tcp(vip);
      return p.ok && p.reply.startsWith(`${who} `) ? p : undefined;
    });

  before(async () => {
    stack = Stack.create("entry");
    dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    const c = stack.sandbox.netns;
    // hosts: the entry node and the pods' namespace, wired client ↔ entry ↔ pods
    sh("ip", ["netns", "add", entryNs]);
    made.entryNs = true;
    sh("ip", ["netns", "add", podNs]);
    made.podNs = true;
    const tag = entryNs.slice(-6);
    sh("ip", [
      "-n",
      c,
      "link",
      "add",
      `syc${tag}`,
      "type",
      "veth",
      "peer",
      "name",
      `sye${tag}`,
      "netns",
      entryNs,
    ]);
    sh("ip", [
      "-n",
      entryNs,
      "link",
      "add",
      `syp${tag}`,
      "type",
      "veth",
      "peer",
      "name",
      `syq${tag}`,
      "netns",
      podNs,
    ]);
    const up = (ns: string, dev: string, addrs: string[]) => {
      for (const a of addrs)
        sh("ip", ["-n", ns, "addr", "add", a, "dev", dev, ...(a.includes(":") ? ["nodad"] : [])]);
      sh("ip", ["-n", ns, "link", "set", dev, "up"]);
    };
    up(c, `syc${tag}`, [`${CLIENT4}/24`, `${CLIENT6}/64`]);
    up(entryNs, `sye${tag}`, [`${ENTRY4}/24`, `${ENTRY6}/64`]);
    up(entryNs, `syp${tag}`, ["10.244.60.1/24", "fd00:244:60::1/64"]);
    up(podNs, `syq${tag}`, [`${POD.a.v4}/24`, `${POD.b.v4}/24`, `${POD.a.v6}/64`, `${POD.b.v6}/64`]);
    for (const ns of [entryNs, podNs]) sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
    sh("ip", ["-n", podNs, "route", "add", "default", "via", "10.244.60.1"]);
    sh("ip", ["-n", podNs, "-6", "route", "add", "default", "via", "fd00:244:60::1"]);
    // the entry node forwards what it DNATs (docs/dataplane.md: the agent checks and says so)
    inEntry(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    pods = watchProcess(
      spawn(
        "nsenter",
        [
          `--net=/run/netns/${podNs}`,
          process.execPath,
          path.join(REPO, "test/kit/echo-server.ts"),
          ...["pod-a", POD.a.v4, "8080", "pod-a", POD.a.v6, "8080"],
          ...["pod-b", POD.b.v4, "8080", "pod-b", POD.b.v6, "8080"],
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      ),
    );
    await pods.waitFor(/ready/);

    fs.writeFileSync(path.join(dir, "nodes.yaml"), nodes);
    fs.writeFileSync(path.join(dir, "pod-a.yaml"), pod("a", true));
    fs.writeFileSync(path.join(dir, "pod-b.yaml"), pod("b", false));
    fs.writeFileSync(path.join(dir, "policy.yaml"), policy);
    const config = path.join(stack.stateDir, "hub.yaml");
    fs.writeFileSync(config, `entryInterface: sye${tag}\n`);
    await stack.startHub([`prod=dir:${dir}`], ["--config", config]);
    // the entry node's agent dials the hub through a Unix socket (its netns has no route to this loopback)
    socketPath = path.join(stack.stateDir, "hub.sock");
    const [host, port] = stack.hubAddress.split(":") as [string, string];
    forward = net.createServer((s) => {
      const up2 = net.connect({ host, port: Number(port) });
      s.on("error", () => up2.destroy());
      up2.on("error", () => s.destroy());
      s.pipe(up2).pipe(s);
    });
    await new Promise<void>((resolve) => forward!.listen(socketPath, resolve));
    await stack.startAgent(stack.createToken("prod"));
    fs.mkdirSync(entryCgroup);
    made.cgroup = true;
    entryAgent = watchProcess(
      spawn(
        "nsenter",
        [
          `--net=/run/netns/${entryNs}`,
          process.execPath,
          path.join(REPO, AGENT),
          "run",
          ...["--hub", `unix:${socketPath}`, "--token", stack.createToken("prod")],
          ...["--cgroup", entryCgroup, "--pin-dir", entryPins, "--node-name", "node-2"],
          ...["--state-dir", path.join(stack.stateDir, "agent-node-2")],
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      ),
    );
    await entryAgent.waitFor(/entry addresses reported/);
    await entryAgent.waitFor(/node entry table written/);
  });

  after(async () => {
    await entryAgent?.stop().catch(() => {});
    try {
      sh("nsenter", [
        `--net=/run/netns/${entryNs}`,
        process.execPath,
        path.join(REPO, AGENT),
        "uninstall",
        "--pin-dir",
        entryPins,
      ]);
    } catch {}
    await pods?.stop().catch(() => {});
    await new Promise<void>((resolve) => (forward ? forward.close(() => resolve()) : resolve()));
    if (made.cgroup)
      try {
        fs.rmdirSync(entryCgroup);
      } catch {}
    for (const [ns, is] of [
      [entryNs, made.entryNs],
      [podNs, made.podNs],
    ] as const)
      if (is)
        try {
          sh("ip", ["netns", "del", ns]);
        } catch {}
    await stack?.cleanup();
  });

  it("the entry node holds one DNAT per entry port, to its ready pod only", () => {
    const t = table();
    assert.match(t, new RegExp(`${ENTRY4.replaceAll(".", "\\.")} \\. tcp \\. 8080 : goto entry_\\d+`));
    assert.match(t, new RegExp(`${ENTRY4.replaceAll(".", "\\.")} \\. udp \\. 8080 : goto entry_\\d+`));
    assert.match(t, /fd00:60::2 \. tcp \. 8080/);
    assert.match(t, /hook prerouting priority dstnat - 10/);
    assert.ok(t.includes(POD.a.v4) && !t.includes(POD.b.v4), t);
    // switchyard-agent dump shows what the table holds
    const dump = sh("nsenter", [
      `--net=/run/netns/${entryNs}`,
      process.execPath,
      path.join(REPO, AGENT),
      "dump",
      "--pin-dir",
      entryPins,
      "--state-dir",
      path.join(stack.stateDir, "agent-node-2"),
    ]);
    assert.match(dump, /node entry \(nft table inet switchyard_entry\): 4 ports/);
    assert.ok(dump.includes(`${ENTRY4}:8080/TCP -> ${POD.a.v4}:8080  (bp/prod/shop/cache-entry)`), dump);
  });

  it("a process on the entry node itself reaches the pod through its own entry address (the output hook)", async () => {
    const out = sh("nsenter", [
      `--net=/run/netns/${entryNs}`,
      process.execPath,
      path.join(REPO, "test/kit/tcp-probe.ts"),
      ENTRY4,
      "8080",
    ]);
    const p = JSON.parse(out.trim()) as { ok: boolean; reply?: string };
    assert.ok(p.ok && p.reply?.startsWith("pod-a "), out);
  });

  it("TCP, v4 and v6: the client's connect to the frontend reaches the pod through the entry node, client address kept", async () => {
    for (const [vip, client] of [
      [VIP4, CLIENT4],
      [VIP6, CLIENT6],
    ] as const) {
      const p = await reaches(vip, "pod-a");
      assert.ok(p.reply.includes(client), `the pod sees the client's own address (no SNAT): ${p.reply}`);
      assert.equal(p.peer.replace(/:\d+$/, ""), vip, "getpeername still says the frontend");
    }
  });

  it("UDP, v4 and v6, connected and unconnected: the reply comes back from the frontend", async () => {
    for (const vip of [VIP4, VIP6])
      for (const mode of ["connected", "unconnected"] as const) {
        const r = await waitUntil(`UDP ${mode} to ${vip}:53`, async () => {
          const x = await udp(vip, mode);
          return x.ok ? x : undefined;
        });
        assert.ok(r.reply.startsWith("pod-a "), JSON.stringify(r));
        assert.equal(r.from.replace(/:\d+$/, "").replace(/^::ffff:/, ""), vip, JSON.stringify(r));
      }
  });

  it("a change of the pod set under a connect loop fails no connect (make-before-break)", async () => {
    const loop = await stack.connectLoop(VIP4, 80);
    fs.writeFileSync(path.join(dir, "pod-b.yaml"), pod("b", true));
    await waitUntil("the entry table holds both pods", async () =>
      table().includes(POD.b.v4) && table().includes(POD.a.v4) ? true : undefined,
    );
    fs.writeFileSync(path.join(dir, "pod-a.yaml"), pod("a", false));
    await waitUntil("the entry table holds pod-b only", async () =>
      table().includes(POD.b.v4) && !table().includes(POD.a.v4) ? true : undefined,
    );
    await reaches(VIP4, "pod-b");
    const counts = await loop.finish();
    assert.ok(counts.ok > 0);
    assert.equal(counts.failed, 0, `failed connects: ${JSON.stringify(counts.errors)}`);
    for (let i = 0; i < 5; i++) {
      const p = await tcp(VIP4);
      assert.ok(p.ok && p.reply.startsWith("pod-b "), `connect ${i}: ${JSON.stringify(p)}`);
    }
  });

  it("UDP flows (unconnected v4, connected v6) on a pod that leaves the set reach the remaining pod at their next datagram", async () => {
    // pod-a alone, so both flows start there; then pod-b joins (the flows stay: their conntrack entries)
    fs.writeFileSync(path.join(dir, "pod-a.yaml"), pod("a", true));
    fs.writeFileSync(path.join(dir, "pod-b.yaml"), pod("b", false));
    await waitUntil("the entry table holds pod-a only", async () =>
      table().includes(POD.a.v4) && !table().includes(POD.b.v4) ? true : undefined,
    );
    const kit = (script: string, args: string[]) =>
      watchProcess(
        stack.sandbox.spawnInCgroup(process.execPath, [path.join(REPO, "test/kit", script), ...args]),
      );
    const flow = kit("udp-flow.ts", [VIP4, "53", "1"]);
    const session = kit("udp-session.ts", [VIP6, "53"]);
    try {
      const reply = async (p: Proc, re: RegExp) =>
        JSON.parse((await p.waitFor(re))[0]) as Record<string, unknown>;
      const first4 = await reply(flow, /^\{"i":0,.*\}$/m);
      const first6 = await reply(session, /^\{"phase":"first".*\}$/m);
      assert.match(String(first4["reply"]), /^pod-a /, JSON.stringify(first4));
      assert.match(String(first6["reply"]), /^pod-a /, JSON.stringify(first6));
      fs.writeFileSync(path.join(dir, "pod-b.yaml"), pod("b", true));
      await waitUntil("the entry table holds both pods", async () =>
        table().includes(POD.a.v4) && table().includes(POD.b.v4) ? true : undefined,
      );
      // pod-a leaves: after the table swap its agent deletes the flows DNATed to it (or says why not)
      // a log line (fields in any order) naming pod-a's target, or the warning that flows are kept
      const told = new RegExp(
        `^(?=.*node entry flows of removed pods (?:deleted|kept))(?=.*(?:${POD.a.v4.replaceAll(".", "\\.")}:8080|"reason")).*$`,
        "gm",
      );
      const toldBefore = entryAgent!.output().match(told)?.length ?? 0;
      fs.writeFileSync(path.join(dir, "pod-a.yaml"), pod("a", false));
      await waitUntil("the entry agent has dealt with pod-a's flows", async () =>
        (entryAgent!.output().match(told)?.length ?? 0) > toldBefore ? true : undefined,
      );
      assert.ok(!table().includes(POD.a.v4));
      flow.cp.kill("SIGUSR1");
      session.cp.kill("SIGUSR1");
      const next4 = await reply(flow, /^\{"i":1,.*\}$/m);
      const next6 = await reply(session, /^\{"phase":"second".*\}$/m);
      assert.match(
        String(next4["reply"]),
        /^pod-b /,
        `the same socket's next datagram: ${JSON.stringify(next4)}`,
      );
      assert.match(
        String(next6["reply"]),
        /^pod-b /,
        `the same socket's next datagram: ${JSON.stringify(next6)}`,
      );
      const line = entryAgent!.output().match(told)!.at(-1)!;
      assert.match(line, /node entry flows of removed pods deleted/, line);
      assert.ok(Number(/"conntrackEntries":(\d+)/.exec(line)?.[1]) >= 2, `both flows' entries went: ${line}`);
    } finally {
      await flow.stop("SIGKILL");
      await session.stop("SIGKILL");
    }
  });

  it("stopping the agent keeps the table (connections keep working); uninstall removes it", async () => {
    await entryAgent!.stop();
    assert.ok(table().includes("dnat"), "the table stays while the agent is stopped, as the pinned maps do");
    await reaches(VIP4, "pod-b");
    const out = sh("nsenter", [
      `--net=/run/netns/${entryNs}`,
      process.execPath,
      path.join(REPO, AGENT),
      "uninstall",
      "--pin-dir",
      entryPins,
    ]);
    assert.match(out, /removed the node entry table inet switchyard_entry/);
    assert.equal(table(), "");
    assert.doesNotMatch(inEntry(["nft", "list", "tables"]), /switchyard_entry/);
  });
});
