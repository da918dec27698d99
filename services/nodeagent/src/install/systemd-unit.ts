/**
 * Pure: the agent's systemd unit (install) and the paths an installed unit
 * names (uninstall). The unit runs `switchyard-agent run` as root, limited
 * to the capabilities the agent uses, on a read-only file system except its
 * state directory and pins, restarting for ever with a growing delay.
 */

export const UNIT_NAME = "switchyard-agent.service";

export type UnitOptions = {
  /** the launcher: …/bin/switchyard-agent */
  exec: string;
  /** `run` flags other than the token (which stays in the environment file) */
  runArgs: string[];
  /** holds SWITCHYARD_TOKEN (0600) */
  envFile: string;
  stateDir: string;
  pinDir: string;
  /** systemd ≥ 254 understands RestartSteps/RestartMaxDelaySec (an exponential backoff); older ones warn */
  systemdVersion: number;
};

/**
 * What the agent needs, and why: CAP_BPF + CAP_PERFMON (load programs, maps,
 * iterators), CAP_NET_ADMIN (attach cgroup socket programs, the node-entry
 * DNAT), CAP_SYS_ADMIN (mount bpffs, pin, bpf_sock_destroy through socket
 * iterators), CAP_SYS_RESOURCE (memlock on kernels that still count BPF
 * memory against it), CAP_DAC_READ_SEARCH (read every pod's cgroup).
 */
export const AGENT_CAPABILITIES = [
  "CAP_BPF",
  "CAP_PERFMON",
  "CAP_NET_ADMIN",
  "CAP_SYS_ADMIN",
  "CAP_SYS_RESOURCE",
  "CAP_DAC_READ_SEARCH",
];

/** systemd's quoting for one ExecStart word: double quotes when needed, with \ " and % escaped */
function quoteWord(w: string): string {
  const escaped = w.replaceAll("%", "%%");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w)) return escaped;
  return `"${escaped.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("$", "$$$$")}"`;
}

/** a path in a space-separated path list: specifiers escaped, spaces as \x20 */
const pathWord = (p: string) => p.replaceAll("%", "%%").replaceAll(" ", "\\x20");

export function computeAgentUnit(o: UnitOptions): string {
  const exec = [o.exec, "run", ...o.runArgs, "--state-dir", o.stateDir, "--pin-dir", o.pinDir]
    .map(quoteWord)
    .join(" ");
  const backoff =
    o.systemdVersion >= 254
      ? ["RestartSteps=10", "RestartMaxDelaySec=60s"]
      : ["# systemd < 254: a fixed delay (RestartSteps/RestartMaxDelaySec came in 254)"];
  return `# Written by \`switchyard-agent install\`; removed by \`switchyard-agent uninstall\`.
[Unit]
Description=Switchyard agent: resolves Kubernetes Services at the socket with eBPF
After=network-online.target
Wants=network-online.target
# restart for ever: a node that cannot reach its hub keeps serving its pinned maps
StartLimitIntervalSec=0

[Service]
Type=simple
EnvironmentFile=${o.envFile.replaceAll("%", "%%")}
# bpffs on the host (not in this unit's mount namespace), so pins outlive the process
ExecStartPre=+/bin/sh -c 'mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf'
ExecStart=${exec}
Restart=always
RestartSec=1s
${backoff.join("\n")}
KillSignal=SIGTERM
TimeoutStopSec=30s
LimitMEMLOCK=infinity
LimitNOFILE=1048576

# capabilities: only these, also for root
CapabilityBoundingSet=${AGENT_CAPABILITIES.join(" ")}
AmbientCapabilities=${AGENT_CAPABILITIES.join(" ")}
NoNewPrivileges=yes
# file system: read-only but for the state directory and the pins; /sys stays writable for bpffs
# (ProtectKernelTunables would make it read-only) and the cgroup tree readable to attach programs
ProtectSystem=strict
ReadWritePaths=${pathWord(o.stateDir)} -${pathWord(o.pinDir)}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
UMask=0077

[Install]
WantedBy=multi-user.target
`;
}

/** What the unit hides from the agent: ProtectHome=yes and PrivateTmp=yes (a path there is not the host's). */
const HIDDEN_BY_UNIT: Array<[dir: string, setting: string]> = [
  ["/home", "ProtectHome=yes"],
  ["/root", "ProtectHome=yes"],
  ["/run/user", "ProtectHome=yes"],
  ["/tmp", "PrivateTmp=yes"],
  ["/var/tmp", "PrivateTmp=yes"],
];

/**
 * The first path the installed unit could not reach, said with its flag and
 * what to do (e.g. an agent installed from a checkout in /root: its launcher
 * is hidden by ProtectHome=yes, and the service would fail at every start).
 */
export function checkUnitPaths(paths: Array<{ flag: string; path: string }>): string[] {
  const problems: string[] = [];
  for (const { flag, path } of paths) {
    const hidden = HIDDEN_BY_UNIT.find(([dir]) => path === dir || path.startsWith(`${dir}/`));
    if (!hidden) continue;
    const [dir, setting] = hidden;
    problems.push(
      `${flag} ${path} is under ${dir}, which the unit hides from the agent (${setting}), so the service would fail to start: ${
        flag === "--exec"
          ? "install from the release tarball unpacked outside /home, /root and /tmp (e.g. /opt/switchyard), or give --exec such a launcher"
          : `give ${flag} a directory outside /home, /root and /tmp`
      }`,
    );
  }
  return problems;
}

export type InstalledPaths = { envFile?: string; stateDir?: string; pinDir?: string };

/** The environment file, state and pin directories an installed unit names (for uninstall). */
export function parseInstalledUnit(text: string): InstalledPaths {
  const out: InstalledPaths = {};
  const env = /^EnvironmentFile=-?(.+)$/m.exec(text);
  if (env) out.envFile = env[1]!.trim().replaceAll("%%", "%");
  const exec = /^ExecStart=(.+)$/m.exec(text)?.[1] ?? "";
  const words = [...exec.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) =>
    m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1").replaceAll("$$", "$") : m[2]!,
  );
  const flag = (name: string) => {
    const i = words.lastIndexOf(name);
    return i >= 0 ? words[i + 1]?.replaceAll("%%", "%") : undefined;
  };
  const stateDir = flag("--state-dir");
  const pinDir = flag("--pin-dir");
  if (stateDir) out.stateDir = stateDir;
  if (pinDir) out.pinDir = pinDir;
  return out;
}
