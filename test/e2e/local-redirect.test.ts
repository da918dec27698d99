/**
 * LocalRedirectPolicy in the kernel: the real programs in a sandbox cgroup,
 * the agent core fed with lrp/lrpb resources as the hub sends them. A
 * Service frontend and an address frontend redirect to the node's own pod
 * at its toPort (TCP and UDP, IPv4 and IPv6); the fallback (the Service)
 * takes over when the local pod is not ready, terminating or gone — with no
 * failed connect through a rollout — over the QoS limit, and for the
 * selected pods' own connects (skipRedirectFromBackend).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Resource } from "@switchyard/proto/assignment";
import { lrpbResource, lrpResource } from "../../services/nodeagent/src/testing/local-redirect.ts";
import { DatapathHarness, serviceResource, sliceResource } from "../kit/datapath-harness.ts";
import { type Proc, REPO, waitUntil, watchProcess } from "../kit/proc.ts";

const SVC4 = "10.96.10.10";
const SVC6 = "fd00:96::a";
const VIP4 = "169.254.20.10";
const VIP6 = "fd00:a9fe::a";
const QOS_SVC = "10.96.10.20";
const SKIP_SVC = "10.96.10.30";
const FALLBACK = { v4: "198.18.10.11", v6: "fd00:18::b11" };
const LOCAL = { v4: "198.18.10.21", v6: "fd00:18::b21" };
const LOCAL_NEXT = { v4: "198.18.10.22", v6: "fd00:18::b22" };
const REMOTE = "198.18.10.31";
const POD_UID = `0d5e7a10-${process.pid.toString(16).padStart(4, "0").slice(-4)}-4000-8000-00000000c0de`;

const TO_PORTS = [
  { name: "dns-tcp", port: 5353, protocol: "TCP" as const },
  { name: "dns", port: 5353, protocol: "UDP" as const },
];

/** Service "dns" (53 TCP+UDP, v4 and v6) with its backend on 8080, and the QoS and skip Services' ClusterIPs */
function services(): Resource[] {
  const fe = (ip: string) => [
    { ip, port: 53, protocol: "TCP" as const, portName: "dns-tcp" },
    { ip, port: 53, protocol: "UDP" as const, portName: "dns" },
  ];
  const ends = [{ ip: FALLBACK.v4 }, { ip: FALLBACK.v6 }];
  return [
    serviceResource("dns", [...fe(SVC4), ...fe(SVC6)]),
    sliceResource("dns", 8080, ends, "TCP", "dns-tcp"),
    sliceResource("dns", 8080, ends, "UDP", "dns"),
    serviceResource("qos", [{ ip: QOS_SVC, port: 53, protocol: "TCP", portName: "dns-tcp" }]),
    { ...sliceResource("qos", 8080, ends, "TCP", "dns-tcp"), name: "eps/test/ns/qos" },
    serviceResource("skip", [{ ip: SKIP_SVC, port: 53, protocol: "TCP", portName: "dns-tcp" }]),
    { ...sliceResource("skip", 8080, ends, "TCP", "dns-tcp"), name: "eps/test/ns/skip" },
  ];
}

function policies(): Resource[] {
  const fe = (ip: string, fallbackService?: string) =>
    [
      { ip, port: 53, protocol: "TCP" as const, portName: "dns-tcp" },
      { ip, port: 53, protocol: "UDP" as const, portName: "dns" },
    ].map((f) => (fallbackService ? { ...f, fallbackService, fallbackPortName: f.portName } : f));
  return [
    lrpResource("nld-svc", "service", [...fe(SVC4), ...fe(SVC6)]),
    lrpResource("nld-vip", "address", [...fe(VIP4, "svc/test/ns/dns"), ...fe(VIP6, "svc/test/ns/dns")]),
    lrpResource("nld-qos", "service", [{ ip: QOS_SVC, port: 53, portName: "dns-tcp" }], { qosPerSecond: 5 }),
    lrpResource("nld-skip", "service", [{ ip: SKIP_SVC, port: 53, portName: "dns-tcp" }], {
      skipRedirectFromBackend: true,
    }),
  ];
}

type PodState = { ready?: boolean; terminating?: boolean; ips?: string[]; toPort?: number } | "gone";

