/**
 * `npm run bench:dataplane`, node-entry part — TCP connects/s across three
 * network namespaces as hosts (client ── veth ── entry node ── veth ── pod),
 * side by side:
 *
 *   direct     the client connects to the pod's address, routed through the entry node (no NAT)
 *   entry      the client connects to the entry address:port; the agent's nftables table
 *              (inet switchyard_entry, written by EntrySync as the agent does) DNATs it to the pod
 *   nodeport   kube-proxy-style NodePort DNAT (legacy iptables, as kube-proxy's iptables mode):
 *              PREROUTING → KUBE-SERVICES → KUBE-NODEPORTS → KUBE-SVC → KUBE-SEP (DNAT)
 *
 * TCP only: the C client's UDP mode counts datagrams sent, which a DNAT on
 * another host does not slow. Each figure is the median of ROUNDS runs of
 * DURATION_MS, interleaved. Writes bench/results/dataplane-entry.json.
 *
 *   node bench/dataplane-entry.ts [--duration-ms 1500] [--rounds 3] [--out bench/results/dataplane-entry.json]
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { EntrySync } from "../services/nodeagent/src/entry/entry-sync.ts";
import { NftEntryTable } from "../services/nodeagent/src/entry/nft-table.ts";
import { REPO, watchProcess } from "../test/kit/proc.ts";
import { Sandbox, uniqueName } from "../test/kit/sandbox.ts";
import { buildCTools } from "./c-tools.ts";
import { machine, percentile } from "./stats.ts";

const { values } = parseArgs({
  options: {
    "duration-ms": { type: "string", default: "1500" },
    rounds: { type: "string", default: "3" },
    out: { type: "string", default: "bench/results/dataplane-entry.json" },
  },
});
const DURATION = Number(values["duration-ms"]);
const ROUNDS = Number(values.rounds);
const CLIENT = "198.18.61.1";
const ENTRY = "198.18.61.2";
const POD = "10.244.61.10";
const PORT = 8080;
const NODE_PORT = 30080;

if (process.getuid?.() !== 0) {
  console.error("bench:dataplane needs root (network namespaces, nftables, iptables)");
  process.exit(1);
}

const { client } = buildCTools();
const sb = Sandbox.create("bentry");
const entryNs = uniqueName("bentryn");
const podNs = uniqueName("bentryp");
const made = { entry: false, pod: false };
let sinkStop = () => {};

const run = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const inNs = (ns: string, cmd: string, args: string[]) => run("ip", ["netns", "exec", ns, cmd, ...args]);

function cleanup(): void {
  sinkStop();
  for (const [ns, is] of [
    [entryNs, made.entry],
    [podNs, made.pod],
  ] as const)
    if (is)
      try {
        run("ip", ["netns", "del", ns]);
      } catch {}
  sb.cleanup();
}
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });

async function connects(ip: string, port: number): Promise<number> {
  const cp = spawn(
    "nsenter",
    [`--net=/run/netns/${sb.netns}`, client, "tcp", ip, String(port), String(DURATION)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  cp.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((resolve) => cp.on("exit", resolve));
  const r = JSON.parse(out.trim()) as { ops: number; errors: number; seconds: number };
  if (r.ops === 0) throw new Error(`tcp ${ip}:${port}: no successful connect (${r.errors} errors)`);
  return r.ops / r.seconds;
}

function kubeProxyNodePort(): string {
  return [
    "*nat",
    ":KUBE-SERVICES - [0:0]",
    ":KUBE-NODEPORTS - [0:0]",
    ":KUBE-SVC-ENTRYBENCH - [0:0]",
    ":KUBE-SEP-ENTRYBENCH - [0:0]",
    "-A PREROUTING -m comment --comment kubernetes-service-portals -j KUBE-SERVICES",
    "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
    `-A KUBE-NODEPORTS -p tcp -m tcp --dport ${NODE_PORT} -j KUBE-SVC-ENTRYBENCH`,
    "-A KUBE-SVC-ENTRYBENCH -j KUBE-SEP-ENTRYBENCH",
    `-A KUBE-SEP-ENTRYBENCH -p tcp -m tcp -j DNAT --to-destination ${POD}:${PORT}`,
    "COMMIT",
    "",
  ].join("\n");
}

try {
  run("ip", ["netns", "add", entryNs]);
  made.entry = true;
  run("ip", ["netns", "add", podNs]);
  made.pod = true;
  const tag = entryNs.slice(-6);
  run("ip", [
    "-n",
    sb.netns,
    "link",
    "add",
    `sbc${tag}`,
    "type",
    "veth",
    "peer",
    "name",
    `sbe${tag}`,
    "netns",
    entryNs,
  ]);
  run("ip", [
    "-n",
    entryNs,
    "link",
    "add",
    `sbp${tag}`,
    "type",
    "veth",
    "peer",
    "name",
    `sbq${tag}`,
    "netns",
    podNs,
  ]);
  const up = (ns: string, dev: string, addr: string) => {
    run("ip", ["-n", ns, "addr", "add", addr, "dev", dev]);
    run("ip", ["-n", ns, "link", "set", dev, "up"]);
  };
  up(sb.netns, `sbc${tag}`, `${CLIENT}/24`);
  up(entryNs, `sbe${tag}`, `${ENTRY}/24`);
  up(entryNs, `sbp${tag}`, "10.244.61.1/24");
  up(podNs, `sbq${tag}`, `${POD}/24`);
  for (const ns of [entryNs, podNs]) run("ip", ["-n", ns, "link", "set", "lo", "up"]);
  run("ip", ["-n", podNs, "route", "add", "default", "via", "10.244.61.1"]);
  run("ip", ["-n", sb.netns, "route", "add", "10.244.61.0/24", "via", ENTRY]);
  inNs(entryNs, "sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
  inNs(sb.netns, "sysctl", ["-qw", "net.ipv4.ip_local_port_range=1024 65535"]);
  const sink = watchProcess(
    spawn(
      "nsenter",
      [`--net=/run/netns/${podNs}`, path.join(path.dirname(client), "sink"), "0.0.0.0", String(PORT)],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    ),
  );
  await sink.waitFor(/ready/);
  sinkStop = () => void sink.stop("SIGKILL");

  // the agent's own table, written the way the agent writes it
  const entry = new EntrySync(new NftEntryTable(["ip", "netns", "exec", entryNs, "nft"]));
  const wrote = entry.sync(
    [
      {
        address: ENTRY,
        port: PORT,
        protocol: "TCP",
        targets: [{ ip: POD, port: PORT }],
        owner: "bp/bench/ns/entry",
      },
    ],
    true,
  );
  if (wrote.problems.length) throw new Error(`entry table: ${JSON.stringify(wrote.problems)}`);
  execFileSync("ip", ["netns", "exec", entryNs, "iptables-legacy-restore", "--noflush"], {
    input: kubeProxyNodePort(),
  });

  const cases: Record<string, () => Promise<number>> = {
    direct: () => connects(POD, PORT),
    entry: () => connects(ENTRY, PORT),
    nodeport_iptables: () => connects(ENTRY, NODE_PORT),
  };
  const runs: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) for (const [k, fn] of Object.entries(cases)) runs[k]!.push(await fn());
  const med = Object.fromEntries(Object.entries(runs).map(([k, xs]) => [k, percentile(xs, 50)]));
  const direct = med["direct"]!;
  const results = {
    machine: machine(),
    durationMs: DURATION,
    rounds: ROUNDS,
    tcp_connects_per_s: med,
    ratio_to_direct: Object.fromEntries(
      Object.entries(med).map(([k, v]) => [k, Math.round((v / direct) * 1000) / 1000]),
    ),
    runs,
  };
  for (const [k, v] of Object.entries(med))
    console.log(
      `${k.padEnd(18)} ${Math.round(v).toString().padStart(8)} connects/s  ${(v / direct).toFixed(3)} × direct`,
    );
  const out = path.resolve(REPO, values.out);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${path.relative(REPO, out)}`);
} finally {
  cleanup();
}
