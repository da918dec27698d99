/**
 * A whole Switchyard on this machine, made of the real binaries: a
 * nats-server, a hub, an agent attached to a sandbox cgroup, and backends in
 * the sandbox's network namespace. Used by end-to-end tests and the demo.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type NatsServer, startNatsServer } from "./nats.ts";
import { type Proc, REPO, startNode, watchProcess } from "./proc.ts";
import { Sandbox } from "./sandbox.ts";

export const HUB = "services/hub/src/main.ts";
export const AGENT = "services/nodeagent/src/main.ts";

export type ProbeResult = { ok: true; reply: string; peer: string } | { ok: false; code: string };

export type LoopResult = {
  ok: number;
  failed: number;
  errors: Record<string, number>;
  replies: Record<string, number>;
};

export type Backend = { name: string; ip: string; port: number; proc: Proc };

export class Stack {
  readonly sandbox: Sandbox;
  readonly stateDir: string;
  readonly pinDir: string;
  nats: NatsServer | undefined;
  hub: Proc | undefined;
  hubAddress = "";
  readonly hubs: Proc[] = [];
  agent: Proc | undefined;
  token = "";
  readonly backends: Backend[] = [];
  private readonly cleanups: Array<() => Promise<void> | void> = [];

  private constructor(sandbox: Sandbox) {
    this.sandbox = sandbox;
    this.stateDir = fs.mkdtempSync(path.join(os.tmpdir(), `${sandbox.name}-`));
    this.pinDir = `/sys/fs/bpf/${sandbox.name}`;
  }

  static create(prefix: string): Stack {
    return new Stack(Sandbox.create(prefix));
  }

  async startBackend(name: string, ip: string, port: number): Promise<Backend> {
    const b = { name, ip, port, proc: await this.sandbox.startEchoServer(name, ip, port) };
    this.backends.push(b);
    return b;
  }

  async startNats(opts: { jetstream?: boolean } = {}): Promise<NatsServer> {
    this.nats = await startNatsServer(opts);
    return this.nats;
  }

  createToken(cluster: string, extra: string[] = []): string {
    // before the hub's first start the state dir holds no hub state yet: say so, as an operator would
    const fresh = !fs.existsSync(path.join(this.stateDir, "state.json")) ? ["--new-state"] : [];
    return execFileSync(
      process.execPath,
      [
        path.join(REPO, HUB),
        "token",
        "create",
        "--state-dir",
        this.stateDir,
        "--cluster",
        cluster,
        ...fresh,
        ...extra,
      ],
      {
        encoding: "utf8",
      },
    ).trim();
  }

  async startHub(clusterFlags: string[], extra: string[] = []): Promise<Proc> {
    const hub = startNode(HUB, [
      "serve",
      ...clusterFlags.flatMap((c) => ["--cluster", c]),
      "--listen",
      "127.0.0.1:0",
      "--state-dir",
      this.stateDir,
      ...extra,
    ]);
    this.hub = hub;
    this.hubs.push(hub);
    const m = await hub.waitFor(/listening 127\.0\.0\.1:(\d+)/);
    this.hubAddress = `127.0.0.1:${m[1]}`;
    return hub;
  }

  async startAgent(token: string, extra: string[] = [], hubs: string[] = [this.hubAddress]): Promise<Proc> {
    const args = [
      "run",
      ...hubs.flatMap((h) => ["--hub", h]),
      "--token",
      token,
      "--cgroup",
      this.sandbox.cgroup,
      "--pin-dir",
      this.pinDir,
      "--node-name",
      "node-1",
      "--state-dir",
      path.join(this.stateDir, "agent"),
    ];
    if (this.nats) args.push("--nats", this.nats.url);
    const agent = startNode(AGENT, [...args, ...extra], {
      env: { ...process.env, SWITCHYARD_LOG_LEVEL: "debug" },
    });
    this.agent = agent;
    await agent.waitFor(/agent running/);
    return agent;
  }

  /**
   * A second agent on the same sandbox (its own pins, removed at cleanup):
   * for agents that should be refused.
   */
  startExtraAgent(name: string, token: string, extra: string[] = []): Proc {
    const pinDir = `${this.pinDir}-${name}`;
    const agent = startNode(AGENT, [
      "run",
      "--hub",
      this.hubAddress,
      "--token",
      token,
      "--cgroup",
      this.sandbox.cgroup,
      "--pin-dir",
      pinDir,
      "--node-name",
      name,
      "--state-dir",
      path.join(this.stateDir, `agent-${name}`),
      ...extra,
    ]);
    this.onCleanup(async () => {
      await agent.stop();
      try {
        execFileSync(process.execPath, [path.join(REPO, AGENT), "uninstall", "--pin-dir", pinDir], {
          stdio: "ignore",
        });
      } catch {}
    });
    return agent;
  }

  /** One TCP connect from a client inside the sandbox cgroup + namespace. */
  async probe(ip: string, port: number, opts: { inCgroup?: boolean } = {}): Promise<ProbeResult> {
    return (await this.sandbox.runKitClient(
      "tcp-probe.ts",
      [ip, String(port)],
      opts.inCgroup !== false,
    )) as ProbeResult;
  }

  /** Starts a connect loop in the sandbox cgroup; `finish()` stops it and returns its counts. */
  async connectLoop(ip: string, port: number): Promise<{ finish: () => Promise<LoopResult> }> {
    const p = watchProcess(
      this.sandbox.spawnInCgroup(process.execPath, [
        path.join(REPO, "test/kit/connect-loop.ts"),
        ip,
        String(port),
      ]),
    );
    await p.waitFor(/started/);
    return {
      finish: async () => {
        if (p.cp.pid) process.kill(p.cp.pid, "SIGTERM");
        const m = await p.waitFor(/^\{.*\}$/m);
        await p.stop();
        return JSON.parse(m[0]) as LoopResult;
      },
    };
  }

  onCleanup(fn: () => Promise<void> | void): void {
    this.cleanups.push(fn);
  }

  /** Stops everything this stack started and removes every pin, cgroup, namespace and file. */
  async cleanup(): Promise<void> {
    for (const fn of this.cleanups.reverse()) await Promise.resolve(fn()).catch(() => {});
    await this.agent?.stop().catch(() => {});
    for (const h of this.hubs) await h.stop().catch(() => {});
    await this.nats?.stop().catch(() => {});
    for (const b of this.backends) await b.proc.stop().catch(() => {});
    try {
      execFileSync(process.execPath, [path.join(REPO, AGENT), "uninstall", "--pin-dir", this.pinDir], {
        stdio: "ignore",
      });
    } catch {}
    this.sandbox.cleanup();
    fs.rmSync(this.stateDir, { recursive: true, force: true });
  }
}
