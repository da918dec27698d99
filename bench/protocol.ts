/**
 * `npm run bench:protocol` — 1,000 agents on one hub, 10,000 Services /
 * 100,000 endpoints in a cluster served by the test Kubernetes API server
 * (HTTPS list/watch through the hub's real client). The agents are
 * lightweight simulated clients (one gRPC channel each, real TLS, real
 * protocol: Hello with resume versions, ACK per delta).
 *
 * Measures: cold start (hub up → every agent holds every resource), one
 * EndpointSlice change → all agents ACKed (p50/p99 over CHANGES changes),
 * bytes per agent per one-endpoint change, a reconnect storm after a hub
 * restart (time and bytes resent), hub RSS and CPU. Writes
 * bench/results/protocol.json.
 *
 *   node bench/protocol.ts [--agents 1000] [--services 10000] [--changes 20]
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { StreamAssignmentsRequest, StreamAssignmentsResponse } from "@switchyard/proto/assignment";
import { makeCa, makeServerCert } from "../test/kit/certs.ts";
import { FakeKubeApiServer } from "../test/kit/kube-apiserver.ts";
import { type Proc, REPO, startNode, waitUntil } from "../test/kit/proc.ts";
import { HUB } from "../test/kit/stack.ts";

const { values } = parseArgs({
  options: {
    agents: { type: "string", default: "1000" },
    services: { type: "string", default: "10000" },
    changes: { type: "string", default: "20" },
  },
});
const AGENTS = Number(values.agents);
const SERVICES = Number(values.services);
const CHANGES = Number(values.changes);
const EPS = 10;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sy-bench-proto-"));
const pki = makeCa(path.join(tmp, "pki"));
const cert = makeServerCert(pki, "hub", { ips: ["127.0.0.1"] });
const caPem = fs.readFileSync(pki.caCert);

const api = new FakeKubeApiServer();
await api.start();
const podIp = (k: number) => `10.${64 + ((k >> 16) & 63)}.${(k >> 8) & 255}.${k & 255}`;
const slice = (i: number, gen: number) => ({
  apiVersion: "discovery.k8s.io/v1",
  kind: "EndpointSlice",
  metadata: { name: `s${i}-abcde`, namespace: "bench", labels: { "kubernetes.io/service-name": `s${i}` } },
  addressType: "IPv4",
  ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  endpoints: Array.from({ length: EPS }, (_, j) => ({
    addresses: [podIp(i * EPS + j + 1)],
    nodeName: `node-${(i * EPS + j) % 1000}`,
    conditions: { ready: j !== 0 || gen % 2 === 0, serving: true, terminating: false },
  })),
});
for (let i = 0; i < SERVICES; i++) {
  api.apply({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: `s${i}`, namespace: "bench" },
    spec: { clusterIP: `10.96.${i >> 8}.${i & 255}`, ports: [{ name: "http", port: 80, protocol: "TCP" }] },
  });
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
  return startNode(HUB, [
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
    process.env["HUB_LOG"] ?? "warn",
  ]);
}

function hubStats(p: Proc): { rssMiB: number; cpuS: number } {
  const pid = p.cp.pid!;
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const ticks = Number(stat[11]) + Number(stat[12]);
  return { rssMiB: Math.round(rss), cpuS: ticks / 100 };
}

// --- simulated agents ---
type Sim = {
  name: string;
  held: Map<string, string>;
  synced: boolean;
  lastMsgAt: number;
  bytes: number;
  call: grpc.ClientDuplexStream<Buffer, Buffer> | undefined;
  client: grpc.Client | undefined;
};
const RawClient = grpc.makeGenericClientConstructor({}, "Raw");
let expectedResources = 0;
const token = (await import("node:child_process"))
  .execFileSync(
    process.execPath,
    [path.join(REPO, HUB), "token", "create", "--state-dir", stateDir, "--cluster", "bench", "--ttl", "0"],
    { encoding: "utf8" },
  )
  .trim();

function connectSim(s: Sim, address: string): void {
  s.client?.close();
  const client = new RawClient(address, grpc.credentials.createSsl(caPem), {
    "grpc.max_receive_message_length": 512 * 1024 * 1024,
  });
  s.client = client;
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  const call = client.makeBidiStreamRequest<Buffer, Buffer>(
    "/switchyard.v1.AssignmentService/StreamAssignments",
    (b: Buffer) => b,
    (b: Buffer) => b,
    md,
  );
  s.call = call;
  call.on("data", (buf: Buffer) => {
    s.bytes += buf.length;
    const m = StreamAssignmentsResponse.decode(buf);
    if (!m.nonce) return;
    for (const r of m.resources) s.held.set(r.name, r.version);
    for (const r of m.removedResources) s.held.delete(r);
    s.lastMsgAt = performance.now();
    if (s.held.size >= expectedResources) s.synced = true;
    call.write(
      Buffer.from(
        StreamAssignmentsRequest.encode({
          kind: { $case: "ack", value: { responseNonce: m.nonce, error: undefined } },
        }).finish(),
      ),
    );
  });
  call.on("error", () => {});
  const versions: Record<string, string> = {};
  for (const [k, v] of s.held) versions[k] = v;
  call.write(
    Buffer.from(
      StreamAssignmentsRequest.encode({
        kind: {
          $case: "hello",
          value: {
            nodeName: s.name,
            agentVersion: "sim",
            initialResourceVersions: versions,
            nodeAddresses: [],
          },
        },
      }).finish(),
    ),
  );
}

const gens: number[] = [];
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))]!;
const results: Record<string, number | string> = {};
let hub: Proc | undefined;
const sims: Sim[] = [];
try {
  expectedResources = SERVICES * 2;
  const port = 20000 + Math.floor(Math.random() * 20000);
  let t0 = performance.now();
  hub = startHub(port);
  await hub.waitFor(/listening 127\.0\.0\.1:\d+/, 300_000);
  const hubUpMs = performance.now() - t0;
  results["hub_start_to_listening_ms"] = Math.round(hubUpMs);
  const address = `127.0.0.1:${port}`;
  t0 = performance.now();
  for (let i = 0; i < AGENTS; i++) {
    const s: Sim = {
      name: `sim-${String(i).padStart(4, "0")}`,
      held: new Map(),
      synced: false,
      lastMsgAt: 0,
      bytes: 0,
      call: undefined,
      client: undefined,
    };
    sims.push(s);
    connectSim(s, address);
  }
  await waitUntil("all agents synced", () => (sims.every((s) => s.synced) ? true : undefined), 600_000, 100);
  results["cold_start_agents_synced_ms"] = Math.round(performance.now() - t0);
  results["cold_start_bytes_per_agent"] = Math.round(sims.reduce((a, s) => a + s.bytes, 0) / AGENTS);
  const afterSync = hubStats(hub);
  results["hub_rss_mib_synced"] = afterSync.rssMiB;
  results["hub_cpu_s_start_and_cold_sync"] = afterSync.cpuS;

  // one endpoint change at a time
  const p50s: number[] = [];
  const p99s: number[] = [];
  const bytesPerChange: number[] = [];
  for (let c = 1; c <= CHANGES; c++) {
    for (const s of sims) s.bytes = 0;
    const i = (c * 7919) % SERVICES;
    const name = `eps/bench/bench/s${i}-abcde`;
    const before = new Map(sims.map((s) => [s, s.held.get(name)]));
    const start = performance.now();
    gens[i] = (gens[i] ?? 0) + 1; // flips endpoint 0's readiness: one endpoint changes
    api.apply(slice(i, gens[i]!));
    await waitUntil(
      "every agent to receive the change",
      () => (sims.every((s) => s.held.get(name) !== before.get(s)) ? true : undefined),
      60_000,
      2,
    ).catch((e) => {
      console.error(
        name,
        JSON.stringify(sims.map((s) => [s.held.get(name), before.get(s), s.held.size, s.bytes])),
      );
      throw e;
    });
    const lat = sims.map((s) => s.lastMsgAt - start);
    p50s.push(pct(lat, 50));
    p99s.push(pct(lat, 99));
    bytesPerChange.push(sims.reduce((a, s) => a + s.bytes, 0) / AGENTS);
  }
  results["change_all_agents_p50_ms"] = Math.round(pct(p50s, 50) * 10) / 10;
  results["change_all_agents_p99_ms"] = Math.round(pct(p99s, 50) * 10) / 10;
  results["change_all_agents_p99_worst_ms"] = Math.round(Math.max(...p99s) * 10) / 10;
  results["bytes_per_agent_per_endpoint_change"] = Math.round(pct(bytesPerChange, 50));
  results["hub_cpu_ms_per_change"] = Math.round(((hubStats(hub).cpuS - afterSync.cpuS) * 1000) / CHANGES);

  // reconnect storm: hub killed and restarted
  await hub.stop("SIGKILL");
  for (const s of sims) s.bytes = 0;
  t0 = performance.now();
  hub = startHub(port);
  await hub.waitFor(/listening 127\.0\.0\.1:\d+/, 300_000);
  const restartListen = performance.now() - t0;
  const tReconnect = performance.now();
  for (const s of sims) {
    s.synced = false;
    connectSim(s, address);
  }
  // resynced = the hub knows each agent's versions; with nothing changed it sends nothing but Welcome
  await waitUntil(
    "all agents reattached",
    () => (sims.every((s) => s.bytes > 0) ? true : undefined),
    300_000,
    50,
  );
  results["reconnect_storm_hub_restart_to_listening_ms"] = Math.round(restartListen);
  results["reconnect_storm_resync_ms"] = Math.round(performance.now() - tReconnect);
  results["reconnect_storm_bytes_resent_per_agent"] = Math.round(
    sims.reduce((a, s) => a + s.bytes, 0) / AGENTS,
  );
  const end = hubStats(hub);
  results["hub_rss_mib_after_storm"] = end.rssMiB;
} catch (e) {
  console.error(hub?.output().slice(-3000));
  throw e;
} finally {
  for (const s of sims) {
    s.call?.cancel();
    s.client?.close();
  }
  await hub?.stop();
  await api.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
}

const out = {
  machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.arch()}`,
  date: new Date().toISOString(),
  agents: AGENTS,
  services: SERVICES,
  endpoints: SERVICES * EPS,
  ...results,
};
for (const [k, v] of Object.entries(out)) console.log(`${k.padEnd(48)} ${v}`);
fs.mkdirSync(path.join(REPO, "bench/results"), { recursive: true });
fs.writeFileSync(path.join(REPO, "bench/results/protocol.json"), `${JSON.stringify(out, null, 2)}\n`);
console.log("wrote bench/results/protocol.json");
process.exit(0);
