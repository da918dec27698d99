/**
 * `npm run bench:dataplane` — connects/s and UDP datagrams/s from a client in
 * a network namespace + cgroup, side by side, at 1, 1,000 and 10,000
 * Services (10 backends each: 100,000 at 10k):
 *
 *   direct      the client connects to a backend address (no rules, no programs): the physical limit
 *   switchyard  the client connects to the ClusterIP; our cgroup programs translate (events off / on + consumed)
 *   lrp         the client connects to a LocalRedirectPolicy's address frontend (LRP_VIP) whose local
 *               pods are the same backends (fallback: the last Service); events off
 *   bp          the client connects to a BalancingPolicy's address frontend (BP_VIP) whose backends
 *               (addressEndpoint) are the same addresses; events off
 *   iptables    kube-proxy iptables mode (legacy iptables): KUBE-SERVICES → KUBE-SVC (statistic) → KUBE-SEP (DNAT)
 *   nftables    kube-proxy nftables mode: a verdict map on daddr . proto . port → numgen → DNAT
 *
 *   non-service the client in Switchyard's cgroup connects to the backends' own addresses (no frontend):
 *               what every other program on the node pays for Switchyard being attached
 *
 * and the reverse hooks, direct and through the ClusterIP (events off): a connect and its getpeername
 * (`connect_getpeername_*`), a UDP request and its reply (`udp_request_reply_*`); a peer or reply
 * that is not the address asked for fails the run.
 *
 * Client and sink are small C programs, so Node is not what is measured.
 * Each figure is the median of ROUNDS runs of DURATION_MS, measured
 * interleaved with direct; and per CPU-second of the client (`*_cpu_ratio_*`),
 * which the other jobs of a shared machine blur far less. Beside the throughput, the kernel's own counters
 * (run_cnt, run_time_ns) give ns per invocation of each hook in each Switchyard
 * case (`kernel_ns_per_run_<scale>`), which the noise of a shared machine does
 * not blur. They come from a pass of their own, each case run once more with
 * the kernel's statistics on: the throughput runs go with them off (they cost
 * two clock reads a program run). Writes bench/results/dataplane.json.
 *
 *   node bench/dataplane.ts [--scales 1,1000,10000] [--duration-ms 1500] [--rounds 3]
 *     [--skip-kube-proxy] [--protos tcp,udp] [--object bpf/build/switchyard.bpf.o] [--out bench/results/dataplane.json]
 *     [--before results-of-an-earlier-run.json]
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { silentLogger } from "@switchyard/lib/log";
import { findCgroup2Root } from "@switchyard/lib/mounts";
import {
  NatMode,
  Protocol,
  type Resource,
  StreamAssignmentsResponse,
  TrafficDistribution,
} from "@switchyard/proto/assignment";
import { AgentCore } from "../services/nodeagent/src/agent.ts";
import { LibbpfDatapath, PROGRAMS, uninstallPins } from "../services/nodeagent/src/bpf/datapath.ts";
import { enableKernelStats, nsPerRun, type ProgStats } from "../services/nodeagent/src/bpf/prog-stats.ts";
import { bpResource } from "../services/nodeagent/src/testing/balancing.ts";
import { lrpbResource, lrpResource } from "../services/nodeagent/src/testing/local-redirect.ts";
import { BPF_OBJECT } from "../test/kit/datapath-harness.ts";
import { REPO, watchProcess } from "../test/kit/proc.ts";
import { Sandbox } from "../test/kit/sandbox.ts";
import { buildCTools } from "./c-tools.ts";
import { machine, percentile } from "./stats.ts";

const { values } = parseArgs({
  options: {
    scales: { type: "string", default: "1,1000,10000" },
    "duration-ms": { type: "string", default: "1500" },
    rounds: { type: "string", default: "3" },
    /** measure Switchyard and direct only (loading 10k Services into nftables takes minutes) */
    "skip-kube-proxy": { type: "boolean", default: false },
    /** another build of the BPF object (libsyring.so beside it), e.g. the one before a change */
    object: { type: "string", default: BPF_OBJECT },
    out: { type: "string", default: "bench/results/dataplane.json" },
    /** a results file of an earlier run (e.g. before a change): its kernel figures and ratios are kept as `before` */
    before: { type: "string" },
    /** which of tcp,udp to measure */
    protos: { type: "string", default: "tcp,udp" },
  },
});
const KUBE_PROXY = !values["skip-kube-proxy"];
const SCALES = values.scales.split(",").map(Number);
const DURATION = Number(values["duration-ms"]);
const ROUNDS = Number(values.rounds);
const BACKENDS_PER_SERVICE = 10;
const SINK_IPS = Array.from({ length: BACKENDS_PER_SERVICE }, (_, i) => `198.18.50.${11 + i}`);
const PORT = 8080;
/** a LocalRedirectPolicy's address frontend, beside the Services */
const LRP_VIP = "169.254.20.10";
/** a BalancingPolicy's address frontend, beside the Services */
const BP_VIP = "169.254.30.10";

