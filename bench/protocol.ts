/**
 * `npm run bench:protocol` — 1,000 agents on one hub, 10,000 Services /
 * 100,000 endpoints in a cluster served by the test Kubernetes API server
 * (HTTPS list/watch through the hub's real client). The agents are
 * lightweight simulated clients spread over --workers processes
 * (bench/c/sims.c, or bench/protocol-sims.ts with --sims node: one TLS
 * connection each, real protocol: Hello, ACK per delta, resume with the held
 * view version), and --real-agents real ones.
 *
 * Measures: cold start (hub up → every agent holds every resource), one
 * EndpointSlice change → all agents ACKed (p50/p99 over CHANGES changes),
 * bytes per agent per one-endpoint change, a reconnect storm after a hub
 * restart (time and bytes resent), hub RSS and CPU. Writes
 * bench/results/protocol.json.
 *
 *   node bench/protocol.ts [--agents 1000] [--services 10000] [--changes 100] [--workers 2]
 *                          [--sims c|node] [--io-threads N] [--real-agents 2] [--plain] [--sim-full-decode]
 *                          [--until cold|changes|restart|storm] [--sim-nice N] [--out FILE]
 */

import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { parseArgs } from "node:util";
import { makeCa, makeServerCert } from "../test/kit/certs.ts";
import { FakeKubeApiServer } from "../test/kit/kube-apiserver.ts";
import { type Proc, REPO, startNode, waitUntil } from "../test/kit/proc.ts";
import { Sandbox } from "../test/kit/sandbox.ts";
import { AGENT, HUB } from "../test/kit/stack.ts";
import { benchService, benchSlice, ENDPOINTS_PER_SERVICE } from "./cluster.ts";
import type { Cmd as WorkerCmd } from "./protocol-sims.ts";
import { machine, percentile, speedProbe } from "./stats.ts";

const { values } = parseArgs({
  options: {
    agents: { type: "string", default: "1000" },
    services: { type: "string", default: "10000" },
    // one-endpoint changes, one at a time: 100 so that a p99 is not simply the worst of a handful
    changes: { type: "string", default: "100" },
    // processes of simulated agents (default: 2 for the C ones, one per core; 4 for the Node ones)
    workers: { type: "string" },
    // stop after this phase (cold | changes | restart | storm); with HUB_NODE_OPTIONS="--cpu-prof" the hub then exits cleanly and writes its profile
    until: { type: "string", default: "storm" },
    // the agents do not accept zstd-packed batches (the plain protocol, for comparison)
    plain: { type: "boolean", default: false },
    // simulated agents inflate and walk every packed batch, even one byte for byte the same as one their process already read
    "sim-full-decode": { type: "boolean", default: false },
    // scheduling niceness of the simulated agents' processes (0 = same as the hub)
    "sim-nice": { type: "string", default: "0" },
    // the real agents' --resync-seconds (their periodic full reconcile; default: the agent's own, 60)
    "real-agent-resync-seconds": { type: "string" },
    // the hub's --io-threads (default: the hub's own default)
    "io-threads": { type: "string" },
    // the simulated agents: c (bench/c/sims.c, one epoll loop per process) or node (bench/protocol-sims.ts)
    sims: { type: "string", default: "c" },
    // real agents (the switchyard-agent binary, BPF maps in a sandbox cgroup) among the simulated ones
    "real-agents": { type: "string", default: "2" },
    // where to write the figures (a partial run writes only when this is given)
    out: { type: "string" },
  },
});
const AGENTS = Number(values.agents);
const SERVICES = Number(values.services);
const CHANGES = Number(values.changes);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sy-bench-proto-"));
const pki = makeCa(path.join(tmp, "pki"));
const cert = makeServerCert(pki, "hub", { ips: ["127.0.0.1"] });

