/** The event history stream on a real nats-server in operator mode (JetStream on for the account through its JWT). */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, credsAuthenticator, type NatsConnection, nanos } from "@nats-io/transport-node";
import { HISTORY_STREAM } from "@switchyard/lib/event-subjects";
import { silentLogger } from "@switchyard/lib/log";
import { type NatsServer, startNatsServer } from "@switchyard/testkit/nats";
import { NatsAccounts } from "../auth/nats-accounts.ts";
import { parseKek } from "../auth/signing-key.ts";
import { FileState } from "../state/hub-state.ts";
import { DEFAULT_EVENTS, parseEventsConfig } from "./events-config.ts";
import { applyHistoryStream } from "./history.ts";
import { HubEvents } from "./hub-events.ts";

describe("event history stream", () => {
  let dir: string;
  let nats: NatsServer;
  let nc: NatsConnection;
  let accounts: NatsAccounts;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-history-"));
    const kek = parseKek("b".repeat(64), "test");
    assert.ok(kek.ok);
    ({ accounts } = await NatsAccounts.init(new FileState(dir), kek.value));
    nats = await startNatsServer({ jetstream: true, config: accounts.serverConfig() });
    nc = await connect({
      servers: nats.url,
      authenticator: credsAuthenticator(new TextEncoder().encode(await accounts.hubCreds("test"))),
    });
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("is created, left alone when its limits hold, and updated when they change", async () => {
    const jsm = await jetstreamManager(nc);
    assert.equal(await applyHistoryStream(jsm, { maxAgeMs: 3_600_000, maxBytes: 1 << 30 }), "created");
    assert.equal(await applyHistoryStream(jsm, { maxAgeMs: 3_600_000, maxBytes: 1 << 30 }), "unchanged");
    assert.equal(await applyHistoryStream(jsm, { maxAgeMs: 600_000, maxBytes: 64 << 20 }), "updated");
    const cfg = (await jsm.streams.info(HISTORY_STREAM)).config;
    assert.equal(cfg.max_age, nanos(600_000));
    assert.equal(cfg.max_bytes, 64 << 20);
    assert.deepEqual(cfg.subjects, ["switchyard.nat.>"]);
    assert.equal(await applyHistoryStream(jsm, { maxAgeMs: 600_000, maxBytes: 64 << 20 }), "unchanged");
    // events published by anyone in the account land in it
    const js = jsm.jetstream();
    await js.publish("switchyard.nat.east.n1.demo.web", "{}");
    assert.equal((await jsm.streams.info(HISTORY_STREAM)).state.messages, 1);
  });

  it("the hub, as its own user of the account, sets the limits at start and follows a reload's", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(HISTORY_STREAM).catch(() => {});
    const settings = {
      ...DEFAULT_EVENTS,
      nats: [nats.url],
      historyMaxAgeMs: 120_000,
      historyMaxBytes: 32 << 20,
    };
    const ev = HubEvents.start(settings, () => accounts, "hub-test", silentLogger());
    try {
      await ev.connecting;
      await ev.settled();
      assert.equal((await jsm.streams.info(HISTORY_STREAM)).config.max_age, nanos(120_000));
      ev.apply({ ...settings, historyMaxBytes: 48 << 20 });
      await ev.settled();
      assert.equal((await jsm.streams.info(HISTORY_STREAM)).config.max_bytes, 48 << 20);
    } finally {
      await ev.close();
    }
  });

  it("limits come from the config file's events mapping, checked", () => {
    const r = parseEventsConfig(
      { historyMaxAge: "30m", historyMaxBytes: "512MiB", nats: "tls://n:4222" },
      "hub.yaml",
    );
    assert.deepEqual(r, {
      ok: true,
      value: { historyMaxAgeMs: 1_800_000, historyMaxBytes: 512 << 20, nats: ["tls://n:4222"] },
    });
    const bad = parseEventsConfig({ historyMaxBytes: "12" }, "hub.yaml");
    assert.ok(!bad.ok);
    assert.match(bad.error, /hub\.yaml: events\.historyMaxBytes must be a size of at least 1MiB/);
    const unknown = parseEventsConfig({ history: 1 }, "hub.yaml");
    assert.ok(!unknown.ok);
    assert.match(unknown.error, /unknown field "history"/);
  });
});
