/** `switchyard events`: follow NAT events live or from a time, filtered, as a table or JSON lines. */
import { type Command, parseFlags, usageError } from "@switchyard/lib/cli";
import { loadNatsTls } from "@switchyard/lib/nats-tls";
import { decodeNatEvent } from "../events/event-codec.ts";
import {
  checkResult,
  computeFollowSubject,
  type FollowFilter,
  formatEventLine,
  matchesFilter,
  parseSince,
  TABLE_HEADER,
} from "./follow.ts";
import { connectForFollow, FOLLOW_FLAGS, followSubject } from "./follow-nats.ts";

const HELP = `switchyard events — follow the NAT events agents publish (like hubble observe)

Usage:
  switchyard events --server URL [--creds FILE] [--tls-ca FILE] [filters] [--since WHEN] [--json]

Shows every resolution the agents report, one line each: time, node, protocol,
client (pid) → frontend → backend, the Service (or policy) and the result.
Without --since it follows live from now; with --since it replays the event
history the hub keeps in JetStream (stream SWITCHYARD_EVENTS) from that time
and then carries on live. Runs until interrupted.

Connection:
  --server URL            NATS server (nats://HOST:4222, tls://HOST:4222; repeatable; env SWITCHYARD_NATS)
  --creds FILE            NATS credentials (.creds) — from \`switchyard-hub nats-creds create
                          --subscribe 'switchyard.nat.CLUSTER.>'\` when the hubs sign the NATS account
  --tls-ca FILE           the CA that signs the NATS server's certificate (TLS)
  --tls-server-name NAME  the name in that certificate, when it is not the host of --server

Filters (all must hold):
  --cluster NAME          events of agents of this cluster
  --node NAME             events of this node's agent
  --namespace NS          to Services (or policies) of this namespace
  --service NAME          to Services (or policies) of this name
  --result R              ok, failures, or one failure code (noBackend, backendMissing, …)
  --protocol P            tcp or udp

Output:
  --since WHEN            replay from a time: a duration back (10m, 1h) or RFC 3339 (2026-12-02T08:00:00Z)
  --json                  one JSON object per line (the event as the agent published it)
  --no-header             no header line above the table
`;

export const followEventsCommand: Command = {
  name: "events",
  summary: [
    ["events --server URL [filters] [--since 10m] [--json]", "follow NAT events live, or replay them"],
  ],
  help: HELP,
  run: runEvents,
};

async function runEvents(argv: string[]): Promise<void> {
  const { values } = parseFlags(argv, {
    server: { type: "string", multiple: true, default: [] },
    creds: { type: "string" },
    "tls-ca": { type: "string" },
    "tls-server-name": { type: "string" },
    cluster: { type: "string" },
    node: { type: "string" },
    namespace: { type: "string" },
    service: { type: "string" },
    result: { type: "string" },
    protocol: { type: "string" },
    since: { type: "string" },
    json: { type: "boolean", default: false },
    "no-header": { type: "boolean", default: false },
  });
  const servers =
    values.server.length > 0
      ? values.server
      : (process.env["SWITCHYARD_NATS"] ?? "").split(",").filter(Boolean);
  if (servers.length === 0)
    usageError("give --server URL (the NATS the agents publish to) or set SWITCHYARD_NATS");
  if (values.protocol !== undefined && values.protocol !== "tcp" && values.protocol !== "udp")
    usageError(`--protocol "${values.protocol}" must be tcp or udp`);
  if (values.result !== undefined) {
    const e = checkResult(values.result);
    if (e) usageError(e);
  }
  let since: Date | undefined;
  if (values.since !== undefined) {
    const s = parseSince(values.since, Date.now());
    if (!s.ok) usageError(s.error);
    since = s.value;
  }
  const tls = loadNatsTls(values["tls-ca"], values["tls-server-name"], FOLLOW_FLAGS);
  if (!tls.ok) usageError(tls.error);
  const filter: FollowFilter = {
    cluster: values.cluster,
    node: values.node,
    namespace: values.namespace,
    service: values.service,
    result: values.result,
    protocol: values.protocol as FollowFilter["protocol"],
  };
  const nc = await connectForFollow({ servers, credsFile: values.creds, tls: tls.value });
  const stop = () => void nc.close();
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  const out = process.stdout;
  const subject = computeFollowSubject(filter);
  const ready = () => {
    process.stderr.write(
      `switchyard: following ${subject} ${since ? `from ${since.toISOString()}, then live` : "live"}\n`,
    );
    if (!values.json && !values["no-header"]) out.write(`${TABLE_HEADER}\n`);
  };
  await followSubject(nc, subject, since, ready, (subject, data) => {
    const ev = decodeNatEvent(data);
    if (!ev.ok) {
      process.stderr.write(`switchyard: a message on ${subject} is not a NAT event (${ev.error}); skipped\n`);
      return;
    }
    if (!matchesFilter(ev.value, filter)) return;
    out.write(values.json ? `${JSON.stringify(ev.value)}\n` : `${formatEventLine(ev.value)}\n`);
  });
}