if (process.getuid?.() !== 0) {
  console.error("bench:dataplane needs root (BPF, cgroups, network namespaces)");
  process.exit(1);
}

// --- build the C client and sink ---
const { buildDir } = buildCTools();

const vip = (i: number) => `10.96.${(i >> 8) & 255}.${i & 255}`;
const farBackend = (i: number, j: number) =>
  `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${(((i & 255) * BACKENDS_PER_SERVICE + j) % 250) + 1}`;
/** the measured service is the last one (the worst place in a linear rule list) */
const backendsOf = (i: number, n: number) =>
  i === n - 1 ? SINK_IPS : Array.from({ length: BACKENDS_PER_SERVICE }, (_, j) => farBackend(i, j));

const sb = Sandbox.create("bench");
const plainCgroup = path.join(findCgroup2Root(), `${sb.name}-plain`);
fs.mkdirSync(plainCgroup);
const pinDir = `/sys/fs/bpf/${sb.name}`;
let dp: LibbpfDatapath | undefined;
const sink = { stop: () => {} };
let statsOff: (() => void) | undefined;

function cleanup(): void {
  statsOff?.();
  sink.stop();
  try {
    nsExec("iptables-legacy", ["-t", "nat", "-F"]);
    nsExec("nft", ["flush", "ruleset"]);
  } catch {}
  dp?.close();
  try {
    uninstallPins(pinDir);
  } catch {}
  sb.cleanup();
  try {
    fs.rmdirSync(plainCgroup);
  } catch {}
}
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

function nsExec(cmd: string, args: string[], input?: string): string {
  return execFileSync("nsenter", [`--net=/run/netns/${sb.netns}`, cmd, ...args], {
    encoding: "utf8",
    ...(input ? { input } : {}),
    maxBuffer: 1 << 28,
  });
}

/**
 * Runs the C client to completion without blocking the event loop, so the
 * ring-buffer reader keeps consuming events in Node while it runs (the cost
 * "events on" is meant to include).
 */
