/**
 * `switchyard events`, run as a user runs it (bin/switchyard), against a
 * real nats-server in operator mode set up with `switchyard-hub nats init`
 * and a subscribe-only .creds from `switchyard-hub nats-creds create`:
 * replay of the history stream with filters, then live; a live table; a
 * cluster outside the creds refused; TLS with and without the CA.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { HISTORY_STREAM } from "@switchyard/lib/event-subjects";
import { NatsAccounts } from "../../services/hub/src/auth/nats-accounts.ts";
import { parseKek } from "../../services/hub/src/auth/signing-key.ts";
import { applyHistoryStream } from "../../services/hub/src/events/history.ts";
import { FileState } from "../../services/hub/src/state/hub-state.ts";
import { encodeNatEvent } from "../../services/nodeagent/src/events/event-codec.ts";
import { computeEventSubject, type NatEvent } from "../../services/nodeagent/src/events/nat-event.ts";
import { sampleNatEvent } from "../../services/nodeagent/src/testing/nat-event.ts";
import { makeCa, makeServerCert } from "../kit/certs.ts";
import { startNatsServer } from "../kit/nats.ts";
import { type Proc, REPO, waitUntil, watchProcess } from "../kit/proc.ts";

const KEK = "c".repeat(64);
const SWITCHYARD = path.join(REPO, "bin/switchyard");
const HUB = path.join(REPO, "bin/switchyard-hub");

function event(over: Partial<NatEvent>): NatEvent {
  return sampleNatEvent({ time: new Date().toISOString(), ...over });
}

const failed = (over: Partial<NatEvent>) =>
  event({ isSuccess: false, natIp: "", natPort: 0, failureCode: "noBackend", ...over });

async function publish(nc: NatsConnection, ...events: NatEvent[]): Promise<void> {
  for (const e of events) nc.publish(computeEventSubject("switchyard.nat", e), encodeNatEvent(e));
  await nc.flush();
}

function follow(args: string[]): Proc {
  return watchProcess(spawn(SWITCHYARD, ["events", ...args], { stdio: ["ignore", "pipe", "pipe"] }));
}

/** The output's JSON lines, parsed. */
const jsonLines = (p: Proc): NatEvent[] =>
  p
    .output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as NatEvent);

