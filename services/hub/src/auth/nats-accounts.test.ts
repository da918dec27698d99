/**
 * NATS rights per agent and per subscriber, against a real nats-server in
 * operator mode configured with what `nats init` writes.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { type NatsServer, startNatsServer } from "@switchyard/testkit/nats";
import { FileState } from "../state/hub-state.ts";
import { checkSubscribeSubject, decodeCreds, NatsAccounts } from "./nats-accounts.ts";
import { parseKek } from "./signing-key.ts";

const kek = (() => {
  const k = parseKek("a".repeat(64), "test");
  assert.ok(k.ok);
  return k.value;
})();

const withCreds = (url: string, creds: string) =>
  connect({
    servers: url,
    authenticator: credsAuthenticator(new TextEncoder().encode(creds)),
    reconnect: false,
  });

/** The first error the server reports on this connection (a permissions violation), or undefined within `ms`. */
async function firstServerError(nc: NatsConnection, act: () => void, ms = 2000): Promise<Error | undefined> {
  const it = nc.status()[Symbol.asyncIterator]();
  act();
  const timeout = new Promise<undefined>((r) => setTimeout(() => r(undefined), ms));
  for (;;) {
    const s = await Promise.race([it.next(), timeout]);
    if (s === undefined || s.done) return undefined;
    if (s.value.type === "error") return s.value.error;
  }
}

describe("NATS rights (operator mode)", () => {
  let dir: string;
  let accounts: NatsAccounts;
  let nats: NatsServer;
  let hub: NatsConnection;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-nats-rights-"));
    const state = new FileState(dir);
    const init = await NatsAccounts.init(state, kek);
    assert.equal(init.created, true);
    accounts = init.accounts;
    nats = await startNatsServer({ config: accounts.serverConfig() });
    hub = await withCreds(nats.url, await accounts.hubCreds("test"));
  });
  after(async () => {
    await hub?.close();
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("init again keeps the same operator and accounts", async () => {
    const again = await NatsAccounts.init(new FileState(dir), kek);
    assert.equal(again.created, false);
    assert.equal(again.accounts.serverConfig(), accounts.serverConfig());
  });

  it("an agent publishes on its own subjects", async () => {
    const sub = hub.subscribe("switchyard.nat.>", { max: 1 });
    await hub.flush();
    const agent = await withCreds(
      nats.url,
      await accounts.agentCreds("east", "n1.example", Date.now() + 60_000),
    );
    agent.publish("switchyard.nat.east.n1_example.demo.web", "hello");
    await agent.flush();
    for await (const m of sub) assert.equal(m.subject, "switchyard.nat.east.n1_example.demo.web");
    await agent.close();
  });

  it("an agent cannot publish as another node or subscribe", async () => {
    const agent = await withCreds(nats.url, await accounts.agentCreds("east", "n1", Date.now() + 60_000));
    const seen: string[] = [];
    const sub = hub.subscribe("switchyard.nat.>", { callback: (_e, m) => void seen.push(m.subject) });
    await hub.flush();
    const e = await firstServerError(agent, () => agent.publish("switchyard.nat.east.n2.demo.web", "forged"));
    assert.match(String(e), /permissions violation for publish to "switchyard\.nat\.east\.n2\.demo\.web"/i);
    const e2 = await firstServerError(agent, () =>
      agent.publish("switchyard.nat.west.n1.demo.web", "forged"),
    );
    assert.match(String(e2), /permissions violation for publish/i);
    const peek = agent.subscribe("switchyard.nat.>");
    await assert.rejects(
      (async () => {
        for await (const _ of peek) break;
      })(),
      /permissions violation for subscription/i,
    );
    await hub.flush();
    assert.deepEqual(seen, []);
    sub.unsubscribe();
    await agent.close().catch(() => {});
  });

  it("a client without credentials cannot connect", async () => {
    await assert.rejects(connect({ servers: nats.url, reconnect: false }), /authorization/i);
  });

  it("a subscribe-only credential reads within its subject only and publishes nothing", async () => {
    const creds = await accounts.subscriberCreds(["switchyard.nat.prod.>"], Date.now() + 3_600_000);
    const claims = decodeCreds(creds);
    assert.ok(claims.exp! * 1000 > Date.now());
    const reader = await withCreds(nats.url, creds);
    const got: string[] = [];
    const inScope = reader.subscribe("switchyard.nat.prod.>", {
      callback: (_e, m) => void got.push(m.subject),
    });
    await reader.flush();
    hub.publish("switchyard.nat.prod.n1.demo.web", "a");
    hub.publish("switchyard.nat.dev.n1.demo.web", "b");
    await hub.flush();
    await reader.flush();
    assert.deepEqual(got, ["switchyard.nat.prod.n1.demo.web"]);
    inScope.unsubscribe();
    const outside = reader.subscribe("switchyard.nat.>");
    await assert.rejects(
      (async () => {
        for await (const _ of outside) break;
      })(),
      /permissions violation for subscription to "switchyard\.nat\.>"/i,
    );
    const e = await firstServerError(reader, () => reader.publish("switchyard.nat.prod.n1.demo.web", "x"));
    assert.match(String(e), /permissions violation for publish/i);
    await reader.close().catch(() => {});
  });

  it("subjects for subscribers are checked", () => {
    assert.equal(checkSubscribeSubject("switchyard.nat.prod.>"), undefined);
    assert.equal(checkSubscribeSubject("switchyard.nat.*.n1.>"), undefined);
    assert.match(checkSubscribeSubject(">") ?? "", /outside the event subjects/);
    assert.match(checkSubscribeSubject("switchyard.nat") ?? "", /outside/);
    assert.match(checkSubscribeSubject("switchyard.nat.>.x") ?? "", /not a NATS subject/);
    assert.match(checkSubscribeSubject("switchyard..nat") ?? "", /not a NATS subject/);
  });
});