/** tcp, udp: connects, datagrams; tcppeer: connect + getpeername; udprr: a request and its reply (the reverse hooks) */
type ClientMode = "tcp" | "udp" | "tcppeer" | "udprr";
async function runClient(cgroup: string, proto: ClientMode, ip: string, port: number): Promise<number> {
  const script = `echo $$ > "${cgroup}/cgroup.procs" && exec nsenter --net=/run/netns/${sb.netns} "$@"`;
  const cp = spawn(
    "sh",
    ["-c", script, "sh", path.join(buildDir, "client"), proto, ip, String(port), String(DURATION)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  cp.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((resolve) => cp.on("exit", resolve));
  const res = JSON.parse(out.trim()) as { ops: number; errors: number; seconds: number; cpu_seconds: number };
  if (res.ops === 0)
    throw new Error(`${proto} ${ip}:${port} from ${cgroup}: no successful operation (${res.errors} errors)`);
  // a reply or peer that is not the address asked for is a broken reverse translation, not noise
  if ((proto === "tcppeer" || proto === "udprr") && res.errors > 0)
    throw new Error(
      `${proto} ${ip}:${port} from ${cgroup}: ${res.errors} answers not from the address asked for`,
    );
  cpuSamples?.push(res.ops / res.cpu_seconds);
  return res.ops / res.seconds;
}
/** where the run in progress puts its operations per CPU-second of the client (set by `measure`) */
let cpuSamples: number[] | undefined;

const median = (xs: number[]) => percentile(xs, 50);

type Program = (typeof PROGRAMS)[number];
/** per Switchyard case: the kernel's run counters summed over its runs */
const kernelRuns = new Map<string, Record<Program, ProgStats>>();
/** the cases the kernel pass of the scale in progress runs (see `kernelPass`) */
const kernelCases: Array<[string, () => Promise<number>]> = [];
/**
 * `fn`, and registers it for the kernel pass under `name`. The throughput
 * runs go with the kernel's statistics off: with them on, every program run
 * reads the clock twice more, a cost Switchyard would not have in service
 * and `direct` does not pay.
 */
function counted(name: string, fn: () => Promise<number>): () => Promise<number> {
  kernelCases.push([name, fn]);
  return fn;
}
/**
 * The kernel pass: statistics on (BPF_ENABLE_STATS, off again when its fd
 * closes), each registered case run once, and what each program ran
 * meanwhile added to `kernelRuns[name]`.
 */
async function kernelPass(): Promise<void> {
  const off = enableKernelStats();
  statsOff = off;
  try {
    for (const [name, fn] of kernelCases.splice(0)) {
      const before = dp!.programStats();
      await fn();
      const after = dp!.programStats();
      const acc = kernelRuns.get(name) ?? ({} as Record<Program, ProgStats>);
      for (const p of PROGRAMS) {
        const a = acc[p] ?? { runCnt: 0n, runTimeNs: 0n };
        acc[p] = {
          runCnt: a.runCnt + after[p].runCnt - before[p].runCnt,
          runTimeNs: a.runTimeNs + after[p].runTimeNs - before[p].runTimeNs,
        };
      }
      kernelRuns.set(name, acc);
    }
  } finally {
    off();
    statsOff = undefined;
  }
}
/**
 * ns per invocation of each hook that ran in each case ("sy_" dropped). A hook
 * that ran fewer than 100 times in a case is left out: the close of a UDP
 * client's one socket (sock_release) says nothing per datagram.
 */
function kernelFigures(): Record<string, Record<string, number>> {
  const zero = { runCnt: 0n, runTimeNs: 0n };
  const out: Record<string, Record<string, number>> = {};
  for (const [name, acc] of kernelRuns) {
    const row: Record<string, number> = {};
    for (const p of PROGRAMS) {
      if (acc[p].runCnt < 100n) continue;
      const ns = nsPerRun(zero, acc[p]);
      if (ns !== undefined) row[p.replace(/^sy_/, "")] = Math.round(ns);
    }
    out[name] = row;
  }
  kernelRuns.clear();
  return out;
}

/**
 * Measures several variants interleaved, ROUNDS times each; returns medians
 * of operations per second (`k`) and per CPU-second of the client (`k_cpu`:
 * what other jobs on a shared machine blur far less).
 */
async function measure(variants: Record<string, () => Promise<number>>): Promise<Record<string, number>> {
  const samples: Record<string, number[]> = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, fn] of Object.entries(variants)) {
      const list = samples[k] ?? [];
      const cpu = samples[`${k}_cpu`] ?? [];
      cpuSamples = cpu;
      list.push(await fn());
      cpuSamples = undefined;
      samples[k] = list;
      samples[`${k}_cpu`] = cpu;
    }
  }
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
}

function resources(n: number): Resource[] {
  const out: Resource[] = [];
  for (let i = 0; i < n; i++) {
    const name = `svc/bench/ns/s${i}`;
    const svcBody = {
      cluster: "bench",
      namespace: "ns",
      name: `s${i}`,
      frontends: [
        {
          ip: vip(i),
          port: 80,
          protocol: Protocol.PROTOCOL_TCP,
          mode: NatMode.NAT_MODE_CLUSTER_IP,
          portName: "http",
        },
        {
          ip: vip(i),
          port: 53,
          protocol: Protocol.PROTOCOL_UDP,
          mode: NatMode.NAT_MODE_CLUSTER_IP,
          portName: "dns",
        },
      ],
      externalTrafficLocal: false,
      internalTrafficLocal: false,
      affinityTimeoutSeconds: 0,
      backendTiers: [],
      trafficDistribution: TrafficDistribution.TRAFFIC_DISTRIBUTION_UNSPECIFIED,
      externalTrafficStrict: false,
    };
    out.push({ name, version: "1", body: { $case: "service", value: svcBody } });
    out.push({
      name: `eps/bench/ns/s${i}`,
      version: "1",
      body: {
        $case: "backendSlice",
        value: {
          service: name,
          ports: [
            { name: "http", port: PORT, protocol: Protocol.PROTOCOL_TCP },
            { name: "dns", port: PORT, protocol: Protocol.PROTOCOL_UDP },
          ],
          endpoints: backendsOf(i, n).map((ip) => ({
            addresses: [ip],
            nodeName: "n",
            ready: true,
            serving: true,
            terminating: false,
            zone: "",
            forZones: [],
          })),
        },
      },
    });
  }
  return out;
}