const api = new FakeKubeApiServer();
await api.start();
// one endpoint (the first) flips readiness with each generation of a slice
const slice = (i: number, gen: number) => benchSlice(i, gen % 2 === 0 ? -1 : 0);
for (let i = 0; i < SERVICES; i++) {
  api.apply(benchService(i));
  api.apply(slice(i, 0));
}
for (let n = 0; n < 1000; n++) {
  api.apply({
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: `node-${n}` },
    status: { addresses: [{ type: "InternalIP", address: `192.0.2.${n % 250}` }] },
  });
}
const kubeconfig = api.writeKubeconfig(tmp, "bench");
const stateDir = path.join(tmp, "state");

function startHub(port: number): Proc {
  return startNode(
    HUB,
    [
      "serve",
      "--cluster",
      `bench=kubeconfig:${kubeconfig}`,
      "--listen",
      `127.0.0.1:${port}`,
      "--state-dir",
      stateDir,
      "--tls-cert",
      cert.cert,
      "--tls-key",
      cert.key,
      "--log-level",
      process.env["HUB_LOG"] ?? "info",
      ...(values["io-threads"] !== undefined ? ["--io-threads", values["io-threads"]] : []),
    ],
    nodeOptions("HUB_NODE_OPTIONS"),
  );
}

/** HUB_NODE_OPTIONS / AGENT_NODE_OPTIONS: NODE_OPTIONS for the hub or the real agents (e.g. "--cpu-prof") */
function nodeOptions(variable: string): { env?: NodeJS.ProcessEnv } {
  const v = process.env[variable];
  return v ? { env: { ...process.env, NODE_OPTIONS: v } } : {};
}

/** The hub's own convergence figures, from its log: view change → every agent ACKed (`ms`), logged at `time`. */
const hubConvergences = (p: Proc) =>
  logLines(p).flatMap((l) => (l.msg === "view converged" ? [{ time: l.time, ms: l.ms ?? 0 }] : []));

/** CPU time (s) the whole machine spent busy so far, from /proc/stat (every process: hub, agents, this driver) */
function machineBusyS(): number {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]!) / 100;
}

