/**
 * Kernel tests of the data plane: the real BPF programs in a sandbox cgroup,
 * clients in a network namespace with no route out (a missed translation
 * fails locally), TCP and UDP, IPv4, IPv6 and v4-mapped sockets.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NatMode } from "@switchyard/proto/assignment";
import { DatapathHarness, serviceResource, sliceResource } from "../kit/datapath-harness.ts";
import { waitUntil } from "../kit/proc.ts";

const NODE_IP = "198.18.9.1";

describe("socket-level load balancing in the kernel", () => {
  let h: DatapathHarness;
  before(async () => {
    h = DatapathHarness.create("dp", { nodeAddresses: [NODE_IP] });
    h.sandbox.addAddress(NODE_IP);
    await h.startBackend("a", "198.18.9.11", 8080);
    await h.startBackend("b", "198.18.9.12", 8080);
    await h.startBackend("v6a", "fd00:18::11", 8080);
    const errors = h.assign(baseline());
    assert.deepEqual(errors, []);
  });
  after(() => h?.cleanup());

  function baseline() {
    return [
      serviceResource("web", [
        { ip: "10.96.9.10", port: 80 },
        { ip: "", port: 30080, mode: NatMode.NAT_MODE_NODE_PORT },
        { ip: "203.0.113.9", port: 80, mode: NatMode.NAT_MODE_LOAD_BALANCER },
        { ip: "192.0.2.99", port: 8000, mode: NatMode.NAT_MODE_EXTERNAL_IP },
      ]),
      sliceResource("web", 8080, [{ ip: "198.18.9.11" }]),
      serviceResource("dns", [{ ip: "10.96.9.53", port: 53, protocol: "UDP" }]),
      sliceResource("dns", 8080, [{ ip: "198.18.9.12" }], "UDP"),
      serviceResource("web6", [
        { ip: "fd00:96::10", port: 80 },
        { ip: "fd00:96::10", port: 53, protocol: "UDP", portName: "u" },
      ]),
      sliceResource("web6", 8080, [{ ip: "fd00:18::11" }]),
      sliceResource("web6", 8080, [{ ip: "fd00:18::11" }], "UDP", "u"),
    ];
  }

  it("TCP to a ClusterIP reaches the backend, and getpeername reports the service address", async () => {
    const r = await h.tcp("10.96.9.10", 80);
    assert.ok(r.ok, JSON.stringify(r));
    assert.match(r.reply, /^a /);
    assert.equal(r.peer, "10.96.9.10:80");
  });

  it("an IPv6 socket connecting to a v4-mapped ClusterIP is translated (connect6)", async () => {
    const r = await h.tcp("::ffff:10.96.9.10", 80);
    assert.ok(r.ok, JSON.stringify(r));
    assert.match(r.reply, /^a /);
    assert.equal(r.peer, "::ffff:10.96.9.10:80");
  });

  it("TCP to an IPv6 ClusterIP reaches an IPv6 backend", async () => {
    const r = await h.tcp("fd00:96::10", 80);
    assert.ok(r.ok, JSON.stringify(r));
    assert.match(r.reply, /^v6a /);
    assert.equal(r.peer, "fd00:96::10:80");
  });

  it("unconnected UDP: every datagram is translated (sendmsg) and the reply comes from the service address (recvmsg)", async () => {
    const r = await h.udp("10.96.9.53", 53, "unconnected");
    assert.ok(r.ok, JSON.stringify(r));
    assert.match(r.reply, /^b /);
    assert.equal(r.from, "10.96.9.53:53");
  });

  it("connected UDP: getpeername and the reply source are the service address", async () => {
    const r = await h.udp("10.96.9.53", 53, "connected");
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.peer, "10.96.9.53:53");
    assert.equal(r.from, "10.96.9.53:53");
  });

  it("IPv6 UDP, unconnected and connected", async () => {
    const u = await h.udp("fd00:96::10", 53, "unconnected");
    assert.ok(u.ok, JSON.stringify(u));
    assert.match(u.reply, /^v6a /);
    assert.equal(u.from, "fd00:96::10:53");
    const c = await h.udp("fd00:96::10", 53, "connected");
    assert.ok(c.ok, JSON.stringify(c));
    assert.equal(c.peer, "fd00:96::10:53");
  });

  it("NodePort answers on the node's address and on loopback", async () => {
    for (const ip of [NODE_IP, "127.0.0.1"]) {
      const r = await h.tcp(ip, 30080);
      assert.ok(r.ok, `${ip}: ${JSON.stringify(r)}`);
      assert.match(r.reply, /^a /);
      assert.equal(r.peer, `${ip}:30080`);
    }
  });

  it("LoadBalancer IP and external IP frontends resolve with the service port", async () => {
    for (const [ip, port] of [
      ["203.0.113.9", 80],
      ["192.0.2.99", 8000],
    ] as const) {
      const r = await h.tcp(ip, port);
      assert.ok(r.ok, `${ip}: ${JSON.stringify(r)}`);
      assert.match(r.reply, /^a /);
    }
  });

  it("a process outside the agent's cgroup is not translated", async () => {
    const r = await h.tcp("10.96.9.10", 80, false);
    assert.deepEqual(r, { ok: false, code: "ENETUNREACH" });
  });

  it("emits an event per translation with hook, family, addresses and the service name", async () => {
    h.events.length = 0;
    await h.tcp("fd00:96::10", 80);
    const ev = await waitUntil("the connect6 event", () => h.events.find((e) => e.hook === "connect6"));
    assert.equal(ev.service, "test/ns/web6");
    assert.equal(ev.isIpv4, false);
    assert.equal(ev.originalDestIp, "fd00:96::10");
    assert.equal(ev.natIp, "fd00:18::11");
    assert.equal(ev.natPort, 8080);
  });

  it("Local traffic policy with no local backend: connect refused at once, and the event says why", async () => {
    h.assign([
      ...baseline(),
      serviceResource("local", [{ ip: "10.96.9.77", port: 80 }], { internalTrafficLocal: true }),
      sliceResource("local", 8080, [{ ip: "198.18.9.12", node: "node-2" }]),
    ]);
    h.events.length = 0;
    const r = await h.tcp("10.96.9.77", 80);
    assert.deepEqual(r, { ok: false, code: "ECONNREFUSED" });
    const ev = await waitUntil("the refusal event", () =>
      h.events.find((e) => e.originalDestIp === "10.96.9.77"),
    );
    assert.equal(ev?.failureCode, "noLocalBackend");
    assert.equal(ev?.isSuccess, false);
  });

  it("Local traffic policy with a local backend uses only it", async () => {
    h.assign([
      ...baseline(),
      serviceResource("local", [{ ip: "10.96.9.77", port: 80 }], { internalTrafficLocal: true }),
      sliceResource("local", 8080, [
        { ip: "198.18.9.11", node: "node-2" },
        { ip: "198.18.9.12", node: "node-1" },
      ]),
    ]);
    const r = await h.tcpMany("10.96.9.77", 80, 20);
    assert.deepEqual(r.replies, { b: 20 });
  });

  it("a Service with no ready backend refuses connects instead of leaking them", async () => {
    h.assign([...baseline(), serviceResource("empty", [{ ip: "10.96.9.88", port: 80 }])]);
    assert.deepEqual(await h.tcp("10.96.9.88", 80), { ok: false, code: "ECONNREFUSED" });
  });

  it("ClientIP affinity sticks to one backend, and moves on when that backend is removed", async () => {
    const aff = (ips: string[]) => [
      ...baseline(),
      serviceResource("sticky", [{ ip: "10.96.9.99", port: 80 }], { affinityTimeoutSeconds: 300 }),
      sliceResource(
        "sticky",
        8080,
        ips.map((ip) => ({ ip })),
      ),
    ];
    h.assign(aff(["198.18.9.11", "198.18.9.12"]));
    const first = await h.tcpMany("10.96.9.99", 80, 30);
    assert.equal(
      Object.keys(first.replies).length,
      1,
      `one backend for the whole session: ${JSON.stringify(first.replies)}`,
    );
    const pinned = Object.keys(first.replies)[0]!;
    const survivor = pinned === "a" ? "198.18.9.12" : "198.18.9.11";
    h.assign(aff([survivor]));
    const next = await h.tcpMany("10.96.9.99", 80, 10);
    assert.equal(next.failed, 0);
    assert.equal(next.replies[pinned], undefined, "the removed backend is never chosen again");
    assert.equal(next.ok, 10);
  });

  it("replaces a backend set atomically: no connect fails while sets are swapped", async () => {
    const sets = [["198.18.9.11"], ["198.18.9.12"], ["198.18.9.11", "198.18.9.12"]];
    const loop = h.tcpMany("10.96.9.10", 80, 400);
    for (let i = 0; i < 300; i++) {
      h.assign([
        ...baseline().filter((r) => r.name !== "eps/test/ns/web-tcp"),
        sliceResource(
          "web",
          8080,
          sets[i % 3]!.map((ip) => ({ ip })),
        ),
      ]);
      await new Promise((r) => setImmediate(r));
    }
    const r = await loop;
    assert.equal(r.failed, 0, JSON.stringify(r.errors));
    assert.equal(r.ok, 400);
    h.assign(baseline());
  });
});
