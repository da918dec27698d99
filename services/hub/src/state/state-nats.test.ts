/**
 * The shared state's NATS connection: settings from flags and the config
 * file; and the hub-state user `nats init --state-creds-out` writes, against
 * a real nats-server in operator mode with JetStream: it does everything
 * KvState does on the hubs' bucket, and nothing else.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, credsAuthenticator } from "@nats-io/transport-node";
import { makeCa, makeServerCert } from "@switchyard/testkit/certs";
import { type NatsServer, startNatsServer } from "@switchyard/testkit/nats";
import { NatsAccounts } from "../auth/nats-accounts.ts";
import { parseKek } from "../auth/signing-key.ts";
import { FileState, KvState, STATE_BUCKET } from "./hub-state.ts";
import { loadStateNatsAuth, parseStateConfig, resolveStateNats } from "./state-nats.ts";

const kek = (() => {
  const k = parseKek("b".repeat(64), "test");
  assert.ok(k.ok);
  return k.value;
})();

const until = async (what: string, f: () => boolean) => {
  for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(f(), what);
};

describe("state NATS settings", () => {
  it("flags win over the config file's state: mapping", () => {
    const file = parseStateConfig(
      { nats: "nats://a:4222", creds: "/etc/s.creds", tlsCa: "/etc/ca.crt", tlsServerName: "n" },
      "hub.yaml",
    );
    assert.ok(file.ok);
    const r = resolveStateNats(file.value, { "state-nats": [], "state-nats-creds": "/x.creds" });
    assert.deepEqual(r, {
      ok: true,
      value: { servers: ["nats://a:4222"], credsFile: "/x.creds", tlsCa: "/etc/ca.crt", tlsServerName: "n" },
    });
  });

  it("refuses unknown fields, and creds or TLS without a server", () => {
    const bad = parseStateConfig({ nats: "nats://a:4222", cred: "x" }, "hub.yaml");
    assert.equal(
      !bad.ok && bad.error,
      'hub.yaml: state: unknown field "cred" (known: nats, creds, tlsCa, tlsServerName)',
    );
    const lone = resolveStateNats(undefined, { "state-nats": [], "state-nats-creds": "/x.creds" });
    assert.equal(
      !lone.ok && lone.error,
      "--state-nats-creds needs --state-nats URL (the NATS that holds the shared state)",
    );
  });

  it("names the flag of a creds file that is missing or not a .creds file", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-state-creds-"));
    try {
      const missing = loadStateNatsAuth({ servers: ["nats://a"], credsFile: path.join(dir, "none") });
      assert.match(!missing.ok ? missing.error : "", /^--state-nats-creds .*none: ENOENT/);
      fs.writeFileSync(path.join(dir, "key.pem"), "-----BEGIN PRIVATE KEY-----\n");
      const other = loadStateNatsAuth({ servers: ["nats://a"], credsFile: path.join(dir, "key.pem") });
      assert.match(!other.ok ? other.error : "", /key\.pem: not a NATS \.creds file/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the hub-state NATS user (operator mode, JetStream)", () => {
  let dir: string;
  let nats: NatsServer;
  let creds: Uint8Array;
  let accounts: NatsAccounts;
  const withCreds = (c: string | Uint8Array) =>
    connect({
      servers: nats.url,
      authenticator: credsAuthenticator(typeof c === "string" ? new TextEncoder().encode(c) : c),
      reconnect: false,
    });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-state-user-"));
    accounts = (await NatsAccounts.init(new FileState(dir), kek)).accounts;
    creds = new TextEncoder().encode(await accounts.stateCreds(STATE_BUCKET));
    nats = await startNatsServer({ jetstream: true, config: accounts.serverConfig() });
  });
  after(async () => {
    await nats?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("never expires and may publish on no event subject", () => {
    const text = new TextDecoder().decode(creds);
    const jwt = /-----BEGIN NATS USER JWT-----\s*\n\s*(\S+)/.exec(text)![1]!;
    const claims = JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()) as {
      exp?: number;
      nats: { pub: { allow: string[] } };
    };
    assert.equal(claims.exp, undefined);
    assert.ok(!claims.nats.pub.allow.some((s) => s.startsWith("switchyard.")));
  });

  it("creates the bucket and does every KvState operation; a second hub sees the writes", async () => {
    const a = await KvState.open([nats.url], STATE_BUCKET, { creds });
    const b = await KvState.open([nats.url], STATE_BUCKET, { creds });
    try {
      await a.put("token/t1", { cluster: "prod" });
      assert.equal(await a.create("token/t2", { n: 1 }), true);
      assert.equal(await b.create("token/t2", { n: 2 }), false);
      await a.put("token/t2", { n: 3 });
      await a.forgetHistory("token/t2");
      await a.delete("token/t1");
      await until(
        "b sees a's writes",
        () => b.get("token/t1") === undefined && b.get<{ n: number }>("token/t2")?.n === 3,
      );
    } finally {
      await a.close();
      await b.close();
    }
    // a hub started later loads what is there
    const c = await KvState.open([nats.url], STATE_BUCKET, { creds });
    try {
      assert.deepEqual(c.list("token/"), [["token/t2", { n: 3 }]]);
    } finally {
      await c.close();
    }
  });

  it("cannot reach another bucket, the event history or the event subjects", async () => {
    await assert.rejects(() => KvState.open([nats.url], "other", { creds }), /permission|authoriz/i);
    const nc = await withCreds(creds);
    try {
      const jsm = await jetstreamManager(nc);
      await assert.rejects(
        () => jsm.streams.add({ name: "EVIL", subjects: ["switchyard.nat.>"] }),
        /permission|timeout|no responders/i,
      );
      await assert.rejects(() => jsm.streams.list().next(), /permission|timeout|no responders/i);
    } finally {
      await nc.close();
    }
    // the hubs' own (events) user still sees the account's streams: the bucket's is there
    const hub = await withCreds(await accounts.hubCreds("test"));
    try {
      const names = await (await jetstreamManager(hub)).streams.names().next();
      assert.deepEqual(names, [`KV_${STATE_BUCKET}`]);
      assert.ok(await new Kvm(hub).open(STATE_BUCKET));
    } finally {
      await hub.close();
    }
  });

  it("a hub without the user is refused", async () => {
    await assert.rejects(() => KvState.open([nats.url], STATE_BUCKET), /authorization/i);
  });
});

describe("the state over TLS (--state-nats-tls-ca)", () => {
  it("opens the bucket through a server whose certificate the CA signs, under the name given", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-state-tls-"));
    const pki = makeCa(dir);
    const nats = await startNatsServer({
      jetstream: true,
      tls: makeServerCert(pki, "nats-state", { dns: ["nats.internal"] }),
    });
    try {
      const auth = loadStateNatsAuth({
        servers: [nats.url],
        tlsCa: pki.caCert,
        tlsServerName: "nats.internal",
      });
      assert.ok(auth.ok);
      const kv = await KvState.open([nats.url], STATE_BUCKET, auth.value);
      try {
        await kv.put("token/t", { over: "tls" });
        assert.deepEqual(kv.get("token/t"), { over: "tls" });
      } finally {
        await kv.close();
      }
      // without the CA the server's certificate is not trusted
      await assert.rejects(() => KvState.open([nats.url], STATE_BUCKET), /certificate|self[- ]signed/i);
    } finally {
      await nats.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
