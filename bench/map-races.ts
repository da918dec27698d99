/**
 * `node bench/map-races.ts` — what the race-free maps (issue 13 item 6)
 * cost, in two small measurements (about 15 s in all):
 *
 *   program    ns per run of sy_connect4 (TCP connect + RST close, C client
 *              and sink) and of sy_sendmsg4 (unconnected UDP), from the
 *              kernel's own counters (kernel.bpf_stats_enabled=1: run_time_ns
 *              / run_cnt of the programs attached to the bench's cgroup)
 *   writes     backend-set swaps through LibbpfMaps as the agent makes them
 *              (put the new set, flip the frontend; the old set retired: its
 *              deletion applied once a grace period run off the main thread
 *              has passed), one plan per round of SERVICES swaps: ms per plan
 *              on the main thread (apply, and the deletions landing), swaps/s,
 *              and the grace periods waited for on the main thread
 *
 * Runs against whichever tree it is in: copy it into a checkout of the code
 * before the change to get the "before" figures. Prints one JSON line.
 *
 * --gap-ms N leaves N ms between plans (an agent's plans are seldom back to
 * back), which lets the grace period started after a plan finish off the
 * main thread.
 *
 *   node bench/map-races.ts [--seconds 3] [--rounds 200] [--services 16] [--gap-ms 0]
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { parseArgs } from "node:util";
import { silentLogger } from "@switchyard/lib/log";
import { LibbpfDatapath, uninstallPins } from "../services/nodeagent/src/bpf/datapath.ts";
import type { Backend, MapOp } from "../services/nodeagent/src/bpf/maps.ts";
import { BPF_OBJECT } from "../test/kit/datapath-harness.ts";
import { watchProcess } from "../test/kit/proc.ts";
import { Sandbox } from "../test/kit/sandbox.ts";
import { buildCTools } from "./c-tools.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "3" },
    rounds: { type: "string", default: "200" },
    services: { type: "string", default: "16" },
    "gap-ms": { type: "string", default: "0" },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const SERVICES = Number(values.services);
const GAP_MS = Number(values["gap-ms"]);
const SINK = "198.18.60.11";
const PORT = 8080;

if (process.getuid?.() !== 0) {
  console.error("bench/map-races.ts needs root (BPF, cgroups, network namespaces)");
  process.exit(1);
}
const tools = buildCTools();

const sb = Sandbox.create("mapraces");
const pinDir = `/sys/fs/bpf/${sb.name}`;
const statsBefore = fs.readFileSync("/proc/sys/kernel/bpf_stats_enabled", "utf8").trim();
let dp: LibbpfDatapath | undefined;
try {
  dp = LibbpfDatapath.open({ objectPath: BPF_OBJECT, pinDir, cgroupPath: sb.cgroup, log: silentLogger() });
  const maps = dp.maps;
  sb.addAddress(SINK);
  const sink = watchProcess(sb.spawnInNetns(tools.sink, [SINK, String(PORT)]));
  await sink.waitFor(/ready/);

  const vip = (s: number) => `::ffff:10.96.60.${s + 1}`;
  const key = (s: number, proto: number) => ({ ip: vip(s), port: 80, proto, scope: 0 });
  const value = (s: number, setId: number, count: number) => ({
    svcId: s + 1,
    setId,
    count,
    affinityTimeoutS: 0,
    portId: s + 1,
    fbSetId: 0,
    fbCount: 0,
    qosPerSecond: 0,
    natType: 1,
    natMode: 1,
    flags: 0,
  });
  const sinkBackend: Backend = { ip: SINK, port: PORT };
  // set 1: the sink, for the program measurement (TCP and UDP frontends of service 0)
  maps.apply([
    { op: "put-backend", setId: 1, index: 0, backend: sinkBackend },
    { op: "put-frontend", key: key(0, 6), value: value(0, 1, 1) },
    { op: "put-frontend", key: key(0, 17), value: value(0, 1, 1) },
  ]);

  // --- program: ns per run from the kernel's counters ---
  const progIds = (): Record<string, number> => {
    const out = JSON.parse(
      execFileSync("bpftool", ["-j", "cgroup", "show", sb.cgroup], { encoding: "utf8" }),
    ) as Array<{
      id: number;
      name: string;
    }>;
    return Object.fromEntries(out.map((p) => [p.name, p.id]));
  };
  const runStats = (id: number) => {
    const p = JSON.parse(
      execFileSync("bpftool", ["-j", "prog", "show", "id", String(id)], { encoding: "utf8" }),
    ) as {
      run_time_ns?: number;
      run_cnt?: number;
    };
    return { ns: p.run_time_ns ?? 0, cnt: p.run_cnt ?? 0 };
  };
  const ids = progIds();
  fs.writeFileSync("/proc/sys/kernel/bpf_stats_enabled", "1");
  const measure = async (proto: "tcp" | "udp", prog: string) => {
    const id = ids[prog];
    if (id === undefined) throw new Error(`${prog} is not attached to ${sb.cgroup}`);
    const before = runStats(id);
    const script = `echo $$ > "${sb.cgroup}/cgroup.procs" && exec nsenter --net=/run/netns/${sb.netns} "$@"`;
    const client = watchProcess(
      spawn("sh", ["-c", script, "sh", tools.client, proto, "10.96.60.1", "80", String(SECONDS * 1000)], {
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    const r = JSON.parse((await client.waitFor(/^\{.*\}$/m, SECONDS * 1000 + 30_000))[0]) as { ops: number };
    const after = runStats(id);
    const cnt = after.cnt - before.cnt;
    return {
      ops: r.ops,
      runs: cnt,
      nsPerRun: cnt > 0 ? Math.round(((after.ns - before.ns) / cnt) * 10) / 10 : null,
    };
  };
  const connect4 = await measure("tcp", "sy_connect4");
  const sendmsg4 = await measure("udp", "sy_sendmsg4");
  fs.writeFileSync("/proc/sys/kernel/bpf_stats_enabled", statsBefore);

  // --- writes: set swaps, one plan per round ---
  const backend = (s: number, k: number): Backend => ({
    ip: `10.77.${s % 250}.${(k % 250) + 1}`,
    port: PORT,
  });
  const setOf = (s: number, r: number) => 1000 + r * SERVICES + s;
  const init: MapOp[] = [];
  for (let s = 0; s < SERVICES; s++) {
    init.push({ op: "put-backend", setId: setOf(s, 0), index: 0, backend: backend(s, 0) });
    init.push({ op: "put-frontend", key: key(s + 1, 6), value: value(s + 1, setOf(s, 0), 1) });
  }
  maps.apply(init);
  const grace = (maps as { grace?: { blockingWaits: number } }).grace;
  const waitsBefore = grace?.blockingWaits ?? 0;
  const readers = maps.readers;
  let retiring = 0;
  let drained: (() => void) | undefined;
  let ops = 0;
  let applyMs = 0;
  for (let r = 1; r <= ROUNDS; r++) {
    const plan: MapOp[] = [];
    for (let s = 0; s < SERVICES; s++)
      plan.push({ op: "put-backend", setId: setOf(s, r), index: 0, backend: backend(s, r) });
    for (let s = 0; s < SERVICES; s++)
      plan.push({ op: "put-frontend", key: key(s + 1, 6), value: value(s + 1, setOf(s, r), 1) });
    const retired: MapOp[] = [];
    for (let s = 0; s < SERVICES; s++)
      retired.push({ op: "delete-backend", setId: setOf(s, r - 1), index: 0, backend: backend(s, r - 1) });
    const a = performance.now();
    maps.apply(plan);
    const mark = readers.mark();
    retiring++;
    readers.afterReaders(mark, () => {
      const t = performance.now();
      maps.apply(retired, { setsUnlinkedAt: mark });
      applyMs += performance.now() - t;
      if (--retiring === 0) drained?.();
    });
    applyMs += performance.now() - a;
    ops += plan.length + retired.length;
    if (GAP_MS > 0) await new Promise((r) => setTimeout(r, GAP_MS));
    else await new Promise((r) => setImmediate(r)); // the agent's plans come from messages, one turn each
  }
  if (retiring > 0) await new Promise<void>((r) => (drained = r));
  console.log(
    JSON.stringify({
      object: BPF_OBJECT,
      connect4,
      sendmsg4,
      writes: {
        rounds: ROUNDS,
        services: SERVICES,
        swapsPerS: Math.round((ROUNDS * SERVICES) / (applyMs / 1000)),
        opsPerS: Math.round(ops / (applyMs / 1000)),
        gapMs: GAP_MS,
        msPerPlan: Math.round((applyMs * 100) / ROUNDS) / 100,
        graceWaitsBlocking: grace ? grace.blockingWaits - waitsBefore : null,
      },
    }),
  );
  await sink.stop();
} finally {
  fs.writeFileSync("/proc/sys/kernel/bpf_stats_enabled", statsBefore);
  dp?.close();
  try {
    uninstallPins(pinDir);
  } catch {}
  sb.cleanup();
}
