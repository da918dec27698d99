#!/usr/bin/env node
import fs from "node:fs";
/**
 * switchyard-agent: resolves Services at the socket on this node.
 *
 *   switchyard-agent run --hub HOST:PORT --token ID.SECRET ...
 *   switchyard-agent dump [--pin-dir DIR]
 *   switchyard-agent uninstall [--pin-dir DIR]
 */
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { fetchPinnedCa } from "@switchyard/lib/ca-pin";
import { ipFamily } from "@switchyard/lib/ip";
import { createRootLogger } from "@switchyard/lib/log";
import { findCgroup2Root } from "@switchyard/lib/mounts";
import { AgentCore } from "./agent.ts";
import { LibbpfDatapath, STAGED_MAPS_DIR, uninstallPins } from "./bpf/datapath.ts";
import { formatMapState } from "./cli/dump.ts";
import { type EventPublisher, NatsEventPublisher } from "./events/publisher.ts";
import { CredentialStore } from "./hubclient/credential-store.ts";
import { HubClient } from "./hubclient/hub-client.ts";
import { HeldViewKeeper, readHeldView } from "./state/held-view.ts";
import { formatSyncStatus, writeSyncStatus } from "./state/sync-status.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const DEFAULT_OBJECT = path.resolve(here, "../../../bpf/build/switchyard.bpf.o");
const DEFAULT_PIN_DIR = "/sys/fs/bpf/switchyard";
const DEFAULT_STATE_DIR = "/var/lib/switchyard-agent";

const HELP = `switchyard-agent — resolves Kubernetes Services at the socket with eBPF

Usage:
  switchyard-agent run [flags]         join the hub and keep this node's maps in sync
  switchyard-agent dump [flags]        print the maps as text (frontend -> backends)
  switchyard-agent uninstall [flags]   detach the programs and remove every pin
  switchyard-agent events [on|off] [--sample N] [--pin-dir DIR]
                                       show or change NAT events at run time (no reload)

run flags:
  --hub HOST:PORT        hub address (repeatable; fails over in order)
  --token ID.SECRET      join token from \`switchyard-hub token create\` (or env SWITCHYARD_TOKEN)
  --hub-ca FILE          PEM CA of the hub's TLS certificate (TLS when given)
  --hub-ca-hash sha256:H pin the hub's CA by the hash the hub prints (first join fetches and checks it,
                         then keeps it in --state-dir; TLS from then on)
  --state-dir DIR        where the pinned hub CA, this agent's credential and the last complete view
                         it applied are kept (default /var/lib/switchyard-agent); with a credential
                         there, --token is not needed; with a held view there, a restart resumes
  --node-name NAME       this node's name (default: the host name)
  --cgroup PATH          cgroup v2 directory to attach to (default: the cgroup v2 root from /proc/mounts)
  --pin-dir DIR          bpffs directory for maps and links (default ${DEFAULT_PIN_DIR})
  --bpf-object FILE      compiled BPF object (default bpf/build/switchyard.bpf.o)
  --nats URL             NATS server for NAT events (repeatable; events off when absent)
  --subject-prefix P     NATS subject prefix (default switchyard.nat)
  --no-events            do not emit NAT events at all
  --resync-seconds N     full reconcile against the maps every N seconds (default 60): repairs drift
  --event-sample N       emit one event in N translations (default 1 = all); change at run time with \`events\`
  --max-frontends N      size of the frontend map, set at load (default 65536)
  --max-backends N       size of the backend map, set at load (default 1048576); a full map is
                         reported (NACK, log), never silently truncated. A size other than the pinned
                         maps' (or a build with another map layout) stages new maps and swaps them in
                         once they hold a complete view; the old ones serve until then
  --zone ZONE            this node's topology zone for trafficDistribution (default: the zone label
                         of this node's Node object, as the hub reports it)
  --node-address IP      this node's addresses for NodePort frontends and locality (repeatable;
                         default: the addresses of this host's interfaces; 127/8 and ::1 always count)
  --log-level LEVEL      pino level (default info; env SWITCHYARD_LOG_LEVEL)

dump / uninstall flags:
  --pin-dir DIR          as above
  --state-dir DIR        as above (dump's first line says whether the agent follows a hub)
`;

function fail(msg: string): never {
  process.stderr.write(`switchyard-agent: ${msg}\n`);
  process.exit(2);
}

function nodeAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces()))
    for (const a of list ?? []) if (!a.internal) out.push(a.address);
  return out;
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") return void process.stdout.write(HELP);
  if (cmd === "events") {
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { "pin-dir": { type: "string", default: DEFAULT_PIN_DIR }, sample: { type: "string" } },
    });
    const { openPinnedMaps } = await import("./bpf/pinned.ts");
    const maps = openPinnedMaps(values["pin-dir"]);
    const cur = maps.readSettings();
    const [onOff] = positionals;
    if (onOff !== undefined && onOff !== "on" && onOff !== "off") fail(`events: "${onOff}" is not on or off`);
    let sampleOneIn = cur.sampleOneIn || 1;
    if (values.sample !== undefined) {
      sampleOneIn = Number(values.sample);
      if (!Number.isInteger(sampleOneIn) || sampleOneIn < 1)
        fail(`--sample "${values.sample}" must be a whole number ≥ 1`);
    }
    const next = { eventsOn: onOff === undefined ? cur.eventsOn : onOff === "on", sampleOneIn };
    if (onOff !== undefined || values.sample !== undefined) maps.writeSettings(next);
    process.stdout.write(`events ${next.eventsOn ? "on" : "off"}, sampling one in ${next.sampleOneIn}\n`);
    return;
  }
  if (cmd === "dump" || cmd === "uninstall") {
    const { values } = parseArgs({
      args: rest,
      options: {
        "pin-dir": { type: "string", default: DEFAULT_PIN_DIR },
        "bpf-object": { type: "string", default: DEFAULT_OBJECT },
        "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
      },
    });
    if (cmd === "uninstall") {
      const removed = uninstallPins(values["pin-dir"]);
      process.stdout.write(
        removed.length
          ? `removed ${removed.length} pins under ${values["pin-dir"]}; programs detached\n`
          : `nothing pinned under ${values["pin-dir"]}\n`,
      );
      return;
    }
    const { openPinnedMaps, upgradeStaged } = await import("./bpf/pinned.ts");
    const maps = openPinnedMaps(values["pin-dir"]);
    process.stdout.write(formatSyncStatus(values["state-dir"]));
    if (upgradeStaged(values["pin-dir"]))
      process.stdout.write(
        `# upgrade staged: serving the previous build's maps until a complete view is ready; below, the new maps (${path.join(values["pin-dir"], STAGED_MAPS_DIR)})\n`,
      );
    process.stdout.write(formatMapState(maps.read()));
    const c = maps.counters();
    process.stdout.write(
      `counters: ${Object.entries(c)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ")}\n`,
    );
    return;
  }
  if (cmd !== "run") fail(`unknown command "${cmd}"; see --help`);
  const { values } = parseArgs({
    args: rest,
    options: {
      hub: { type: "string", multiple: true, default: [] },
      token: { type: "string", default: process.env["SWITCHYARD_TOKEN"] ?? "" },
      "hub-ca": { type: "string" },
      "hub-ca-hash": { type: "string" },
      "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
      "node-name": { type: "string", default: os.hostname().toLowerCase() },
      cgroup: { type: "string" },
      "pin-dir": { type: "string", default: DEFAULT_PIN_DIR },
      "bpf-object": { type: "string", default: DEFAULT_OBJECT },
      nats: { type: "string", multiple: true, default: [] },
      "subject-prefix": { type: "string", default: "switchyard.nat" },
      "no-events": { type: "boolean", default: false },
      "node-address": { type: "string", multiple: true, default: [] },
      zone: { type: "string" },
      "event-sample": { type: "string", default: "1" },
      "resync-seconds": { type: "string", default: "60" },
      "max-frontends": { type: "string", default: "65536" },
      "max-backends": { type: "string", default: "1048576" },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(HELP);
  if (values.hub.length === 0) fail("give --hub HOST:PORT (see --help)");
  const node = values["node-name"];
  const credentials = new CredentialStore(values["state-dir"], node);
  if (!values.token && !credentials.load())
    fail(
      "give --token ID.SECRET (from `switchyard-hub token create`) or set SWITCHYARD_TOKEN; this node holds no credential from an earlier join",
    );
  // the hub's CA: given, pinned earlier, or fetched now and checked against --hub-ca-hash
  let caFile = values["hub-ca"];
  const pinned = path.join(values["state-dir"], "hub-ca.crt");
  if (!caFile && fs.existsSync(pinned)) caFile = pinned;
  if (!caFile && values["hub-ca-hash"]) {
    const ca = await fetchPinnedCa(values.hub[0]!, values["hub-ca-hash"]);
    if (!ca.ok) fail(ca.error);
    fs.mkdirSync(values["state-dir"], { recursive: true, mode: 0o700 });
    fs.writeFileSync(pinned, ca.value, { mode: 0o600 });
    caFile = pinned;
  }
  const log = createRootLogger("switchyard-agent", values["log-level"]).child({ node });
  const cgroup = values.cgroup ?? findCgroup2Root();

  const addresses = values["node-address"].length > 0 ? values["node-address"] : nodeAddresses();
  for (const a of addresses) if (!ipFamily(a)) fail(`--node-address "${a}" is not an IP address`);
  const sample = Number(values["event-sample"]);
  if (!Number.isInteger(sample) || sample < 1)
    fail(`--event-sample "${values["event-sample"]}" must be a whole number ≥ 1 (1 = every event)`);
  if (!(Number(values["resync-seconds"]) >= 1))
    fail(`--resync-seconds "${values["resync-seconds"]}" must be a number ≥ 1`);
  const maxFrontends = Number(values["max-frontends"]);
  const maxBackends = Number(values["max-backends"]);
  if (!Number.isInteger(maxFrontends) || maxFrontends < 1)
    fail(`--max-frontends "${values["max-frontends"]}" must be a whole number ≥ 1`);
  if (!Number.isInteger(maxBackends) || maxBackends < 1)
    fail(`--max-backends "${values["max-backends"]}" must be a whole number ≥ 1`);
  const dp = LibbpfDatapath.open({
    objectPath: values["bpf-object"],
    pinDir: values["pin-dir"],
    cgroupPath: cgroup,
    log: log.child({ component: "bpf" }),
    maxFrontends,
    maxBackends,
  });
  const stateDir = values["state-dir"];
  const core = new AgentCore(dp.maps, node, addresses, log.child({ component: "sync" }));
  // the last complete view an earlier run applied: resume from it (the maps are not touched until a hub answers)
  const held = readHeldView(stateDir, node);
  if (held && !held.ok)
    log.warn(
      { file: stateDir, reason: held.error },
      "held view in the state directory not used; starting without it",
    );
  else if (held?.ok) {
    const problem = core.loadHeldView(held.value.resources, held.value.header.viewVersion);
    if (problem)
      log.warn(
        { file: stateDir, reason: problem },
        "held view in the state directory not used; starting without it",
      );
    // the new maps of a staged upgrade hold nothing: the held view goes into them now, hub or not
    else if (dp.staged) core.planHeldViewIntoNewMaps();
  }
  // a staged upgrade is swapped in once its maps hold a whole view (the held one, or the hub's)
  let stagedCheck: NodeJS.Timeout | undefined;
  const commitIfReady = () => {
    if (!dp.staged || !core.viewInMaps) return;
    try {
      dp.commitStaged();
    } catch (e) {
      log.error(
        { reason: (e as Error).message },
        "upgrade swap failed; the previous build keeps serving, tried again in a second",
      );
      return;
    }
    clearInterval(stagedCheck);
    saveStatus();
  };
  if (dp.staged) {
    stagedCheck = setInterval(commitIfReady, 1000);
    stagedCheck.unref();
  }
  let connectedHub: string | undefined;
  const saveStatus = () => {
    try {
      writeSyncStatus(stateDir, {
        ...core.syncState,
        upgradeStaged: dp.staged,
        hub: connectedHub,
        updatedAt: new Date().toISOString(),
      });
    } catch (e) {
      log.warn({ reason: (e as Error).message }, "cannot write the sync status in the state directory");
    }
  };
  saveStatus();
  commitIfReady();
  const keeper = new HeldViewKeeper(
    stateDir,
    () => ({
      header: {
        node,
        cluster: core.cluster,
        viewVersion: core.store.viewVersion,
        savedAt: new Date().toISOString(),
        count: core.store.resources.size,
      },
      resources: [...core.store.resources.values()],
    }),
    (reason) =>
      log.warn(
        { reason },
        "cannot keep the held view in the state directory; a restart will walk the view again",
      ),
  );
  core.onViewApplied = () => {
    keeper.schedule();
    commitIfReady();
    saveStatus();
  };
  // off the main thread; the datapath logs what each walk destroyed
  core.onBackendsRemoved = (dead) => dp.destroyUdpSockets(dead);
  let publisher: EventPublisher | undefined;
  if (values.nats.length > 0)
    publisher = await NatsEventPublisher.connect(values.nats, log.child({ component: "events" }));
  const eventsOn = !values["no-events"] && publisher !== undefined;
  dp.maps.writeSettings({ eventsOn, sampleOneIn: sample });
  const reader = eventsOn
    ? dp.readEvents((rec) => core.handleEventRecord(rec, publisher, values["subject-prefix"]))
    : undefined;

  const client = new HubClient({
    hubs: values.hub,
    token: values.token,
    credentials,
    nodeName: node,
    nodeAddresses: addresses,
    agentVersion: "0.1.0",
    caFile,
    log: log.child({ component: "hubclient" }),
    heldVersions: () => core.store.versions(),
    heldViewVersion: () => core.store.viewVersion,
    onWelcome: (w) => {
      core.cluster = w.cluster;
      connectedHub = client.connectedHub;
      const zone = values.zone ?? (w.nodeZone || undefined);
      if (zone !== core.zone) {
        core.zone = zone;
        log.info({ zone: zone ?? "(none)" }, "node zone");
        core.reconcileIfSynced();
      }
      // the view this agent resumed with is the hub's: it is complete
      if (w.inSync) core.onViewInSync();
      saveStatus();
    },
    onDelta: (m) => core.onDelta(m),
  });
  client.start();
  // periodic full reconcile: repairs map drift, writes nothing when there is none
  const resync = setInterval(() => core.resync(), Number(values["resync-seconds"]) * 1000);
  resync.unref();
  process.stdout.write(`agent running on cgroup ${cgroup}, pins in ${values["pin-dir"]}\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info({}, "agent stopping; pinned maps and links stay, so resolution keeps working");
    client.stop();
    core.stop();
    clearInterval(stagedCheck);
    keeper.flush();
    reader?.close();
    await publisher?.close().catch(() => {});
    dp.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`switchyard-agent: ${(e as Error).message}\n`);
  process.exit(1);
});