function svcHash(i: number, proto: string): string {
  return `${proto.toUpperCase()}${i.toString(36).toUpperCase().padStart(12, "0")}`;
}

function iptablesRules(n: number): string {
  const lines = ["*nat", ":KUBE-SERVICES - [0:0]"];
  const body: string[] = ['-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'];
  for (let i = 0; i < n; i++) {
    for (const [proto, port] of [
      ["tcp", 80],
      ["udp", 53],
    ] as const) {
      const svc = `KUBE-SVC-${svcHash(i, proto)}`;
      lines.push(`:${svc} - [0:0]`);
      body.push(
        `-A KUBE-SERVICES -d ${vip(i)}/32 -p ${proto} -m comment --comment "ns/s${i}:${proto}" -m ${proto} --dport ${port} -j ${svc}`,
      );
      const bs = backendsOf(i, n);
      bs.forEach((b, j) => {
        const sep = `KUBE-SEP-${svcHash(i, proto)}${j}`;
        lines.push(`:${sep} - [0:0]`);
        const left = bs.length - j;
        body.push(
          left > 1
            ? `-A ${svc} -m statistic --mode random --probability ${(1 / left).toFixed(11)} -j ${sep}`
            : `-A ${svc} -j ${sep}`,
        );
        body.push(`-A ${sep} -p ${proto} -m ${proto} -j DNAT --to-destination ${b}:${PORT}`);
      });
    }
  }
  return `${[...lines, ...body, "COMMIT"].join("\n")}\n`;
}

/**
 * kube-proxy nftables mode's lookup: one verdict map on daddr . proto . port,
 * then a per-service chain that picks an endpoint with numgen. kube-proxy
 * jumps to one chain per endpoint for the DNAT; here the DNAT takes its
 * target from an inline numgen map in the service chain instead, which is
 * no slower per packet and has far fewer chains to load (so if anything the
 * comparison favours nftables); loading 10k services still takes minutes.
 */
function nftRules(n: number): string {
  const chains: string[] = [];
  const elements: string[] = [];
  for (let i = 0; i < n; i++) {
    for (const [proto, port] of [
      ["tcp", 80],
      ["udp", 53],
    ] as const) {
      const svc = `service-${i}-${proto}`;
      elements.push(`${vip(i)} . ${proto} . ${port} : goto ${svc}`);
      const bs = backendsOf(i, n);
      chains.push(
        `  chain ${svc} {\n    meta l4proto ${proto} dnat ip to numgen random mod ${bs.length} map { ${bs.map((b, j) => `${j} : ${b} . ${PORT}`).join(", ")} }\n  }`,
      );
    }
  }
  return `table ip kube-proxy {
  map service-ips {
    type ipv4_addr . inet_proto . inet_service : verdict
    elements = { ${elements.join(",\n      ")} }
  }
${chains.join("\n")}
  chain services {
    ip daddr . meta l4proto . th dport vmap @service-ips
  }
  chain nat-output {
    type nat hook output priority -100; policy accept;
    jump services
  }
}
`;
}

