/**
 * The agent's start, tried as a new user would: a missing privilege, a
 * --cgroup that is not cgroup v2, a missing CA file and a TLS mismatch are
 * said with what to fix; an agent that never served leaves no pin and no
 * attached program; a new agent attaches only once it holds a complete
 * view; `dump --json` and `dump | head` work.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { makeCa, makeServerCert } from "../kit/certs.ts";
import { type Proc, REPO, startNode, watchProcess } from "../kit/proc.ts";
import { requireRoot } from "../kit/sandbox.ts";
import { AGENT, HUB, Stack } from "../kit/stack.ts";

requireRoot();
const SERVICES = 1500;
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as { version: string })
  .version;

function cluster(): string {
  const docs: string[] = [];
  for (let i = 0; i < SERVICES; i++)
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata: { name: s${i}, namespace: big }\nspec: { clusterIP: 10.97.${i >> 8}.${i & 255}, ports: [{ name: http, port: 80 }] }`,
    );
  return `${docs.join("\n---\n")}\n`;
}

/** the programs attached to a cgroup (bpftool), by name */
const attached = (cgroup: string) =>
  execFileSync("bpftool", ["cgroup", "show", cgroup], { encoding: "utf8" });

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe("agent start: errors that say what to fix, and nothing left behind", () => {
  let stack: Stack;
  let token: string;
  let tlsHub: Proc | undefined;
  let tlsHubAddress = "";
  let pki: ReturnType<typeof makeCa>;
  let otherCa: ReturnType<typeof makeCa>;
  const extraPins: string[] = [];
  const runArgs = (pinName: string, extra: string[]) => {
    const pinDir = `${stack.pinDir}-${pinName}`;
    extraPins.push(pinDir);
    return [
      "run",
      ...["--cgroup", stack.sandbox.cgroup, "--pin-dir", pinDir, "--node-name", pinName],
      ...["--state-dir", path.join(stack.stateDir, `agent-${pinName}`)],
      ...extra,
    ];
  };
  const agent = (pinName: string, extra: string[]) => {
    const p = startNode(AGENT, runArgs(pinName, extra));
    stack.onCleanup(() => void p.stop());
    return p;
  };
  const exitOf = (p: Proc) =>
    new Promise<number | null>((resolve) => {
      if (p.cp.exitCode !== null) resolve(p.cp.exitCode);
      p.cp.on("exit", resolve);
    });

  before(async () => {
    stack = Stack.create("agentstart");
    const dir = path.join(stack.stateDir, "cluster");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "big.yaml"), cluster());
    await stack.startHub([`prod=dir:${dir}`]);
    token = stack.createToken("prod");
    // a second hub, with TLS, on a state of its own
    pki = makeCa(path.join(stack.stateDir, "pki"));
    otherCa = makeCa(path.join(stack.stateDir, "pki-other"), "someone-else");
    const cert = makeServerCert(pki, "hub", { ips: ["127.0.0.1"] });
    const tlsState = path.join(stack.stateDir, "tls-hub");
    tlsHub = startNode(HUB, [
      ...["serve", "--cluster", `prod=dir:${dir}`, "--listen", "127.0.0.1:0", "--state-dir", tlsState],
      ...["--tls-cert", cert.cert, "--tls-key", cert.key],
    ]);
    stack.onCleanup(() => void tlsHub?.stop());
    tlsHubAddress = `127.0.0.1:${(await tlsHub.waitFor(/listening 127\.0\.0\.1:(\d+)/))[1]}`;
  });
  after(async () => {
    for (const p of extraPins)
      try {
        execFileSync(process.execPath, [path.join(REPO, AGENT), "uninstall", "--pin-dir", p], {
          stdio: "ignore",
        });
      } catch {}
    await stack?.cleanup();
  });

  it("without CAP_BPF it says so, before pinning anything", async () => {
    const args = runArgs("nocap", ["--hub", stack.hubAddress, "--token", token]);
    const cmd = [process.execPath, path.join(REPO, AGENT), ...args].map((a) => `'${a}'`).join(" ");
    const p = watchProcess(
      spawn("capsh", ["--drop=cap_bpf,cap_sys_admin", "--", "-c", cmd], {
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    assert.equal(await exitOf(p), 1, p.output());
    assert.match(
      p.output(),
      /^switchyard-agent: run loads eBPF programs, and this process runs as root but lacks CAP_BPF;/m,
    );
    assert.ok(!fs.existsSync(`${stack.pinDir}-nocap`), "nothing pinned");
  });

  it("says a --cgroup that is not a cgroup v2 directory as such (exit 2), before pinning anything", async () => {
    const notCgroup = fs.mkdtempSync(path.join(os.tmpdir(), "sy-not-a-cgroup-"));
    try {
      const p = agent("badcg", ["--hub", stack.hubAddress, "--token", token, "--cgroup", notCgroup]);
      assert.equal(await exitOf(p), 2, p.output());
      assert.match(
        p.output(),
        new RegExp(
          `^switchyard-agent: --cgroup ${notCgroup} is not a cgroup v2 directory \\(its filesystem type is 0x[0-9a-f]+, cgroup2's is 0x63677270\\); cgroup v2 is mounted at `,
          "m",
        ),
      );
      assert.doesNotMatch(p.output(), /^\s+at /m);
      assert.ok(!fs.existsSync(`${stack.pinDir}-badcg`), "nothing pinned");
    } finally {
      fs.rmSync(notCgroup, { recursive: true, force: true });
    }
  });

  it("names a missing CA file with its flag (exit 2)", async () => {
    const p = agent("noca", [
      "--hub",
      tlsHubAddress,
      "--token",
      token,
      "--hub-ca",
      "/nonexistent/hub-ca.crt",
    ]);
    assert.equal(await exitOf(p), 2, p.output());
    assert.match(
      p.output(),
      /^switchyard-agent: --hub-ca \/nonexistent\/hub-ca\.crt: cannot read it \(no such file\)/m,
    );
  });

  it("says 'the hub speaks TLS' when it has no CA, 'not signed by --hub-ca FILE' with the wrong one, 'plain gRPC' the other way round", async () => {
    const noCa = agent("tls-noca", ["--hub", tlsHubAddress, "--token", token]);
    // on stderr as a line of its own too (the JSON log lines start with "{")
    await noCa.waitFor(
      /^switchyard-agent: cannot join the hub: the hub \(127\.0\.0\.1:\d+\) speaks TLS, and this agent has no CA for it; give --hub-ca FILE/m,
    );
    await noCa.stop();
    const wrong = agent("tls-wrong", ["--hub", tlsHubAddress, "--token", token, "--hub-ca", otherCa.caCert]);
    await wrong.waitFor(
      new RegExp(
        `the hub's certificate \\(127\\.0\\.0\\.1:\\d+\\) is not signed by --hub-ca ${otherCa.caCert};`,
      ),
    );
    await wrong.stop();
    const plain = agent("tls-plain", ["--hub", stack.hubAddress, "--token", token, "--hub-ca", pki.caCert]);
    await plain.waitFor(/speaks plain gRPC \(no TLS\), and this agent expects TLS \(--hub-ca /);
    await plain.stop();
  });

  it("warns when the token would go in clear to a hub off this host", async (t) => {
    const own = Object.values(os.networkInterfaces())
      .flat()
      .find((a) => a && !a.internal && a.family === "IPv4")?.address;
    if (!own) return t.skip("no non-loopback IPv4 address on this host");
    // this host's own address: nothing leaves the machine (no hub listens there: refused at once)
    const p = agent("clear", ["--hub", `${own}:${await freePort()}`, "--token", token]);
    await p.waitFor(/sending the join token and credential to the hub in clear \(no TLS\)/);
    await p.stop();
  });

  it("refused by the hub, it attaches nothing; stopped, it leaves no pin (it never served)", async () => {
    const p = agent("refused", ["--hub", stack.hubAddress, "--token", "aaaaaa.bbbbbbbbbbbbbbbb"]);
    await p.waitFor(/hub refused this agent/);
    await p.waitFor(/^switchyard-agent: cannot join the hub: the hub refused this agent's join token: /m);
    assert.doesNotMatch(
      attached(stack.sandbox.cgroup),
      /sy_connect4/,
      "no program attached before a complete view",
    );
    assert.ok(fs.existsSync(path.join(`${stack.pinDir}-refused`, "maps")), "its maps are pinned meanwhile");
    await p.stop();
    assert.ok(!fs.existsSync(`${stack.pinDir}-refused`), "the pins it made are gone");
    assert.doesNotMatch(attached(stack.sandbox.cgroup), /sy_/);
  });

  it("a start that fails after loading (its metrics port taken) leaves no pin and no program", async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    try {
      const port = (busy.address() as net.AddressInfo).port;
      const p = agent("busy", [
        "--hub",
        stack.hubAddress,
        "--token",
        token,
        "--metrics-listen",
        `127.0.0.1:${port}`,
      ]);
      assert.notEqual(await exitOf(p), 0, p.output());
      assert.match(p.output(), /--metrics-listen 127\.0\.0\.1:\d+: .*EADDRINUSE/);
      assert.ok(
        !fs.existsSync(`${stack.pinDir}-busy`),
        `the pins it made are gone: ${p.output().slice(-2000)}`,
      );
      assert.doesNotMatch(attached(stack.sandbox.cgroup), /sy_/);
    } finally {
      busy.close();
    }
  });

  it("a new agent attaches its programs only after it has joined and holds a complete view", async () => {
    const a = await stack.startAgent(token);
    await a.waitFor(/programs attached: the maps hold a complete view/, 120_000);
    const out = a.output();
    const complete = out.indexOf("complete view from the hub");
    const firstAttach = out.indexOf('"msg":"program attached"');
    assert.ok(complete > 0 && firstAttach > complete, "attached after the complete view");
    assert.ok(out.indexOf('"msg":"joined hub"') < firstAttach, "attached after joining");
    assert.match(attached(stack.sandbox.cgroup), /sy_connect4/);
    // the Hello carries the real version
    const agents = JSON.parse(
      execFileSync(
        process.execPath,
        [path.join(REPO, HUB), "agents", "--json", "--state-dir", stack.stateDir],
        {
          encoding: "utf8",
        },
      ),
    ) as Array<{ node: string; agentVersion: string }>;
    assert.equal(agents.find((x) => x.node === "node-1")?.agentVersion, VERSION);
  });

  it("dump --json is one JSON document of the maps; dump | head ends quietly (no EPIPE crash)", async () => {
    const json = JSON.parse(
      execFileSync(process.execPath, [path.join(REPO, AGENT), "dump", "--json", "--pin-dir", stack.pinDir], {
        encoding: "utf8",
        maxBuffer: 64 << 20,
      }),
    ) as {
      frontends: Array<{ ip: string; port: number; service: string }>;
      counters: Record<string, number>;
    };
    assert.equal(json.frontends.length, SERVICES);
    assert.ok(
      json.frontends.some((f) => f.ip === "10.97.0.0" && f.port === 80 && f.service === "prod/big/s0"),
    );
    assert.equal(typeof json.counters["translated"], "number");
    // a reader that takes the first line and goes away, as `head -1` does
    const cp = spawn(process.execPath, [path.join(REPO, AGENT), "dump", "--pin-dir", stack.pinDir], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    cp.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    await new Promise<void>((resolve) => cp.stdout.once("data", () => resolve()));
    cp.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => cp.on("exit", resolve));
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stderr, /EPIPE|Error/);
  });
});
