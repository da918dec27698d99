/**
 * `switchyard-agent run`: the composition root. Joins the hub, loads the
 * datapath, resumes from the held view, keeps the maps in sync and
 * publishes NAT events; stops on SIGINT/SIGTERM with the pins left in place.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fetchPinnedCa } from "@switchyard/lib/ca-pin";
import { parseFlags, VERSION } from "@switchyard/lib/cli";
import { SwitchyardError } from "@switchyard/lib/errors";
import { ipFamily } from "@switchyard/lib/ip";
import { createRootLogger } from "@switchyard/lib/log";
import { parseListen } from "@switchyard/lib/metrics-server";
import { findCgroup2Root } from "@switchyard/lib/mounts";
import { loadNatsTls } from "@switchyard/lib/nats-tls";
import { AgentCore } from "./agent.ts";
import { LibbpfDatapath } from "./bpf/datapath.ts";
import { findPodCgroups } from "./cgroups/pod-cgroups.ts";
import { DEFAULT_OBJECT, DEFAULT_PIN_DIR, DEFAULT_STATE_DIR, fail } from "./cli/common.ts";
import { startNodeEntry } from "./entry/start-entry.ts";
import { computeEventSubject } from "./events/nat-event.ts";
import { AGENT_NATS_FLAGS, natsAuth } from "./events/nats-auth.ts";
import { DEFAULT_EVENTS_BUFFER_BYTES } from "./events/publisher.ts";
import { startEvents } from "./events/start-events.ts";
import { CredentialStore } from "./hubclient/credential-store.ts";
import { HubClient } from "./hubclient/hub-client.ts";
import type { CaSource } from "./hubclient/transport-diagnosis.ts";
import { serveAgentMetrics } from "./metrics/serve-agent-metrics.ts";
import { checkCaFile, checkCgroup, checkPrivileges, isLoopbackAddress } from "./preflight.ts";
import { HeldViewKeeper, readHeldView } from "./state/held-view.ts";
import { writeSyncStatus } from "./state/sync-status.ts";

function nodeAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(os.networkInterfaces()))
    for (const a of list ?? []) if (!a.internal) out.push(a.address);
  return out;
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
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
    "events-buffer-bytes": { type: "string", default: String(DEFAULT_EVENTS_BUFFER_BYTES) },
    "metrics-listen": { type: "string" },
    "nats-creds": { type: "string" },
    "nats-tls-ca": { type: "string" },
    "nats-tls-server-name": { type: "string" },
  });
  if (values.hub.length === 0) fail("give --hub HOST:PORT (see --help)");
  const node = values["node-name"];
  const credentials = new CredentialStore(values["state-dir"], node);
  if (!values.token && !credentials.load())
    fail(
      "give --token ID.SECRET (from `switchyard-hub token create`) or set SWITCHYARD_TOKEN; this node holds no credential from an earlier join",
    );
  // before anything is loaded or pinned: root or the capabilities, and the CA file named
  const privileges = checkPrivileges();
  if (!privileges.ok) throw new SwitchyardError("permission_denied", privileges.error);
  if (values["hub-ca"]) {
    const c = checkCaFile("--hub-ca", values["hub-ca"]);
    if (!c.ok) fail(c.error);
  }
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
  const cgroupOk = checkCgroup(cgroup);
  if (!cgroupOk.ok) fail(cgroupOk.error);
  const caSource: CaSource = !caFile
    ? undefined
    : values["hub-ca"]
      ? { flag: "--hub-ca", file: caFile }
      : { flag: "--hub-ca-hash", file: caFile };
  // a join token (or credential) in clear off this host can be read on the path and used to join as this node
  if (!caFile)
    for (const hub of values.hub.filter((h) => !isLoopbackAddress(h)))
      log.warn(
        { hub },
        "sending the join token and credential to the hub in clear (no TLS): anyone on the path can read them and join as this node; give --hub-ca FILE or --hub-ca-hash",
      );

  const addresses = values["node-address"].length > 0 ? values["node-address"] : nodeAddresses();
  for (const a of addresses) if (!ipFamily(a)) fail(`--node-address "${a}" is not an IP address`);
  const sample = Number(values["event-sample"]);
  if (!Number.isInteger(sample) || sample < 1)
    fail(`--event-sample "${values["event-sample"]}" must be a whole number ≥ 1 (1 = every event)`);
  if (!(Number(values["resync-seconds"]) >= 1))
    fail(`--resync-seconds "${values["resync-seconds"]}" must be a number ≥ 1`);
  const eventsBufferBytes = Number(values["events-buffer-bytes"]);
  if (!Number.isInteger(eventsBufferBytes) || eventsBufferBytes < 1024)
    fail(`--events-buffer-bytes "${values["events-buffer-bytes"]}" must be a whole number of bytes ≥ 1024`);
  const metricsListen =
    values["metrics-listen"] === undefined ? undefined : parseListen(values["metrics-listen"]);
  if (metricsListen && !metricsListen.ok) fail(`--metrics-listen: ${metricsListen.error}`);
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
  // a start that fails from here on, or an agent stopped before its programs were attached, leaves
  // nothing behind: the pins this start made go (an earlier run's stay, and keep serving)
  let started = false;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (!started || dp.attachPending) dp.abandon();
    else dp.close();
  };
  process.once("exit", release);
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
    // maps that hold nothing — the new maps of a staged upgrade, or bpffs emptied by a reboot — take the
    // held view now, hub or not: there is nothing in them to lose, and the node serves its last view
    else if (dp.staged || core.mapsStartedEmpty) core.planHeldViewIntoNewMaps();
  }
  // the cluster before any hub answers — the stored credential is bound to it, the held view names it — so a
  // restarted agent's events go out on its own subject at once (a first start holds them until the Welcome)
  const heldCluster = held?.ok ? held.value.header.cluster : "";
  core.cluster = credentials.cluster() ?? heldCluster;
  if (core.cluster) log.info({ cluster: core.cluster }, "cluster known from the state directory");
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
  // a first start attaches its programs once the maps hold a complete view (the hub's, or the held one);
  // checked after each applied view, and every second (a first view with entries still to retry is one too)
  let attachCheck: NodeJS.Timeout | undefined;
  const attachIfReady = () => {
    if (!dp.attachPending) return clearInterval(attachCheck);
    if (!(core.viewInMaps || core.syncState.state === "synced")) return;
    clearInterval(attachCheck);
    try {
      dp.attachNow();
    } catch (e) {
      process.stderr.write(`switchyard-agent: ${(e as Error).message}\n`);
      process.exit(1);
    }
    log.info({ cgroup }, "programs attached: the maps hold a complete view");
  };
  saveStatus();
  commitIfReady();
  attachIfReady();
  if (dp.attachPending) {
    attachCheck = setInterval(attachIfReady, 1000);
    attachCheck.unref();
  }
  const keeper = new HeldViewKeeper(
    stateDir,
    // only a complete view: never a part of a change whose other messages are still on their way
    () =>
      core.holdsCompleteView
        ? {
            header: {
              node,
              cluster: core.cluster,
              viewVersion: core.store.viewVersion,
              savedAt: new Date().toISOString(),
              count: core.store.resources.size,
            },
            resources: [...core.store.resources.values()],
          }
        : undefined,
    (reason) =>
      log.warn(
        { reason },
        "cannot keep the held view in the state directory; a restart will walk the view again",
      ),
  );
  let lastAppliedAt: number | undefined;
  core.onViewApplied = () => {
    lastAppliedAt = Date.now();
    keeper.schedule();
    commitIfReady();
    attachIfReady();
    saveStatus();
  };
  // off the main thread; the datapath logs what each walk destroyed
  core.onBackendsRemoved = (dead) => dp.destroyUdpSockets(dead);
  // node entry (nodeProxy): the nft table follows this node's entry resource; the entry interface is reported
  const entry = startNodeEntry(core, log.child({ component: "entry" }), (r) => client.sendNodeReport(r));
  core.findPodCgroups = (uids) => {
    const scan = findPodCgroups(cgroup, uids);
    if (scan.truncated)
      log.warn(
        { cgroup, dirs: scan.dirs },
        "pod cgroup search cut short (too many or too deep directories): some skip-from-backend pods may be redirected; narrow --cgroup",
      );
    return scan.found;
  };
  // NATS is connected to in the background: the agent serves (and buffers events) while it is away;
  // as the NATS user the hub issued with the credential (or --nats-creds), over TLS with --nats-tls-ca
  const natsTls = loadNatsTls(values["nats-tls-ca"], values["nats-tls-server-name"], AGENT_NATS_FLAGS);
  if (!natsTls.ok) fail(natsTls.error);
  const events =
    values.nats.length > 0 && !values["no-events"]
      ? startEvents({
          servers: values.nats,
          auth: natsAuth(stateDir, values["nats-creds"], natsTls.value),
          bufferBytes: eventsBufferBytes,
          stateDir,
          kernelCounters: () => dp.maps.counters(),
          log: log.child({ component: "events" }),
        })
      : undefined;
  dp.maps.writeSettings({ eventsOn: events !== undefined, sampleOneIn: sample });
  const addressEvents = (cluster: string) =>
    events?.publisher.address(cluster, (ev) => computeEventSubject(values["subject-prefix"], ev));
  const reader = events
    ? dp.readEvents((rec) => core.handleEventRecord(rec, events.publisher, values["subject-prefix"]))
    : undefined;

  const client = new HubClient({
    hubs: values.hub,
    token: values.token,
    credentials,
    nodeName: node,
    nodeAddresses: addresses,
    agentVersion: VERSION,
    caFile,
    caSource,
    log: log.child({ component: "hubclient" }),
    heldVersions: () => core.store.versions(),
    heldViewVersion: () => core.store.viewVersion,
    onWelcome: (w) => {
      entry.onWelcome(w.entryInterface);
      core.cluster = w.cluster;
      addressEvents(w.cluster);
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
    // the reason in words for a person at the terminal too, not only in the JSON log
    onCannotJoin: (reason) => process.stderr.write(`switchyard-agent: cannot join the hub: ${reason}\n`),
  });
  client.start();
  // periodic full reconcile: repairs map drift, writes nothing when there is none
  const resync = setInterval(() => core.resync(), Number(values["resync-seconds"]) * 1000);
  resync.unref();
  const metricsServer = metricsListen?.ok
    ? await serveAgentMetrics(
        {
          dp,
          core,
          events: events?.counts,
          hubConnected: () => client.connectedHub !== undefined,
          lastAppliedAt: () => lastAppliedAt,
        },
        metricsListen.value.host,
        metricsListen.value.port,
      ).catch((e: Error) => fail(`--metrics-listen ${values["metrics-listen"]}: ${e.message}`))
    : undefined;
  if (metricsServer) {
    const a = metricsServer.address() as import("node:net").AddressInfo;
    log.info({ address: `${a.address}:${a.port}` }, "metrics listening (/metrics, /healthz, /readyz)");
  }
  started = true;
  process.stderr.write(
    `agent running on cgroup ${cgroup}, pins in ${values["pin-dir"]}${dp.attachPending ? " (programs attach once a complete view is in the maps)" : ""}\n`,
  );

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    if (dp.attachPending) log.info({}, "agent stopping before it served; the pins it made are removed");
    else log.info({}, "agent stopping; pinned maps and links stay, so resolution keeps working");
    client.stop();
    core.stop();
    clearInterval(stagedCheck);
    keeper.flush();
    entry.stop();
    reader?.close();
    metricsServer?.close();
    await events?.close().catch(() => {});
    release();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
