/**
 * NatsEventPublisher against a real nats-server (no BPF): what the server
 * refuses to take is counted as publish_error, never as published, and the
 * publisher connects in the background to a server that is not there yet.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, describe, it } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createRootLogger } from "@switchyard/lib/log";
import { type NatsServer, startNatsServer } from "@switchyard/testkit/nats";
import { waitUntil } from "@switchyard/testkit/proc";
import { checkOutboxBalance } from "./event-outbox.ts";
import { computeEventSubject, type NatEvent } from "./nat-event.ts";
import { NatsLink } from "./nats-connection.ts";
import { NatsEventPublisher } from "./publisher.ts";

const log = createRootLogger("publisher-test", "silent");
const event = { service: "c/ns/web" } as NatEvent;
const natEvent: NatEvent = {
  time: "2026-12-02T08:00:00.000Z",
  cluster: "east",
  node: "n1",
  service: "east/shop/web",
  svcId: 1,
  cgroupId: "1",
  pid: 1,
  isIpv4: true,
  isSuccess: true,
  natType: "NAT",
  natMode: "ServiceClusterIP",
  protocol: "tcp",
  hook: "connect4",
  originalDestIp: "10.96.0.10",
  originalDestPort: 80,
  natIp: "198.18.0.12",
  natPort: 8080,
  failureCode: "none",
};

describe("NatsEventPublisher on a real nats-server", () => {
  const servers: NatsServer[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const c of closers) await c().catch(() => {});
    for (const s of servers) await s.stop();
  });

  /**
   * A nats-server whose clients without credentials are user "agent", which
   * may publish on `allowed` only; a subscriber to every message on it; and a
   * publisher connecting to it.
   */
  async function serverWithPublisher(allowed: string) {
    const server = await startNatsServer({
      config: `accounts { A { users = [{ user: agent, password: x, permissions: { publish: "${allowed}" } }] } }\nno_auth_user: agent\n`,
    });
    servers.push(server);
    const sub: NatsConnection = await connect({ servers: server.url });
    closers.push(() => sub.close());
    const got: Array<{ subject: string; event: NatEvent }> = [];
    const s = sub.subscribe(">");
    (async () => {
      for await (const m of s) got.push({ subject: m.subject, event: m.json<NatEvent>() });
    })().catch(() => {});
    await sub.flush();
    const link = new NatsLink({ servers: [server.url] }, log);
    const publisher = new NatsEventPublisher(link, { bufferBytes: 1 << 20 }, log);
    closers.push(() => publisher.close());
    link.start();
    return { got, link, publisher };
  }

  it("counts messages the server refuses (no right to the subject) as publish_error, the rest as published", async () => {
    const { got, publisher } = await serverWithPublisher("ok.>");
    // 30 events, every third on a subject the user may not publish to; sent before the connection exists
    for (let i = 1; i <= 30; i++) publisher.publish(i % 3 === 0 ? "no.x" : "ok.x", event);
    const c = await waitUntil("every event accounted for", () => {
      const n = publisher.counts();
      return n.held === 0 ? n : undefined;
    });
    assert.equal(c.published, 20);
    assert.equal(c.dropped.publish_error, 10);
    assert.ok(checkOutboxBalance(c));
    await waitUntil("the 20 allowed events to arrive", () => (got.length >= 20 ? true : undefined));
    assert.deepEqual(
      got.map((g) => g.event.seq!).sort((a, b) => a - b),
      Array.from({ length: 30 }, (_, i) => i + 1).filter((i) => i % 3 !== 0),
    );
  });

  it("holds events emitted before the cluster is known, then sends them on the cluster's subject, in order", async () => {
    // like a hub-issued agent user: it may publish on its own cluster and node only
    const { got, link, publisher } = await serverWithPublisher("switchyard.nat.east.n1.>");
    await waitUntil("connected", () => (link.state === "connected" ? true : undefined));
    const full = (cluster: string, pid: number): NatEvent => ({ ...natEvent, cluster, pid });
    // the agent before the hub's Welcome: no cluster in the event, `_` in its subject
    for (let pid = 1; pid <= 5; pid++)
      publisher.publish(computeEventSubject("switchyard.nat", full("", pid)), full("", pid));
    let c = publisher.counts();
    assert.deepEqual([c.held, c.unaddressed, c.published], [5, 5, 0]);
    assert.ok(checkOutboxBalance(c));

    publisher.address("east", (e) => computeEventSubject("switchyard.nat", e));
    publisher.publish(computeEventSubject("switchyard.nat", full("east", 6)), full("east", 6));
    c = await waitUntil("every event accounted for", () => {
      const n = publisher.counts();
      return n.held === 0 ? n : undefined;
    });
    assert.deepEqual([c.published, c.dropped.publish_error, c.unaddressed], [6, 0, 0]);
    assert.ok(checkOutboxBalance(c));
    await waitUntil("the 6 events to arrive", () => (got.length >= 6 ? true : undefined));
    assert.deepEqual(
      got.map((g) => [g.subject, g.event.cluster, g.event.pid, g.event.seq]),
      [1, 2, 3, 4, 5, 6].map((i) => ["switchyard.nat.east.n1.shop.web", "east", i, i]),
    );
  });

  it("starts with no server listening and sends what it held once one is", async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const link = new NatsLink({ servers: [`nats://127.0.0.1:${port}`], maxBackoffMs: 200 }, log);
    const publisher = new NatsEventPublisher(link, { bufferBytes: 1 << 20 }, log);
    closers.push(() => publisher.close());
    link.start();
    for (let i = 0; i < 5; i++) publisher.publish("ok.y", event);
    await waitUntil("a failed connect", () => (link.state === "connecting" ? true : undefined));
    assert.equal(publisher.counts().held, 5);
    // nats-server on that very port
    const { spawn } = await import("node:child_process");
    const { watchProcess } = await import("@switchyard/testkit/proc");
    const proc = watchProcess(
      spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "pipe", "pipe"] }),
    );
    closers.push(() => proc.stop());
    await proc.waitFor(/Listening for client connections/);
    const c = await waitUntil("the held events published", () => {
      const n = publisher.counts();
      return n.published === 5 ? n : undefined;
    });
    assert.equal(c.held, 0);
    assert.equal(link.state, "connected");
  });
});
