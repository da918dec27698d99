/**
 * Two hub replicas that share nothing but a NATS JetStream KV bucket (each
 * has its own state directory): a join token created through one admits an
 * agent at the other, the credential one issued is honoured by the other,
 * and a revocation through one cuts the agent off at the other. The bucket
 * holds the credential signing key only sealed, under a key-encryption key
 * both replicas are given and the bucket does not hold.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { KvState } from "../../services/hub/src/state/hub-state.ts";
import { serviceYaml } from "../kit/k8s-yaml.ts";
import { REPO, startNode, waitUntil } from "../kit/proc.ts";
import { HUB, Stack } from "../kit/stack.ts";

describe("hub replicas sharing state through JetStream KV", () => {
  let stack: Stack;
  let stateA: string;
  let stateB: string;
  let hubA: string;
  let hubB: string;
  let kekFile: string;
  let natsUrl: string;
  const cli = (stateDir: string, ...args: string[]) =>
    execFileSync(process.execPath, [path.join(REPO, HUB), ...args, "--state-dir", stateDir], {
      encoding: "utf8",
    });

  before(async () => {
    stack = Stack.create("kvstate");
    const nats = await stack.startNats({ jetstream: true });
    natsUrl = nats.url;
    kekFile = path.join(stack.stateDir, "signing.kek");
    fs.writeFileSync(kekFile, randomBytes(32).toString("base64"), { mode: 0o600 });
    const dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "a.yaml"), serviceYaml("api", "10.96.55.1", "198.18.55.11"));
    await stack.startBackend("api", "198.18.55.11", 8080);
    stateA = path.join(stack.stateDir, "hub-a");
    stateB = path.join(stack.stateDir, "hub-b");
    const shared = ["--state-nats", nats.url, "--signing-key-kek-file", kekFile];
    await stack.startHub([`prod=dir:${dir}`], ["--state-dir", stateA, ...shared]);
    hubA = stack.hubAddress;
    await stack.startHub([`prod=dir:${dir}`], ["--state-dir", stateB, ...shared]);
    hubB = stack.hubAddress;
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("admits an agent at one replica with a token created through the other", async () => {
    const token = cli(stateA, "token", "create", "--cluster", "prod").trim();
    assert.match(cli(stateB, "token", "list"), new RegExp(token.split(".")[0]!), "B lists A's token");
    assert.equal(fs.existsSync(path.join(stateA, "state.json")), false, "nothing kept in a local file");
    const agent = await stack.startAgent(token, [], [hubB]);
    await agent.waitFor(/"msg":"agent credential received"/);
    await waitUntil("the ClusterIP to resolve", async () =>
      (await stack.probe("10.96.55.1", 80)).ok ? true : undefined,
    );
  });

  it("honours at one replica the credential the other issued", async () => {
    await stack.agent!.stop();
    const agent = await stack.startAgent("", [], [hubA]);
    await agent.waitFor(/"msg":"joined hub"/);
    // the hub's log line may come a little after its Welcome (pino writes asynchronously)
    await stack.hubs[0]!.waitFor(/"node":"node-1"[^\n]*"auth":"credential"[^\n]*"agent joined"/);
  });

  it("cuts an agent off at one replica when it is revoked through the other", async () => {
    assert.match(
      cli(stateB, "agent", "revoke", "prod/node-1"),
      /revoked prod\/node-1; 0 stream\(s\) cut off/,
    );
    await stack.agent!.waitFor(/agent prod\/node-1 was revoked/);
  });

  it("keeps the signing key sealed in the bucket; a replica without the key-encryption key does not start", async () => {
    const kv = await KvState.open([natsUrl]);
    try {
      const key = kv.get<Record<string, unknown>>("signing-key");
      assert.equal(key?.["alg"], "aes-256-gcm");
      assert.doesNotMatch(JSON.stringify(kv.list("")), /PRIVATE KEY/);
    } finally {
      await kv.close();
    }
    const bare = startNode(HUB, [
      "serve",
      "--cluster",
      `prod=dir:${path.join(stack.stateDir, "cluster")}`,
      "--listen",
      "127.0.0.1:0",
      "--state-dir",
      path.join(stack.stateDir, "hub-c"),
      "--state-nats",
      natsUrl,
    ]);
    const code = await new Promise<number | null>((resolve) => bare.cp.on("close", resolve));
    assert.equal(code, 2, bare.output());
    assert.match(
      bare.output(),
      /give every hub replica \(and the CLI\) the same key-encryption key with --signing-key-kek-file FILE or SWITCHYARD_HUB_KEK/,
    );
  });
});