/** this node's selected pods of every policy: one pod in the given state */
function localPods(pod: PodState = {}): Resource[] {
  return ["nld-svc", "nld-vip", "nld-qos", "nld-skip"].map((name) =>
    lrpbResource(
      name,
      "node-1",
      TO_PORTS.map((p) => ({ ...p, port: pod !== "gone" && pod.toPort ? pod.toPort : p.port })),
      pod === "gone"
        ? []
        : [
            {
              name: "node-local-dns",
              ips: pod.ips ?? [LOCAL.v4, LOCAL.v6],
              ready: pod.ready ?? true,
              terminating: pod.terminating ?? false,
              uid: POD_UID,
            },
          ],
    ),
  );
}

describe("LocalRedirectPolicy in the kernel", () => {
  let h: DatapathHarness;
  /** cgroups this test made under the sandbox's, deepest first at cleanup */
  const madeCgroups: string[] = [];
  let podCgroup: string;
  before(async () => {
    h = DatapathHarness.create("lrp");
    await h.sandbox.startEchoServers([
      { name: "svc", ip: FALLBACK.v4, port: 8080 },
      { name: "svc", ip: FALLBACK.v6, port: 8080 },
      { name: "local", ip: LOCAL.v4, port: 5353 },
      { name: "local", ip: LOCAL.v6, port: 5353 },
      { name: "local-5354", ip: LOCAL.v4, port: 5354 },
      { name: "remote", ip: REMOTE, port: 5353 },
    ]);
    // the selected pod's cgroup, named as kubelet's cgroupfs driver names it
    podCgroup = path.join(h.sandbox.cgroup, `pod${POD_UID}`);
    fs.mkdirSync(podCgroup);
    madeCgroups.push(podCgroup);
    assert.deepEqual(h.assign([...services(), ...policies(), ...localPods()]), []);
  });
  after(() => {
    if (!h) return;
    for (const cg of [...madeCgroups].reverse()) {
      try {
        for (const pid of fs.readFileSync(path.join(cg, "cgroup.procs"), "utf8").split("\n").filter(Boolean))
          process.kill(Number(pid), "SIGKILL");
      } catch {}
      for (let i = 0; i < 100; i++) {
        try {
          fs.rmdirSync(cg);
          break;
        } catch {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    }
    h.cleanup();
  });

  const set = (pod: PodState, extra: Resource[] = []) =>
    assert.deepEqual(h.assign([...services(), ...policies(), ...localPods(pod), ...extra]), []);

  it("a Service frontend redirects TCP and UDP, IPv4 and IPv6, to the local pod at its toPort; the client sees the Service address", async () => {
    set({});
    for (const ip of [SVC4, SVC6]) {
      const t = await h.tcp(ip, 53);
      assert.ok(t.ok, JSON.stringify(t));
      assert.match(t.reply, /^local /);
      assert.equal(t.peer, `${ip}:53`);
      for (const mode of ["connected", "unconnected"] as const) {
        const u = await h.udp(ip, 53, mode);
        assert.ok(u.ok, `${ip} ${mode}: ${JSON.stringify(u)}`);
        assert.match(u.reply, /^local /);
        assert.equal(u.from, `${ip}:53`);
      }
    }
  });

  it("an address frontend redirects TCP and UDP, IPv4 and IPv6, to the local pod", async () => {
    for (const ip of [VIP4, VIP6]) {
      const t = await h.tcp(ip, 53);
      assert.ok(t.ok, JSON.stringify(t));
      assert.match(t.reply, /^local /);
      assert.equal(t.peer, `${ip}:53`);
      const u = await h.udp(ip, 53, "unconnected");
      assert.ok(u.ok, JSON.stringify(u));
      assert.match(u.reply, /^local /);
      assert.equal(u.from, `${ip}:53`);
    }
  });

  it("events name the policy, natType localRedirect with the frontend kind's mode, and the toPort", async () => {
    h.events.length = 0;
    await h.tcp(VIP4, 53);
    await h.tcp(SVC6, 53);
    const vip = await waitUntil("the address frontend's event", () =>
      h.events.find((e) => e.originalDestIp === VIP4),
    );
    assert.equal(vip.natType, "localRedirect");
    assert.equal(vip.natMode, "LocalRedirectAddress");
    assert.equal(vip.service, "lrp/test/ns/nld-vip");
    assert.equal(vip.natIp, LOCAL.v4);
    assert.equal(vip.natPort, 5353);
    assert.equal(vip.fallback, undefined);
    const svc = await waitUntil("the Service frontend's event", () =>
      h.events.find((e) => e.originalDestIp === SVC6),
    );
    assert.equal(svc.natMode, "LocalRedirectService");
    assert.equal(svc.service, "lrp/test/ns/nld-svc");
  });

  for (const [what, pod] of [
    ["not ready", { ready: false }],
    ["terminating", { terminating: true }],
    ["removed", "gone"],
  ] as const) {
    it(`the local pod ${what}: the Service takes the connects (TCP and UDP), the address frontend falls back to its Service, and the event says noLocal`, async () => {
      set(pod);
      h.events.length = 0;
      for (const ip of [SVC4, SVC6, VIP4, VIP6]) {
        const t = await h.tcp(ip, 53);
        assert.ok(t.ok, `${ip}: ${JSON.stringify(t)}`);
        assert.match(t.reply, /^svc /, ip);
        assert.equal(t.peer, `${ip}:53`);
        const u = await h.udp(ip, 53, "unconnected");
        assert.ok(u.ok, JSON.stringify(u));
        assert.match(u.reply, /^svc /);
        assert.equal(u.from, `${ip}:53`);
      }
      const ev = await waitUntil("a fallback event", () => h.events.find((e) => e.originalDestIp === SVC4));
      assert.equal(ev.fallback, "noLocal");
      assert.equal(ev.natType, "localRedirect");
      assert.equal(ev.natIp, FALLBACK.v4);
      set({});
    });
  }

  it("an address frontend without a fallback Service refuses at once when there is no local pod", async () => {
    const bare = lrpResource("nld-bare", "address", [{ ip: "169.254.20.11", port: 53, portName: "dns-tcp" }]);
    const none = lrpbResource("nld-bare", "node-1", TO_PORTS, []);
    set({}, [bare, none]);
    h.events.length = 0;
    assert.deepEqual(await h.tcp("169.254.20.11", 53), { ok: false, code: "ECONNREFUSED" });
    const ev = await waitUntil("the refusal", () =>
      h.events.find((e) => e.originalDestIp === "169.254.20.11"),
    );
    assert.equal(ev.failureCode, "noBackend");
    assert.equal(ev.fallback, "noLocal");
    set({});
  });

  it("a pod of another node is never chosen (the agent ignores another node's local backends)", async () => {
    const remote = lrpbResource("nld-svc", "node-2", TO_PORTS, [
      { name: "remote-dns", ips: [REMOTE], uid: "remote" },
    ]);
    set("gone", [remote]);
    const r = await h.tcpMany(SVC4, 53, 20);
    assert.deepEqual(r.replies, { svc: 20 });
    set({});
  });

  it("a rollout of the local pod under a continuous connect loop: not ready → removed → a new pod ready, 0 failed connects", async () => {
    const next = await h.sandbox.startEchoServers([{ name: "local-next", ip: LOCAL_NEXT.v4, port: 5353 }]);
    try {
      const loop = await startLoop(SVC4, 53);
      set({ ready: false });
      await pause();
      set("gone");
      await pause();
      set({ ips: [LOCAL_NEXT.v4, LOCAL_NEXT.v6] });
      await pause();
      const r = await stopLoop(loop);
      assert.equal(r.failed, 0, JSON.stringify(r.errors));
      assert.ok((r.replies.svc ?? 0) > 0, `the Service took over meanwhile: ${JSON.stringify(r.replies)}`);
      assert.ok((r.replies["local-next"] ?? 0) > 0, `the new pod took over: ${JSON.stringify(r.replies)}`);
    } finally {
      set({});
      await h.core.whenRetired();
      await next.stop();
    }
  });

  it("an in-place update (toPort changed) under a continuous connect loop: 0 failed connects", async () => {
    const loop = await startLoop(SVC4, 53);
    for (let i = 0; i < 20; i++) {
      set({ toPort: i % 2 === 0 ? 5354 : 5353 });
      await pause(30);
    }
    const r = await stopLoop(loop);
    assert.equal(r.failed, 0, JSON.stringify(r.errors));
    assert.ok((r.replies["local-5354"] ?? 0) > 0 && (r.replies.local ?? 0) > 0, JSON.stringify(r.replies));
    set({});
  });

  it("QoS: over 5 redirects a second, the rest of that second goes to the Service, and the events say qos", async () => {
    h.events.length = 0;
    const t0 = Date.now();
    const r = await h.tcpMany(QOS_SVC, 53, 50);
    const seconds = Math.ceil((Date.now() - t0) / 1000) + 1; // windows the loop may have touched
    assert.equal(r.failed, 0, JSON.stringify(r.errors));
    const local = r.replies.local ?? 0;
    const svc = r.replies.svc ?? 0;
    assert.equal(local + svc, 50);
    // approximate under concurrency: at most about one more per CPU and window
    assert.ok(
      local >= 1 && local <= seconds * (5 + os.availableParallelism()),
      `redirected ${local} in ${seconds} window(s)`,
    );
    assert.ok(svc >= 50 - seconds * (5 + os.availableParallelism()), JSON.stringify(r.replies));
    const events = await waitUntil("50 events", () => {
      const evs = h.events.filter((e) => e.originalDestIp === QOS_SVC);
      return evs.length >= 50 ? evs : undefined;
    });
    assert.equal(events.filter((e) => e.fallback === "qos").length, svc);
    assert.equal(events.filter((e) => e.fallback === undefined && e.natIp === LOCAL.v4).length, local);
  });

  it("skipRedirectFromBackend: a client in the selected pod's cgroup (or a container under it) goes to the Service, others are redirected", async () => {
    h.events.length = 0;
    const fromPod = await probeIn(podCgroup, SKIP_SVC, 53);
    assert.ok(fromPod.ok, JSON.stringify(fromPod));
    assert.match(String(fromPod.reply), /^svc /);
    // a container cgroup made after the agent looked: found through its ancestor, the pod's
    const container = path.join(podCgroup, "ctr-1");
    fs.mkdirSync(container);
    madeCgroups.push(container);
    const fromContainer = await probeIn(container, SKIP_SVC, 53);
    assert.match(String(fromContainer.reply), /^svc /);
    const other = await h.tcp(SKIP_SVC, 53);
    assert.ok(other.ok, JSON.stringify(other));
    assert.match(other.reply, /^local /);
    const ev = await waitUntil("the skip event", () =>
      h.events.find((e) => e.originalDestIp === SKIP_SVC && e.fallback === "fromBackend"),
    );
    assert.equal(ev.natIp, FALLBACK.v4);
    // the pod's own connects to a policy without the flag are redirected
    const notSkipped = await probeIn(podCgroup, SVC4, 53);
    assert.match(String(notSkipped.reply), /^local /);
  });

  /** a connect loop in the sandbox, until stopped */
  async function startLoop(ip: string, port: number): Promise<Proc> {
    const p = watchProcess(
      h.sandbox.spawnInCgroup(process.execPath, [
        path.join(REPO, "test/kit/connect-loop.ts"),
        ip,
        String(port),
      ]),
    );
    await p.waitFor(/started/);
    return p;
  }

  async function stopLoop(p: Proc): Promise<{
    ok: number;
    failed: number;
    replies: Record<string, number>;
    errors: Record<string, number>;
  }> {
    await p.stop();
    const m = p.output().match(/^\{.*\}$/m);
    assert.ok(m, p.output());
    return JSON.parse(m[0]);
  }

  /** tcp-probe.ts in the sandbox's namespace, from the given cgroup */
  async function probeIn(cgroup: string, ip: string, port: number): Promise<{ ok: boolean; reply?: string }> {
    const script = `echo $$ > "${cgroup}/cgroup.procs" && exec nsenter --net=/run/netns/${h.sandbox.netns} "$@"`;
    const p = watchProcess(
      spawn(
        "sh",
        ["-c", script, "sh", process.execPath, path.join(REPO, "test/kit/tcp-probe.ts"), ip, String(port)],
        { stdio: ["ignore", "pipe", "pipe"] },
      ),
    );
    const m = await p.waitFor(/^\{.*\}$/m, 20_000);
    await p.stop();
    return JSON.parse(m[0]);
  }
});

function pause(ms = 150): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
