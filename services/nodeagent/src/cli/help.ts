/**
 * switchyard-agent's commands: the one list of subcommands with their help
 * (the overview is made from each command's summary lines), and `run`'s
 * help. A new command: a file in cli/ exporting a `Command` (lib/cli.ts),
 * and one line in the list below.
 */
import type { Cli, Command } from "@switchyard/lib/cli";
import { run } from "../run.ts";
import { DEFAULT_PIN_DIR } from "./common.ts";
import { eventsCommand } from "./events.ts";
import { installCommand, uninstallCommand } from "./install.ts";
import { dumpCommand } from "./pins.ts";

const RUN_HELP = `switchyard-agent run — join the hub and keep this node's maps in sync

Usage:
  switchyard-agent run --hub HOST:PORT --token ID.SECRET [flags]

Needs root (or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN; kernels before 5.8:
CAP_SYS_ADMIN), a cgroup v2 directory and bpffs. The programs are attached
once the agent has joined and holds a first complete view (or serves pinned
state); an agent that fails to start leaves nothing behind. Logs are JSON lines (pino) on stdout.

Flags:
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
  --bpf-object FILE      compiled BPF object (default: bpf/build/switchyard.bpf.o of this installation,
                         not of the working directory)
  --nats URL             NATS server for NAT events (nats://H:4222, tls://H:4222; repeatable; events
                         off when absent)
  --nats-creds FILE      NATS credentials (.creds) of your own; by default the agent uses the NATS user
                         the hub issues with its credential when the hubs sign the NATS account
                         (\`switchyard-hub nats init\`), kept in STATE-DIR/nats.creds and rotated with it:
                         it may publish on switchyard.nat.<cluster>.<node>.> only
  --nats-tls-ca FILE     the CA that signs the NATS server's certificate (TLS to NATS)
  --nats-tls-server-name NAME
                         the name in that certificate, when it is not the host of --nats
  --subject-prefix P     NATS subject prefix (default switchyard.nat; keep it with hub-issued NATS users)
  --no-events            do not emit NAT events at all
  --events-buffer-bytes N
                         memory for NAT events NATS has not confirmed yet (default 67108864 = 64 MiB,
                         ~100k events): the agent starts and serves without NATS, holds events while it
                         is away and sends them in order when it is back; beyond the budget new events
                         are dropped and counted (dump, switchyard_agent_events_dropped_total)
  --metrics-listen H:P   serve Prometheus metrics on http://H:P/metrics, and /healthz (the process
                         answers) and /readyz (maps loaded and something to serve: a complete view,
                         the held view or pinned maps; else 503)
  --resync-seconds N     full reconcile against the maps every N seconds (default 60): repairs drift
  --event-sample N       emit one event in N translations (default 1 = all); change at run time with \`events\`
  --max-frontends N      size of the frontend map, set at load (default 65536); also sizes every map
                         that grows with Services and policies (their names, QoS windows, skip entries)
  --max-backends N       size of the backend map, set at load (default 1048576); a full map is
                         reported (NACK, log), never silently truncated. A size other than the pinned
                         maps' (or a build with another map layout) stages new maps and swaps them in
                         once they hold a complete view; the old ones serve until then
  --zone ZONE            this node's topology zone for trafficDistribution (default: the zone label
                         of this node's Node object, as the hub reports it)
  --node-address IP      this node's addresses for NodePort frontends and locality (repeatable;
                         default: the addresses of this host's interfaces; 127/8 and ::1 always count)
  --log-level LEVEL      pino level (default info; env SWITCHYARD_LOG_LEVEL)
`;

const runCommand: Command = {
  name: "run",
  summary: [["run [flags]", "join the hub and keep this node's maps in sync"]],
  help: RUN_HELP,
  run,
};

export const AGENT_CLI: Cli = {
  bin: "switchyard-agent",
  about: "resolves Kubernetes Services at the socket with eBPF",
  commands: [runCommand, dumpCommand, eventsCommand, installCommand, uninstallCommand],
  footer: `Results go to stdout, errors and notes to stderr; run logs JSON lines (pino) on stdout.`,
};