describe("switchyard events (operator mode, JetStream history)", () => {
  let dir: string;
  let nats: Awaited<ReturnType<typeof startNatsServer>>;
  let hub: NatsConnection;
  let credsFile: string;
  const procs: Proc[] = [];
  const hubCli = (...args: string[]) =>
    execFileSync(HUB, [...args, "--state-dir", dir], {
      encoding: "utf8",
      env: { ...process.env, SWITCHYARD_HUB_KEK: KEK },
    });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-follow-"));
    const conf = path.join(dir, "nats-auth.conf");
    hubCli("nats", "init", "--out", conf);
    nats = await startNatsServer({ jetstream: true, config: fs.readFileSync(conf, "utf8") });
    credsFile = path.join(dir, "east.creds");
    hubCli(
      "nats-creds",
      "create",
      "--subscribe",
      "switchyard.nat.east.>",
      "--expires",
      "1h",
      "--out",
      credsFile,
    );
    assert.equal(fs.statSync(credsFile).mode & 0o777, 0o600);
    const kek = parseKek(KEK, "test");
    assert.ok(kek.ok);
    const accounts = NatsAccounts.open(new FileState(dir), kek.value);
    assert.ok(accounts, "nats init stored the accounts");
    hub = await connect({
      servers: nats.url,
      authenticator: credsAuthenticator(new TextEncoder().encode(await accounts.hubCreds("test"))),
    });
    const jsm = await jetstreamManager(hub);
    assert.equal(await applyHistoryStream(jsm, { maxAgeMs: 3_600_000, maxBytes: 64 << 20 }), "created");
    // history: what agents published before anyone followed
    await publish(
      hub,
      event({ node: "n1", service: "east/demo/web" }),
      failed({ node: "n1", service: "east/demo/dns", protocol: "udp", hook: "sendmsg4" }),
      failed({ node: "n2", service: "east/shop/cart", failureCode: "backendMissing" }),
      failed({ cluster: "west", node: "n3", service: "west/demo/web" }),
    );
    await waitUntil("4 events in the history", async () =>
      (await jsm.streams.info(HISTORY_STREAM)).state.messages === 4 ? true : undefined,
    );
  });
  after(async () => {
    for (const p of procs) await p.stop();
    await hub?.close();
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("replays the history with filters, then carries on live", async () => {
    const p = follow([
      "--server",
      nats.url,
      "--creds",
      credsFile,
      "--cluster",
      "east",
      "--since",
      "1h",
      "--result",
      "failures",
      "--json",
    ]);
    procs.push(p);
    await p.waitFor(/switchyard: following switchyard\.nat\.east\.> from .*, then live/);
    await p.waitFor(/"service":"east\/shop\/cart"/);
    await publish(
      hub,
      event({ node: "n2", service: "east/demo/ok" }),
      failed({ node: "n2", service: "east/demo/late" }),
    );
    await p.waitFor(/"service":"east\/demo\/late"/);
    assert.deepEqual(
      jsonLines(p).map((e) => `${e.cluster}/${e.node} ${e.service} ${e.failureCode}`),
      [
        "east/n1 east/demo/dns noBackend",
        "east/n2 east/shop/cart backendMissing",
        "east/n2 east/demo/late noBackend",
      ],
    );
    await p.stop();
  });

  it("follows live as a table, one line per event, filtered by node and protocol", async () => {
    const p = follow([
      "--server",
      nats.url,
      "--creds",
      credsFile,
      "--cluster",
      "east",
      "--node",
      "n1",
      "--protocol",
      "tcp",
    ]);
    procs.push(p);
    await p.waitFor(/following switchyard\.nat\.east\.n1\.> live/);
    await publish(
      hub,
      event({ node: "n2", service: "east/demo/other" }),
      event({ node: "n1", protocol: "udp", hook: "sendmsg4", service: "east/demo/dns" }),
      failed({ node: "n1", service: "east/demo/gone", originalDestIp: "10.96.0.99" }),
      event({ node: "n1", service: "east/demo/web", pid: 4321 }),
    );
    await p.waitFor(/pid 4321/);
    const lines = p.output().split("\n");
    const header = lines.findIndex((l) =>
      /^TIME\s+NODE\s+PROTO\s+CLIENT → FRONTEND → BACKEND\s+SERVICE\s+RESULT$/.test(l),
    );
    assert.ok(header >= 0, `a header line in:\n${p.output()}`);
    const rows = lines.slice(header + 1).filter((l) => l.trim() !== "");
    assert.equal(rows.length, 2, rows.join("\n"));
    assert.match(
      rows[0]!,
      /^\S+Z\s+east\/n1\s+TCP\s+pid 1234 → 10\.96\.0\.99:80 → -\s+east\/demo\/gone\s+noBackend$/,
    );
    assert.match(
      rows[1]!,
      /^\S+Z\s+east\/n1\s+TCP\s+pid 4321 → 10\.96\.0\.10:80 → 198\.18\.0\.11:8080\s+east\/demo\/web\s+ok$/,
    );
    await p.stop();
  });

  it("a cluster outside the creds is refused, saying so", async () => {
    const p = follow(["--server", nats.url, "--creds", credsFile, "--cluster", "west", "--since", "1h"]);
    procs.push(p);
    await p.waitFor(/not allowed to read switchyard\.nat\.west\.> from the history .*nats-creds create/);
    assert.equal(await new Promise((r) => p.cp.on("exit", r)), 1);
  });

  it("without creds, no events", async () => {
    const p = follow(["--server", nats.url]);
    procs.push(p);
    await p.waitFor(/not authorized .*give --creds FILE/);
  });
});

describe("switchyard events over TLS", () => {
  let dir: string;
  let nats: Awaited<ReturnType<typeof startNatsServer>>;
  let url: string;
  const procs: Proc[] = [];
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-follow-tls-"));
    const pki = makeCa(dir);
    const cert = makeServerCert(pki, "nats", { dns: ["localhost"] });
    nats = await startNatsServer({ tls: cert });
    // by the certificate's name (Node checks an IP URL against "localhost" when nats.js upgrades to TLS)
    url = nats.url.replace("127.0.0.1", "localhost");
  });
  after(async () => {
    for (const p of procs) await p.stop();
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("with the CA it follows; without it, it says which flag to give", async () => {
    const ca = path.join(dir, "ca.crt");
    const p = follow(["--server", url, "--tls-ca", ca, "--json"]);
    procs.push(p);
    await p.waitFor(/following switchyard\.nat\.> live/);
    const nc = await connect({ servers: url, tls: { ca: fs.readFileSync(ca, "utf8") } });
    await publish(nc, event({ service: "east/demo/tls" }));
    await p.waitFor(/"service":"east\/demo\/tls"/);
    await nc.close();
    await p.stop();
    const bare = follow(["--server", url]);
    procs.push(bare);
    await bare.waitFor(/TLS certificate is not trusted .*give --tls-ca FILE/);
  });
});
