/**
 * Per-test hosts: a network namespace (no route out, so a missed translation
 * fails locally) and a cgroup v2 directory the client runs in. Names are
 * unique so test files run in parallel; `cleanup()` removes everything this
 * sandbox made, and is safe to call when creation failed half-way.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { findCgroup2Root } from "@switchyard/lib/mounts";
import { type Proc, REPO, watchProcess } from "./proc.ts";

export { findCgroup2Root };

/** Privileged tests need root; say so loudly instead of passing silently. */
export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      "PRIVILEGED TEST CANNOT RUN: this test needs root (BPF, cgroups, network namespaces). Run the suite as root.",
    );
  }
}

export function uniqueName(prefix: string): string {
  return `sy-${prefix}-${randomBytes(3).toString("hex")}`;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

export class Sandbox {
  readonly name: string;
  readonly netns: string;
  readonly cgroup: string;
  private readonly children = new Set<ChildProcess>();
  private made = { netns: false, cgroup: false };

  private constructor(name: string) {
    this.name = name;
    this.netns = name;
    this.cgroup = path.join(findCgroup2Root(), name);
  }

  static create(prefix: string): Sandbox {
    requireRoot();
    const sb = new Sandbox(uniqueName(prefix));
    try {
      run("ip", ["netns", "add", sb.netns]);
      sb.made.netns = true;
      run("ip", ["-n", sb.netns, "link", "set", "lo", "up"]);
      fs.mkdirSync(sb.cgroup);
      sb.made.cgroup = true;
    } catch (e) {
      sb.cleanup();
      throw e;
    }
    return sb;
  }

  /** Adds an address on the namespace's loopback (a "host" backends listen on). */
  addAddress(ip: string): void {
    const v6 = ip.includes(":");
    run("ip", ["-n", this.netns, "addr", "add", `${ip}/${v6 ? 128 : 32}`, "dev", "lo"]);
  }

  private track(cp: ChildProcess): ChildProcess {
    this.children.add(cp);
    cp.on("exit", () => this.children.delete(cp));
    return cp;
  }

  /** Runs a command in the namespace, outside the test cgroup. */
  spawnInNetns(cmd: string, args: string[]): ChildProcess {
    return this.track(
      spawn("nsenter", [`--net=/run/netns/${this.netns}`, cmd, ...args], {
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
  }

  /**
   * Runs a command inside the test cgroup and the namespace. The process joins
   * the cgroup first, then enters the namespace with nsenter (which, unlike
   * `ip netns exec`, does not remount /sys).
   */
  spawnInCgroup(cmd: string, args: string[]): ChildProcess {
    const script = `echo $$ > "${this.cgroup}/cgroup.procs" && exec nsenter --net=/run/netns/${this.netns} "$@"`;
    return this.track(spawn("sh", ["-c", script, "sh", cmd, ...args], { stdio: ["ignore", "pipe", "pipe"] }));
  }

  /** Starts test/kit/echo-server.ts on ip:port inside the namespace (the address is added first). */
  startEchoServer(name: string, ip: string, port: number): Promise<Proc> {
    return this.startEchoServers([{ name, ip, port }]);
  }

  /** One test/kit/echo-server.ts process serving every backend given (addresses added first). */
  async startEchoServers(backends: ReadonlyArray<{ name: string; ip: string; port: number }>): Promise<Proc> {
    for (const ip of new Set(backends.map((b) => b.ip))) this.addAddress(ip);
    const proc = watchProcess(
      this.spawnInNetns(process.execPath, [
        path.join(REPO, "test/kit/echo-server.ts"),
        ...backends.flatMap((b) => [b.name, b.ip, String(b.port)]),
      ]),
    );
    await proc.waitFor(/ready/);
    return proc;
  }

  /** Runs a test/kit client script that prints one JSON line, in the cgroup + namespace or the namespace only. */
  async runKitClient(script: string, args: string[], inCgroup = true): Promise<unknown> {
    const full = [path.join(REPO, "test/kit", script), ...args];
    const p = watchProcess(
      inCgroup ? this.spawnInCgroup(process.execPath, full) : this.spawnInNetns(process.execPath, full),
    );
    const m = await p.waitFor(/^\{.*\}$/m, 20_000);
    await p.stop();
    return JSON.parse(m[0]);
  }

  cleanup(): void {
    for (const cp of this.children) if (cp.pid && cp.exitCode === null) process.kill(cp.pid, "SIGKILL");
    // processes left in the cgroup (only ones this sandbox started can be there)
    if (this.made.cgroup) {
      try {
        for (const pid of fs
          .readFileSync(path.join(this.cgroup, "cgroup.procs"), "utf8")
          .split("\n")
          .filter(Boolean)) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {}
        }
      } catch {}
      for (let i = 0; i < 200; i++) {
        try {
          fs.rmdirSync(this.cgroup);
          break;
        } catch {
          execFileSync("sleep", ["0.02"]);
        }
      }
      this.made.cgroup = false;
    }
    if (this.made.netns) {
      try {
        run("ip", ["netns", "del", this.netns]);
      } catch {}
      this.made.netns = false;
    }
  }
}