const results: Record<string, unknown> = {};
const cpuLines: string[] = [];
const table: string[][] = [];
try {
  for (const ip of SINK_IPS) sb.addAddress(ip);
  nsExec("ip", ["route", "add", "10.96.0.0/12", "dev", "lo"]); // kube-proxy modes need a route to the VIP; it stays in the namespace
  nsExec("sysctl", ["-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"]);
  const sinkProc = watchProcess(sb.spawnInNetns(path.join(buildDir, "sink"), ["0.0.0.0", String(PORT)]));
  await sinkProc.waitFor(/ready/);
  sink.stop = () => void sinkProc.stop("SIGKILL");

  dp = LibbpfDatapath.open({
    objectPath: path.resolve(REPO, values.object),
    pinDir,
    cgroupPath: sb.cgroup,
    log: silentLogger(),
  });
  dp.attachNow(); // a first start attaches only when told
  const core = new AgentCore(dp.maps, "bench", [], silentLogger());
  let consumed = 0;
  const reader = dp.readEvents(() => {
    consumed++;
  });

  for (const n of SCALES) {
    const label = n >= 1000 ? `${n / 1000}k` : String(n);
    const target = vip(n - 1);
    // Switchyard: load through the agent's own planner and map writer
    core.store.resources.clear();
    const t0 = performance.now();
    // and one LocalRedirectPolicy on LRP_VIP: its local pods are the sinks, its fallback the last Service
    const fallback = { fallbackService: `svc/bench/ns/s${n - 1}` };
    const lrp = [
      lrpResource(
        "lrp",
        "address",
        [
          { ip: LRP_VIP, port: 80, protocol: "TCP", portName: "http", ...fallback, fallbackPortName: "http" },
          { ip: LRP_VIP, port: 53, protocol: "UDP", portName: "dns", ...fallback, fallbackPortName: "dns" },
        ],
        { cluster: "bench" },
      ),
      lrpbResource(
        "lrp",
        "bench",
        [
          { name: "http", port: PORT, protocol: "TCP" },
          { name: "dns", port: PORT, protocol: "UDP" },
        ],
        SINK_IPS.map((ip, i) => ({ name: `sink-${i}`, ips: [ip] })),
        "bench",
      ),
      // and one BalancingPolicy on BP_VIP: its backends (addressEndpoint) are the sinks
      bpResource(
        "bp",
        { address: true },
        [
          { ip: BP_VIP, port: 80, protocol: "TCP", portName: "http" },
          { ip: BP_VIP, port: 53, protocol: "UDP", portName: "dns" },
        ],
        [
          { name: "http", port: PORT, protocol: "TCP" },
          { name: "dns", port: PORT, protocol: "UDP" },
        ],
        SINK_IPS,
        { cluster: "bench" },
      ),
    ];
    const errs = core.onDelta(
      StreamAssignmentsResponse.fromPartial({
        nonce: "x",
        resources: [...resources(n), ...lrp],
        viewComplete: true,
      }),
    );
    if (errs.length) throw new Error(`loading ${n} services: ${JSON.stringify(errs.slice(0, 3))}`);
    results[`switchyard_load_ms_${label}`] = Math.round(performance.now() - t0);

    const PROTOS = (
      [
        { proto: "tcp", port: 80, kind: "connect", unit: "connects_per_s" },
        { proto: "udp", port: 53, kind: "udp", unit: "datagrams_per_s" },
      ] as const
    ).filter((p) => values.protos.split(",").includes(p.proto));
    const direct = (proto: "tcp" | "udp") => () => runClient(plainCgroup, proto, SINK_IPS.join(","), PORT);
    const viaVip = (cgroup: string, proto: ClientMode, port: number) => () =>
      runClient(cgroup, proto, target, port);
    /** the same addresses as direct, from Switchyard's cgroup: no frontend matches */
    const nonService = (proto: "tcp" | "udp") => () => runClient(sb.cgroup, proto, SINK_IPS.join(","), PORT);
    const got: Record<string, Record<string, number>> = {};
    for (const { proto, port } of PROTOS) {
      dp.maps.writeSettings({ eventsOn: false, sampleOneIn: 1 });
      const before = consumed;
      const dropsBefore = dp.maps.counters()["events_dropped"] ?? 0n;
      // events on is one more variant in the same rounds (on for its own runs only), so its ratio to off
      // compares runs made side by side, not a later batch on a machine whose speed drifts
      const off = await measure({
        direct: direct(proto),
        sy: counted(`${proto}_vip`, viaVip(sb.cgroup, proto, port)),
        sy_events: counted(`${proto}_vip_events_on`, async () => {
          dp!.maps.writeSettings({ eventsOn: true, sampleOneIn: 1 });
          try {
            return await viaVip(sb.cgroup, proto, port)();
          } finally {
            dp!.maps.writeSettings({ eventsOn: false, sampleOneIn: 1 });
          }
        }),
        lrp: () => runClient(sb.cgroup, proto, LRP_VIP, port),
        bp: () => runClient(sb.cgroup, proto, BP_VIP, port),
        nonsvc: counted(`${proto}_non_service`, nonService(proto)),
      });
      await new Promise((r) => setTimeout(r, 200)); // let the reader drain the rest
      const dropped = Number((dp.maps.counters()["events_dropped"] ?? 0n) - dropsBefore);
      got[proto] = { ...off, events: consumed - before, dropped };
    }
    // the reverse hooks: getpeername after each connect, a reply to each datagram (events off)
    const reverse: Record<string, () => Promise<number>> = {};
    if (PROTOS.some((p) => p.proto === "tcp")) {
      reverse["peer_direct"] = () => runClient(plainCgroup, "tcppeer", SINK_IPS.join(","), PORT);
      reverse["peer_sy"] = counted("tcp_vip_getpeername", viaVip(sb.cgroup, "tcppeer", 80));
    }
    if (PROTOS.some((p) => p.proto === "udp")) {
      reverse["rr_direct"] = () => runClient(plainCgroup, "udprr", SINK_IPS.join(","), PORT);
      reverse["rr_sy"] = counted("udp_vip_request_reply", viaVip(sb.cgroup, "udprr", 53));
    }
    const rev = await measure(reverse);
    if (rev["peer_sy"]) {
      results[`connect_getpeername_per_s_direct_${label}`] = Math.round(rev["peer_direct"]!);
      results[`connect_getpeername_per_s_switchyard_${label}`] = Math.round(rev["peer_sy"]);
      results[`connect_getpeername_ratio_vs_direct_${label}`] = round(rev["peer_sy"] / rev["peer_direct"]!);
    }
    if (rev["rr_sy"]) {
      results[`udp_request_reply_per_s_direct_${label}`] = Math.round(rev["rr_direct"]!);
      results[`udp_request_reply_per_s_switchyard_${label}`] = Math.round(rev["rr_sy"]);
      results[`udp_request_reply_ratio_vs_direct_${label}`] = round(rev["rr_sy"] / rev["rr_direct"]!);
    }
    await kernelPass();
    results[`kernel_ns_per_run_${label}`] = kernelFigures();
    if (KUBE_PROXY) {
      let t = performance.now();
      nsExec("iptables-legacy-restore", ["--noflush"], iptablesRules(n));
      results[`iptables_load_ms_${label}`] = Math.round(performance.now() - t);
      for (const { proto, port } of PROTOS)
        Object.assign(got[proto]!, await measure({ iptables: viaVip(plainCgroup, proto, port) }));
      nsExec("iptables-legacy", ["-t", "nat", "-F"]);
      nsExec("iptables-legacy", ["-t", "nat", "-X"]);
      t = performance.now();
      nsExec("nft", ["-f", "-"], nftRules(n));
      results[`nftables_load_ms_${label}`] = Math.round(performance.now() - t);
      for (const { proto, port } of PROTOS)
        Object.assign(got[proto]!, await measure({ nftables: viaVip(plainCgroup, proto, port) }));
      nsExec("nft", ["flush", "ruleset"]);
    }

    for (const { proto, kind, unit } of PROTOS) {
      const g = got[proto]!;
      results[`${kind}_${unit}_direct_${label}`] = Math.round(g["direct"]!);
      results[`${kind}_${unit}_switchyard_${label}`] = Math.round(g["sy"]!);
      results[`${kind}_${unit}_switchyard_events_on_${label}`] = Math.round(g["sy_events"]!);
      results[`${kind}_${unit}_non_service_${label}`] = Math.round(g["nonsvc"]!);
      results[`${kind}_non_service_ratio_vs_direct_${label}`] = round(g["nonsvc"]! / g["direct"]!);
      if (KUBE_PROXY) {
        results[`${kind}_${unit}_iptables_${label}`] = Math.round(g["iptables"]!);
        results[`${kind}_${unit}_nftables_${label}`] = Math.round(g["nftables"]!);
        results[`${kind}_ratio_vs_iptables_${label}`] = round(g["sy"]! / g["iptables"]!);
        results[`${kind}_ratio_vs_nftables_${label}`] = round(g["sy"]! / g["nftables"]!);
      }
      results[`${kind}_ratio_vs_direct_${label}`] = round(g["sy"]! / g["direct"]!);
      results[`${kind}_${unit}_local_redirect_${label}`] = Math.round(g["lrp"]!);
      results[`${kind}_local_redirect_ratio_vs_direct_${label}`] = round(g["lrp"]! / g["direct"]!);
      results[`${kind}_${unit}_balancing_${label}`] = Math.round(g["bp"]!);
      results[`${kind}_balancing_ratio_vs_direct_${label}`] = round(g["bp"]! / g["direct"]!);
      const cpu = (k: string) => g[`${k}_cpu`]!;
      results[`${kind}_cpu_ratio_vs_direct_${label}`] = round(cpu("sy") / cpu("direct"));
      results[`${kind}_cpu_ratio_events_on_vs_off_${label}`] = round(cpu("sy_events") / cpu("sy"));
      results[`${kind}_non_service_cpu_ratio_vs_direct_${label}`] = round(cpu("nonsvc") / cpu("direct"));
      if (KUBE_PROXY) {
        results[`${kind}_cpu_ratio_vs_iptables_${label}`] = round(cpu("sy") / cpu("iptables"));
        results[`${kind}_cpu_ratio_vs_nftables_${label}`] = round(cpu("sy") / cpu("nftables"));
      }
      cpuLines.push(
        `${proto} ${label} per CPU-second of the client: switchyard ÷ direct ${results[`${kind}_cpu_ratio_vs_direct_${label}`]}, events on ÷ off ${results[`${kind}_cpu_ratio_events_on_vs_off_${label}`]}, non-service ÷ direct ${results[`${kind}_non_service_cpu_ratio_vs_direct_${label}`]}${KUBE_PROXY ? `, ÷ iptables ${results[`${kind}_cpu_ratio_vs_iptables_${label}`]}, ÷ nftables ${results[`${kind}_cpu_ratio_vs_nftables_${label}`]}` : ""}`,
      );
      results[`${kind}_ratio_events_on_vs_off_${label}`] = round(g["sy_events"]! / g["sy"]!);
      results[`${kind}_events_consumed_${label}`] = g["events"]!;
      results[`${kind}_events_dropped_${label}`] = g["dropped"]!;
      table.push([
        `${proto} ${label}`,
        fmt(g["direct"]!),
        `${fmt(g["sy"]!)} (${round(g["sy"]! / g["direct"]!)}×)`,
        `${fmt(g["sy_events"]!)} (${round(g["sy_events"]! / g["sy"]!)}× off)`,
        `${fmt(g["lrp"]!)} (${round(g["lrp"]! / g["direct"]!)}×)`,
        `${fmt(g["bp"]!)} (${round(g["bp"]! / g["direct"]!)}×)`,
        `${fmt(g["nonsvc"]!)} (${round(g["nonsvc"]! / g["direct"]!)}×)`,
        KUBE_PROXY ? `${fmt(g["iptables"]!)} (sy ${round(g["sy"]! / g["iptables"]!)}×)` : "-",
        KUBE_PROXY ? `${fmt(g["nftables"]!)} (sy ${round(g["sy"]! / g["nftables"]!)}×)` : "-",
      ]);
    }
    process.stderr.write(
      `done: ${label} services; kernel ns per run: ${JSON.stringify(results[`kernel_ns_per_run_${label}`])}\n`,
    );
  }
  reader.close();
} finally {
  cleanup();
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
function fmt(x: number): string {
  return `${Math.round(x / 100) / 10}k/s`;
}

const header = [
  "",
  "direct",
  "switchyard (÷direct)",
  "switchyard events on",
  "local redirect (÷direct)",
  "balancing (÷direct)",
  "non-service (÷direct)",
  "iptables-legacy",
  "nftables",
];
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i]!.length)));
for (const row of [header, ...table]) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join("  "));
for (const line of cpuLines) console.log(line);
const out = {
  machine: machine(),
  date: new Date().toISOString(),
  duration_ms_per_run: DURATION,
  rounds: ROUNDS,
  backends_per_service: BACKENDS_PER_SERVICE,
  ...results,
  ...(values.before ? { before: beforeFigures(values.before) } : {}),
};

/**
 * The kernel figures and ratios of an earlier run's results, with its date,
 * the note it carries and its own `before` (so a chain of changes keeps its
 * first figures).
 */
function beforeFigures(file: string): Record<string, unknown> {
  const prev = JSON.parse(fs.readFileSync(path.resolve(REPO, file), "utf8")) as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(prev).filter(([k]) => /^(date|note|before$|kernel_ns_per_run_|.*_ratio_)/.test(k)),
  );
}
const outPath = path.resolve(REPO, values.out);
fs.mkdirSync(path.dirname(outPath), { recursive: true });
fs.writeFileSync(outPath, `${JSON.stringify(out, null, 2)}\n`);
console.log(`wrote ${outPath}`);
