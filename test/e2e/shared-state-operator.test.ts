/**
 * One NATS in operator mode for both the hubs' shared state and the NAT
 * events, bootstrapped as docs/hub-replicas.md says: `nats init
 * --state-creds-out` on a file state, nats-server started with what it
 * wrote, `nats init` again with --state-nats and the creds (the accounts go
 * into the shared bucket), then two hubs on that server with
 * --state-nats-creds: a token made through one admits an agent at the
 * other, the agent gets its NATS user and its events flow, and a hub or
 * CLI without the creds is refused with an error that names the flag.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { serviceYaml } from "../kit/k8s-yaml.ts";
import { startNatsServer } from "../kit/nats.ts";
import { REPO, startNode } from "../kit/proc.ts";
import { HUB, Stack } from "../kit/stack.ts";

describe("hub replicas and events on one operator-mode NATS", () => {
  let stack: Stack;
  let stateA: string;
  let stateB: string;
  let hubB: string;
  let boot: string;
  let conf: string;
  let creds: string;
  let shared: string[];
  let stateFlags: string[];
  let url: string;
  let wrongDir: { code: number | null; stderr: string };
  const cli = (stateDir: string, ...args: string[]) => {
    const r = spawnSync(process.execPath, [path.join(REPO, HUB), ...args, "--state-dir", stateDir], {
      encoding: "utf8",
      timeout: 60_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  before(async () => {
    stack = Stack.create("opstate");
    const kekFile = path.join(stack.stateDir, "signing.kek");
    fs.writeFileSync(kekFile, randomBytes(32).toString("base64"), { mode: 0o600 });
    const kek = ["--signing-key-kek-file", kekFile];
    // 1. on a file state: the operator, the accounts, the server's configuration and the hubs' state user
    boot = path.join(stack.stateDir, "bootstrap");
    conf = path.join(stack.stateDir, "nats-auth.conf");
    creds = path.join(stack.stateDir, "hub-state.creds");
    const init = cli(boot, "nats", "init", ...kek, "--out", conf, "--state-creds-out", creds);
    assert.equal(init.code, 0, init.stderr);
    // 2. nats-server in operator mode, JetStream on
    stack.nats = await startNatsServer({ jetstream: true, config: fs.readFileSync(conf, "utf8") });
    url = stack.nats.url;
    stateFlags = ["--state-nats", url, "--state-nats-creds", creds];
    shared = [...stateFlags, ...kek];
    // (a --state-dir without them is refused: new accounts would not match the server's operator)
    wrongDir = cli(path.join(stack.stateDir, "elsewhere"), "nats", "init", ...shared);
    // 3. the accounts into the shared bucket
    const take = cli(boot, "nats", "init", ...shared);
    assert.equal(take.code, 0, take.stderr);
    assert.match(take.stderr, /^took from file .*bootstrap\/state\.json the NATS operator and account A/m);
    assert.equal(take.stdout, fs.readFileSync(conf, "utf8"), "the same operator and accounts");
    // 4. two hubs on it, each with its own state dir, events on the same server
    const dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "a.yaml"), serviceYaml("api", "10.96.56.1", "198.18.56.11"));
    stateA = path.join(stack.stateDir, "hub-a");
    stateB = path.join(stack.stateDir, "hub-b");
    for (const s of [stateA, stateB]) {
      const hub = await stack.startHub(
        [`prod=dir:${dir}`],
        ["--state-dir", s, ...shared, "--events-nats", url],
      );
      await hub.waitFor(/"operatorMode":true[^\n]*"msg":"events nats connected"/);
    }
    hubB = stack.hubAddress;
  });
  after(async () => {
    await stack?.cleanup();
  });

  it("writes the hubs' state user 0600", () => {
    assert.equal(fs.statSync(creds).mode & 0o777, 0o600);
    assert.match(fs.readFileSync(creds, "utf8"), /-----BEGIN NATS USER JWT-----/);
  });

  it("admits an agent at one hub with a token made through the other; its events go to the same NATS", async () => {
    const made = cli(stateA, "token", "create", "--cluster", "prod", ...stateFlags);
    assert.equal(made.code, 0, made.stderr);
    const token = made.stdout.trim();
    const listed = cli(stateB, "token", "list", ...stateFlags);
    assert.match(listed.stdout, new RegExp(token.split(".")[0]!), "B lists A's token");
    assert.equal(fs.existsSync(path.join(stateA, "state.json")), false, "nothing kept in a local file");
    const agent = await stack.startAgent(token, [], [hubB]);
    await agent.waitFor(/"natsUser":true[^\n]*"msg":"agent credential received"/);
    await agent.waitFor(/"msg":"nats connected; events flow"/);
  });

  it("refuses a hub and a CLI without the state user, naming --state-nats-creds", async () => {
    const bare = startNode(HUB, [
      "serve",
      "--cluster",
      `prod=dir:${path.join(stack.stateDir, "cluster")}`,
      "--listen",
      "127.0.0.1:0",
      "--state-dir",
      path.join(stack.stateDir, "hub-c"),
      "--state-nats",
      url,
      "--signing-key-kek-file",
      path.join(stack.stateDir, "signing.kek"),
    ]);
    const code = await new Promise<number | null>((resolve) => bare.cp.on("close", resolve));
    assert.equal(code, 2, bare.output());
    assert.match(bare.output(), /not authorized .*give every hub \(and the CLI\) --state-nats-creds FILE/);
    // no hub on this state dir: the CLI opens the state itself
    const list = cli(path.join(stack.stateDir, "cli-only"), "token", "list", "--state-nats", url);
    assert.equal(list.code, 2, list.stderr);
    assert.match(list.stderr, /--state-nats-creds FILE/);
  });

  it("refuses, at the bootstrap's third step, a --state-dir that does not hold the accounts", () => {
    assert.equal(wrongDir.code, 2, wrongDir.stderr);
    assert.match(
      wrongDir.stderr,
      /no NATS accounts in the shared bucket nor in file .*elsewhere\/state\.json/,
    );
  });

  it("refuses to make the state user on a NATS without auth (the accounts would be lost)", () => {
    const r = cli(boot, "nats", "init", "--state-nats", url, "--state-creds-out", `${creds}.2`);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /run `nats init --state-creds-out FILE` first without --state-nats/);
    assert.equal(fs.existsSync(`${creds}.2`), false);
  });
});