/** CPU time (s) a process (or one of its threads: /proc/PID/task/TID) has used so far */
function cpuOf(procDir: string): number {
  const stat = fs.readFileSync(`${procDir}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(stat[11]) + Number(stat[12])) / 100;
}

function hubStats(p: Proc): { rssMiB: number; peakRssMiB: number; cpuS: number; mainThreadCpuS: number } {
  const pid = p.cp.pid!;
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
  return {
    rssMiB: Math.round(kib("VmRSS") / 1024),
    // the most it ever held (VmHWM), e.g. mid cold start
    peakRssMiB: Math.round(kib("VmHWM") / 1024),
    cpuS: cpuOf(`/proc/${pid}`),
    // the event loop's own thread (the rest: V8's GC and compiler threads, libuv's pool)
    mainThreadCpuS: cpuOf(`/proc/${pid}/task/${pid}`),
  };
}

// --- simulated agents, spread over worker processes (bench/c/sims.c, or bench/protocol-sims.ts with --sims node) ---
const WORKERS = Number(values.workers ?? (values.sims === "c" ? 2 : 4));
type WorkerEv =
  | { ev: "ready" }
  | { ev: "synced"; at: number; bytes: number; cpuS: number; inflateS: number; framesReused: number }
  | { ev: "changed"; latencies: number[]; bytes: number; cpuS: number }
  | { ev: "reset" }
  | { ev: "reattached"; at: number; bytes: number; resends: number };
type Worker = {
  cp: ChildProcess;
  send: (c: WorkerCmd) => void;
  next: (ev: WorkerEv["ev"]) => Promise<WorkerEv>;
};

const SIMS_BIN = path.join(REPO, "bench/build/sims");
if (values.sims !== "c" && values.sims !== "node") throw new Error(`--sims c|node, not ${values.sims}`);
if (values.sims === "c") {
  fs.mkdirSync(path.dirname(SIMS_BIN), { recursive: true });
  execFileSync("cc", [
    "-O2",
    "-o",
    SIMS_BIN,
    path.join(REPO, "bench/c/sims.c"),
    "-lssl",
    "-lcrypto",
    "-lzstd",
  ]);
}

/** a command as one line of words for sims.c (names, tokens and paths hold no spaces) */
function simsLine(c: WorkerCmd): string {
  const host = (a: string) => [a.slice(0, a.lastIndexOf(":")), a.slice(a.lastIndexOf(":") + 1)];
  switch (c.cmd) {
    case "connect":
      return [
        `W ${c.watch.join(" ")}`,
        [
          "C",
          ...host(c.address),
          c.token,
          c.ca,
          c.expected,
          Number(c.plain),
          Number(c.fullDecode),
          ...c.names,
        ].join(" "),
      ].join("\n");
    case "watch":
      return `w ${c.name} ${c.since}`;
    case "reset":
      return "r";
    case "reconnect":
      return `R ${host(c.address).join(" ")}`;
    case "stop":
      return "q";
  }
}

function startWorker(): Worker {
  const cp =
    values.sims === "c"
      ? spawn(SIMS_BIN, [], { stdio: ["pipe", "pipe", "inherit"] })
      : fork(path.join(REPO, "bench/protocol-sims.ts"), [], {
          execArgv: [
            "--max-old-space-size=4096",
            "--max-semi-space-size=64",
            // SIM_CPU_PROF=DIR: each simulated agents' process writes a CPU profile there
            ...(process.env["SIM_CPU_PROF"]
              ? ["--cpu-prof", `--cpu-prof-dir=${process.env["SIM_CPU_PROF"]}`]
              : []),
          ],
          stdio: ["ignore", "inherit", "inherit", "ipc"],
        });
  if (Number(values["sim-nice"]) !== 0) os.setPriority(cp.pid!, Number(values["sim-nice"]));
  const queue: WorkerEv[] = [];
  const waiters: Array<{ ev: string; resolve: (e: WorkerEv) => void }> = [];
  const deliver = (m: WorkerEv) => {
    const i = waiters.findIndex((w) => w.ev === m.ev);
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m);
    else queue.push(m);
  };
  let send: (c: WorkerCmd) => void;
  if (values.sims === "c") {
    readline.createInterface({ input: cp.stdout! }).on("line", (l) => deliver(JSON.parse(l) as WorkerEv));
    send = (c) => {
      if (cp.exitCode === null) cp.stdin!.write(`${simsLine(c)}\n`);
    };
  } else
    send = (c) => {
      if (cp.connected) cp.send(c);
    };
  cp.on("message", deliver);
  return {
    cp,
    send,
    next: (ev) =>
      new Promise((resolve) => {
        const i = queue.findIndex((q) => q.ev === ev);
        if (i >= 0) resolve(queue.splice(i, 1)[0]!);
        else waiters.push({ ev, resolve });
      }),
  };
}

const all = <T extends WorkerEv>(ws: Worker[], ev: T["ev"]) =>
  Promise.all(ws.map((w) => w.next(ev) as Promise<T>));

// --- real agents: the agent binary with its BPF maps, each in its own sandbox cgroup ---
type LogLine = { time: number; msg: string; changed?: number; ms?: number };
type Real = {
  name: string;
  sandbox: Sandbox;
  pinDir: string;
  proc: Proc;
};
const reals: Real[] = [];
function startReal(i: number, address: string): Real {
  const sandbox = Sandbox.create(`sy-bench-real${i}`);
  const name = `real-${i}`;
  const pinDir = `/sys/fs/bpf/${sandbox.name}`;
  return { name, sandbox, pinDir, proc: runReal(name, sandbox, pinDir, address) };
}
/** The agent binary of a real agent (again, on a restart: same pins, same state directory). */
function runReal(name: string, sandbox: Sandbox, pinDir: string, address: string): Proc {
  return startNode(
    AGENT,
    [
      "run",
      "--hub",
      address,
      "--token",
      token,
      "--hub-ca",
      pki.caCert,
      "--cgroup",
      sandbox.cgroup,
      "--pin-dir",
      pinDir,
      "--node-name",
      name,
      "--state-dir",
      path.join(tmp, name),
      ...(values["real-agent-resync-seconds"]
        ? ["--resync-seconds", values["real-agent-resync-seconds"]]
        : []),
    ],
    nodeOptions("AGENT_NODE_OPTIONS"),
  );
}
/**
 * A process's JSON log lines so far, parsed once each (the driver polls
 * while the hub and agents share its 2 cores: re-parsing a whole log per
 * poll would take CPU from what is measured).
 */
const parsedLogs = new WeakMap<Proc, { parsedTo: number; lines: LogLine[] }>();
function logLines(p: Proc): LogLine[] {
  let c = parsedLogs.get(p);
  if (!c) {
    c = { parsedTo: 0, lines: [] };
    parsedLogs.set(p, c);
  }
  const out = p.output();
  const end = out.lastIndexOf("\n") + 1;
  if (end > c.parsedTo) {
    for (const l of out.slice(c.parsedTo, end).split("\n"))
      if (l.startsWith("{")) c.lines.push(JSON.parse(l) as LogLine);
    c.parsedTo = end;
  }
  return c.lines;
}
/** wall time (ms) at which a real agent had applied `total` resources into its maps */
async function realSyncedAt(r: Real, total: number): Promise<number> {
  return waitUntil(
    `${r.name} to hold ${total} resources`,
    () => {
      let n = 0;
      // a cold start's first chunks are held (stored, not planned) until the one that completes the view
      for (const l of logLines(r.proc))
        if (l.msg === "delta applied" || l.msg === "delta held until the view is complete") {
          n += l.changed ?? 0;
          if (n >= total && l.msg === "delta applied") return l.time;
        }
      return undefined;
    },
    300_000,
    200,
  );
}
const deltaLines = (r: Real) => logLines(r.proc).filter((l) => l.msg === "delta applied");

const token = execFileSync(
  process.execPath,
  // one token for every simulated and real agent: its node limit covers them all (the default is 1,000)
  [
    path.join(REPO, HUB),
    ...["token", "create", "--state-dir", stateDir, "--new-state", "--cluster", "bench", "--ttl", "0"],
    ...["--max-nodes", String(AGENTS + 100)],
  ],
  { encoding: "utf8" },
).trim();

const wall = () => performance.timeOrigin + performance.now();
const results: Record<string, number | string> = {};
/** the run stops early (--until) */
class Done extends Error {}
let hub: Proc | undefined;
const workers: Worker[] = [];
const changeNames = Array.from({ length: CHANGES }, (_, c) => ((c + 1) * 7919) % SERVICES).map(
  (i) => `eps/bench/bench/s${i}-abcde`,
);
/**
 * Everything the run started: real agents (their pins and sandboxes),
 * workers, hub, API server. One cleanup, however many callers: a signal
 * (Ctrl-C reaches the whole process group, so the hub may die first and the
 * run's own `finally` comes too) waits for the same one to finish.
 */
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    const step = async (what: string, fn: () => unknown) => {
      try {
        await fn();
      } catch (e) {
        console.error(`cleanup: ${what}: ${(e as Error).message}`);
      }
    };
    for (const r of reals) {
      await step(`stop ${r.name}`, () => r.proc.stop());
      await step(`unpin ${r.name}`, () =>
        execFileSync(process.execPath, [path.join(REPO, AGENT), "uninstall", "--pin-dir", r.pinDir], {
          stdio: "ignore",
        }),
      );
      await step(`sandbox of ${r.name}`, () => r.sandbox.cleanup());
    }
    for (const w of workers) w.send({ cmd: "stop" });
    await step("hub", () => hub?.stop());
    // HUB_OUTPUT=FILE: what the (last) hub printed, e.g. with HUB_NODE_OPTIONS="--trace-gc"
    if (process.env["HUB_OUTPUT"] && hub) fs.writeFileSync(process.env["HUB_OUTPUT"], hub.output());
    await step("API server", () => api.stop());
    fs.rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}
// an interrupted run (Ctrl-C, a timeout) leaves nothing behind either
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    console.error(`${sig}: cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
// this machine's speed before the run (and after it, below): compare runs by it
const probeBefore = await speedProbe();
results["machine_probe_sha256_64mb_ms_before"] = probeBefore.cpuMs;
results["machine_probe_loopback_20k_round_trips_ms_before"] = probeBefore.loopbackMs;
try {
  for (let w = 0; w < WORKERS; w++) workers.push(startWorker());
  await all(workers, "ready");
  const port = 20000 + Math.floor(Math.random() * 20000);
  let t0 = wall();
  hub = startHub(port);
  await hub.waitFor(/listening 127\.0\.0\.1:\d+/, 300_000);
  results["hub_start_to_listening_ms"] = Math.round(wall() - t0);
  // listing 10,000 Services and their slices through the Kubernetes client, translating the view
  results["hub_cpu_s_at_listening"] = hubStats(hub).cpuS;

  const address = `127.0.0.1:${port}`;
  t0 = wall();
  for (const [k, w] of workers.entries())
    w.send({
      cmd: "connect",
      address,
      token,
      ca: pki.caCert,
      names: Array.from({ length: AGENTS }, (_, i) => i)
        .filter((i) => i % WORKERS === k)
        .map((i) => `sim-${String(i).padStart(4, "0")}`),
      expected: SERVICES * 2,
      watch: changeNames,
      plain: values.plain,
      fullDecode: values["sim-full-decode"],
    });

  for (let i = 0; i < Number(values["real-agents"]); i++) reals.push(startReal(i, address));
  const synced = await all<Extract<WorkerEv, { ev: "synced" }>>(workers, "synced");
  results["cold_start_agents_synced_ms"] = Math.round(Math.max(...synced.map((x) => x.at)) - t0);
  if (reals.length > 0) {
    const at = await Promise.all(reals.map((r) => realSyncedAt(r, SERVICES * 2)));
    results["real_agents"] = reals.length;
    // hub up → the agent binary holds all 20,000 resources and wrote them into its BPF maps
    results["real_agent_cold_start_maps_written_ms"] = Math.round(Math.max(...at) - t0);
    const applies = reals.flatMap((r) => deltaLines(r).map((l) => l.ms ?? 0));
    results["real_agent_cold_start_apply_ms_total"] = Math.round(
      applies.reduce((a, b) => a + b, 0) / reals.length,
    );
  }
  results["cold_start_bytes_per_agent"] = Math.round(synced.reduce((a, x) => a + x.bytes, 0) / AGENTS);
  // what receiving costs the simulated agents (TLS, HTTP/2, a light parse), on the same 2 cores as the hub
  results["sim_agents_cpu_s_cold_sync"] = Math.round(synced.reduce((a, x) => a + x.cpuS, 0) * 10) / 10;
  // of which inflating packed batches (wall time inside zstd, so it includes waiting for the CPU)
  results["sim_agents_inflate_s_cold_sync"] =
    Math.round(synced.reduce((a, x) => a + x.inflateS, 0) * 10) / 10;
  // packed batches a simulated agent recognised (Buffer.equals) as one its process had already read, and did not inflate again
  results["sim_agents_packed_batches_reused"] = synced.reduce((a, x) => a + x.framesReused, 0);
  const afterSync = hubStats(hub);
  results["hub_rss_mib_synced"] = afterSync.rssMiB;
  results["hub_rss_mib_peak_cold_start"] = afterSync.peakRssMiB;
  results["hub_cpu_s_start_and_cold_sync"] = afterSync.cpuS;
  results["hub_main_thread_cpu_s_start_and_cold_sync"] = afterSync.mainThreadCpuS;
  if (values.until === "cold") throw new Done();

  // one endpoint change at a time
  const p50s: number[] = [];
  const p99s: number[] = [];
  const bytesPerChange: number[] = [];
  const hubConv: number[] = [];
  const endToEnd: number[] = [];
  const gens: number[] = [];
  const realLat: number[] = [];
  const realApply: number[] = [];
  const simCpu: number[] = [];
  let simCpuBefore: number | undefined;
  if (process.env["BENCH_VERBOSE"])
    console.error(`${new Date().toISOString()} cold sync done; ${CHANGES} changes start`);
  const machineBefore = machineBusyS();
  const realCpuBefore = reals.map((r) => cpuOf(`/proc/${r.proc.cp.pid}`));
  const driverCpuBefore = process.cpuUsage();
  for (let c = 1; c <= CHANGES; c++) {
    for (const w of workers) w.send({ cmd: "reset" });
    await all(workers, "reset");
    const i = (c * 7919) % SERVICES;
    const before = hubConvergences(hub).length;
    const since = wall();
    for (const w of workers) w.send({ cmd: "watch", name: `eps/bench/bench/s${i}-abcde`, since });
    gens[i] = (gens[i] ?? 0) + 1; // flips endpoint 0's readiness: one endpoint changes
    api.apply(slice(i, gens[i]!));
    const realBefore = reals.map((r) => deltaLines(r).length);
    const got = await all<Extract<WorkerEv, { ev: "changed" }>>(workers, "changed");
    const cpu = got.reduce((a, g) => a + g.cpuS, 0);
    if (simCpuBefore !== undefined) simCpu.push(cpu - simCpuBefore);
    simCpuBefore = cpu;
    for (const [k, r] of reals.entries()) {
      const d = await waitUntil(
        `${r.name} to apply the change`,
        () => deltaLines(r)[realBefore[k]!],
        30_000,
        20,
      );
      realLat.push(d.time - since);
      realApply.push(d.ms ?? 0);
    }
    const h = hub;
    const conv = await waitUntil(
      "the hub to see every ACK",
      () => {
        const all = hubConvergences(h);
        return all.length > before ? all[all.length - 1] : undefined;
      },
      30_000,
      20,
    );
    hubConv.push(conv.ms);
    // the EndpointSlice written to the API server → the hub holds the last of the 1,000 ACKs (its log line's time; ms resolution)
    endToEnd.push(conv.time - since);
    const lat = got.flatMap((g) => g.latencies);
    p50s.push(percentile(lat, 50));
    p99s.push(percentile(lat, 99));
    bytesPerChange.push(got.reduce((a, g) => a + g.bytes, 0) / AGENTS);
  }
  results["change_all_agents_p50_ms"] = Math.round(percentile(p50s, 50) * 10) / 10;
  results["change_all_agents_p99_ms"] = Math.round(percentile(p99s, 50) * 10) / 10;
  results["change_all_agents_p99_worst_ms"] = Math.round(Math.max(...p99s) * 10) / 10;
  results["bytes_per_agent_per_endpoint_change"] = Math.round(percentile(bytesPerChange, 50));
  // measured inside the hub: its view changed → the last of the 1,000 ACKs arrived
  results["endpointslice_written_to_all_acked_p50_ms"] = Math.round(percentile(endToEnd, 50));
  results["endpointslice_written_to_all_acked_p90_ms"] = Math.round(percentile(endToEnd, 90));
  results["endpointslice_written_to_all_acked_p99_ms"] = Math.round(percentile(endToEnd, 99));
  results["hub_view_change_to_all_acked_p50_ms"] = Math.round(percentile(hubConv, 50) * 10) / 10;
  results["hub_view_change_to_all_acked_p90_ms"] = Math.round(percentile(hubConv, 90) * 10) / 10;
  results["hub_view_change_to_all_acked_p99_ms"] = Math.round(percentile(hubConv, 99) * 10) / 10;
  results["hub_view_change_to_all_acked_max_ms"] = Math.round(Math.max(...hubConv) * 10) / 10;
  if (process.env["BENCH_VERBOSE"])
    console.error(`hub convergence per change (ms, sorted): ${[...hubConv].sort((a, b) => a - b).join(" ")}`);
  if (reals.length > 0) {
    // the change applied to a real agent's BPF maps (its log time; ms resolution)
    results["real_agent_change_maps_written_p50_ms"] = Math.round(percentile(realLat, 50));
    results["real_agent_change_maps_written_p99_ms"] = Math.round(percentile(realLat, 99));
    results["real_agent_apply_one_change_p50_ms"] = percentile(realApply, 50);
  }
  const afterChanges = hubStats(hub);
  // every process on the machine (hub, simulated and real agents, this driver, the API server): the 2 cores' budget per change
  results["machine_cpu_ms_per_change"] = Math.round(((machineBusyS() - machineBefore) * 1000) / CHANGES);
  // the simulated agents' share: receiving one change and ACKing it, 1,000 times
  results["sim_agents_cpu_ms_per_change"] = Math.round(percentile(simCpu, 50) * 1000);
  if (reals.length > 0)
    results["real_agent_cpu_ms_per_change"] = Math.round(
      (reals.reduce((a, r, k) => a + cpuOf(`/proc/${r.proc.cp.pid}`) - realCpuBefore[k]!, 0) * 1000) /
        reals.length /
        CHANGES,
    );
  // this driver: the test API server's watch, the agents' logs, IPC
  const driverCpu = process.cpuUsage(driverCpuBefore);
  results["driver_cpu_ms_per_change"] = Math.round((driverCpu.user + driverCpu.system) / 1000 / CHANGES);
  results["hub_cpu_ms_per_change"] = Math.round(((afterChanges.cpuS - afterSync.cpuS) * 1000) / CHANGES);
  results["hub_main_thread_cpu_ms_per_change"] = Math.round(
    ((afterChanges.mainThreadCpuS - afterSync.mainThreadCpuS) * 1000) / CHANGES,
  );
  if (values.until === "changes") throw new Done();

  // every agent restarted with the hub up (a rolling restart, all at once): each resumes from what it holds
  // (a real agent from its held view on disk), so the hub sends a Welcome and nothing else
  for (const w of workers) w.send({ cmd: "reset" });
  await all(workers, "reset");
  const restartCpuBefore = hubStats(hub);
  const realWritesBeforeRestart = reals.map(
    (r) => logLines(r.proc).filter((l) => l.msg === "maps updated").length,
  );
  const tRestart = wall();
  for (const w of workers) w.send({ cmd: "reconnect", address });
  const restarted = await all<Extract<WorkerEv, { ev: "reattached" }>>(workers, "reattached");
  results["agents_restart_all_resumed_ms"] = Math.round(Math.max(...restarted.map((b) => b.at)) - tRestart);
  results["agents_restart_bytes_per_agent"] = Math.round(restarted.reduce((a, b) => a + b.bytes, 0) / AGENTS);
  results["agents_restart_hub_cpu_s"] = Math.round((hubStats(hub).cpuS - restartCpuBefore.cpuS) * 100) / 100;
  if (reals.length > 0) {
    let realWrites = 0;
    let realDeltas = 0;
    for (const [k, r] of reals.entries()) {
      realWrites +=
        logLines(r.proc).filter((l) => l.msg === "maps updated").length - realWritesBeforeRestart[k]!;
      await r.proc.stop();
      r.proc = runReal(r.name, r.sandbox, r.pinDir, address);
      await r.proc.waitFor(/complete view from the hub/, 300_000);
      const lines = logLines(r.proc);
      realWrites += lines.filter((l) => l.msg === "maps updated").length;
      realDeltas += lines.filter((l) => String(l.msg).startsWith("delta ")).length;
    }
    // the agent binary restarted: resumes from its held view (in sync), writes nothing
    results["agents_restart_real_agent_map_writes"] = realWrites;
    results["agents_restart_real_agent_deltas_received"] = realDeltas;
  }
  if (values.until === "restart") throw new Done();

  // reconnect storm: hub killed and restarted; every agent resumes at once
  const realWritesBefore = reals.map((r) => logLines(r.proc).filter((l) => l.msg === "maps updated").length);
  await hub.stop("SIGKILL");
  for (const w of workers) w.send({ cmd: "reset" });
  await all(workers, "reset");
  t0 = wall();
  hub = startHub(port);
  await hub.waitFor(/listening 127\.0\.0\.1:\d+/, 300_000);
  results["reconnect_storm_hub_restart_to_listening_ms"] = Math.round(wall() - t0);
  const tReconnect = wall();
  for (const w of workers) w.send({ cmd: "reconnect", address });
  const back = await all<Extract<WorkerEv, { ev: "reattached" }>>(workers, "reattached");
  results["reconnect_storm_resync_ms"] = Math.round(Math.max(...back.map((b) => b.at)) - tReconnect);
  results["reconnect_storm_bytes_resent_per_agent"] = Math.round(
    back.reduce((a, b) => a + b.bytes, 0) / AGENTS,
  );
  results["reconnect_storm_agents_asked_to_resend_versions"] = back.reduce((a, b) => a + b.resends, 0);
  if (reals.length > 0) {
    await Promise.all(
      reals.map((r) =>
        waitUntil(
          `${r.name} to rejoin`,
          () => (logLines(r.proc).filter((l) => l.msg === "joined hub").length >= 2 ? true : undefined),
          120_000,
          100,
        ),
      ),
    );
    // a hub restart must cost the data plane nothing
    results["reconnect_storm_real_agent_map_writes"] = reals.reduce(
      (a, r, k) => a + logLines(r.proc).filter((l) => l.msg === "maps updated").length - realWritesBefore[k]!,
      0,
    );
  }
  const end = hubStats(hub);
  results["hub_rss_mib_after_storm"] = end.rssMiB;
  results["hub_rss_mib_peak_storm"] = end.peakRssMiB;
} catch (e) {
  if (!(e instanceof Done)) {
    console.error(hub?.output().slice(-3000));
    throw e;
  }
} finally {
  await cleanup();
}

const probeAfter = await speedProbe();
results["machine_probe_sha256_64mb_ms_after"] = probeAfter.cpuMs;
results["machine_probe_loopback_20k_round_trips_ms_after"] = probeAfter.loopbackMs;
const out = {
  machine: machine(),
  date: new Date().toISOString(),
  agents: AGENTS,
  agent_worker_processes: WORKERS,
  // which simulated agents (c: bench/c/sims.c, node: bench/protocol-sims.ts) and the hub's --io-threads
  sim_agents: values.sims,
  hub_io_threads: values["io-threads"] ?? "default",
  // the hub's HTTP/2 stack: node:http2 only since issue 14 (protocol-front-own.json holds the last run of its own framing)
  hub_front: "http2",
  services: SERVICES,
  endpoints: SERVICES * ENDPOINTS_PER_SERVICE,
  ...results,
};
for (const [k, v] of Object.entries(out)) console.log(`${k.padEnd(48)} ${v}`);
const outFile = values.out ?? (values.until === "storm" ? "bench/results/protocol.json" : undefined);
if (outFile) {
  const file = path.resolve(REPO, outFile);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    `${JSON.stringify({ ...out, plain_agents: values.plain, until: values.until }, null, 2)}\n`,
  );
  console.log(`wrote ${path.relative(REPO, file)}`);
} else console.log(`partial run (--until ${values.until}): no results file written (give --out FILE)`);
process.exit(0);
