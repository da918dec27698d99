/**
 * `switchyard-agent install` and `uninstall`: the agent as a systemd service
 * on a host (the unit's text is install/systemd-unit.ts). install writes the
 * unit, the state directory (0700) and an environment file with the join
 * token (0600); uninstall removes them and the agent's pins.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type Command, parseFlags, usageError } from "@switchyard/lib/cli";
import { loadNatsCreds, loadNatsTls } from "@switchyard/lib/nats-tls";
import { uninstallPins } from "../bpf/datapath.ts";
import { ENTRY_FAMILY, ENTRY_TABLE } from "../entry/nft-ruleset.ts";
import { NftEntryTable } from "../entry/nft-table.ts";
import { checkUnitPaths, computeAgentUnit, parseInstalledUnit, UNIT_NAME } from "../install/systemd-unit.ts";
import { DEFAULT_PIN_DIR, DEFAULT_STATE_DIR } from "./common.ts";

export const DEFAULT_UNIT_DIR = "/etc/systemd/system";
export const DEFAULT_ENV_FILE = "/etc/switchyard/agent.env";
/** this installation's launcher (bin/switchyard-agent beside services/) */
const LAUNCHER = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../../bin/switchyard-agent",
);

const INSTALL_HELP = `switchyard-agent install — run the agent as a systemd service on this host

Usage:
  switchyard-agent install --hub HOST:PORT --token ID.SECRET (--hub-ca-hash sha256:H | --hub-ca FILE)
                           [flags] [-- more run flags]

Writes UNIT-DIR/${UNIT_NAME}, the state directory (0700) and TOKEN-FILE
(0600, the join token as SWITCHYARD_TOKEN, so it is not in the unit or the
process list). The unit runs \`switchyard-agent run\` as root with only the
capabilities it needs (BPF, PERFMON, NET_ADMIN, SYS_ADMIN, SYS_RESOURCE,
DAC_READ_SEARCH), a read-only file system but for the state directory and
the pins, LimitMEMLOCK=infinity, and restarts it for ever (with a growing
delay on systemd 254 and later). bpffs is mounted on the host before it
starts, so pins outlive restarts and upgrades. Then, unless --start did:
  systemctl daemon-reload && systemctl enable --now ${UNIT_NAME}

Flags:
  --hub HOST:PORT        hub address (repeatable; fails over in order)
  --token ID.SECRET      join token from \`switchyard-hub token create\` (or env SWITCHYARD_TOKEN)
  --hub-ca-hash sha256:H pin the hub's CA by the hash \`switchyard-hub pki init\` (or serve --tls-ca) prints
  --hub-ca FILE          or: the hub's CA certificate (PEM), copied into the state directory
  --node-name NAME       this node's name (default: the host name, when the agent starts)
  --nats URL             NATS server for NAT events (repeatable)
  --nats-creds FILE      NATS credentials of your own (.creds), copied into the state directory (0600);
                         by default the agent uses the NATS user the hub issues with its credential
  --nats-tls-ca FILE     the CA that signs the NATS server's certificate, copied into the state directory
  --nats-tls-server-name NAME  the name that certificate carries, when not the URL's host
  --state-dir DIR        the agent's state directory (default ${DEFAULT_STATE_DIR})
  --pin-dir DIR          bpffs directory for maps and links (default ${DEFAULT_PIN_DIR})
  --unit-dir DIR         where the unit is written (default ${DEFAULT_UNIT_DIR})
  --token-file FILE      the environment file with the token (default ${DEFAULT_ENV_FILE})
  --exec PATH            the launcher the unit runs (default: this installation's, ${LAUNCHER})
  --start                also run systemctl daemon-reload and enable --now
  -- FLAGS               everything after -- is passed to \`run\` as is (e.g. -- --max-backends 2000000)
`;

const UNINSTALL_HELP = `switchyard-agent uninstall — remove the agent from this node

Usage:
  switchyard-agent uninstall [--unit-dir DIR] [--pin-dir DIR]

Stops and removes the systemd unit \`install\` wrote (when UNIT-DIR holds
one), its environment file and state directory (the agent's credential, the
pinned hub CA, the held view), then detaches the programs, removes every
pin and the node-entry DNAT table (nftables \`inet switchyard_entry\`, of
the network namespace it runs in). Without an installed unit, the pins under
--pin-dir and that table go; with a --pin-dir other than the unit's (a
second agent's), only the pins under it: the service and its table stay.
Services are no longer resolved at the socket on this node afterwards.

Flags:
  --unit-dir DIR         where install wrote the unit (default ${DEFAULT_UNIT_DIR})
  --pin-dir DIR          bpffs directory of the agent's maps and links, when no unit names one
                         (default ${DEFAULT_PIN_DIR})
`;

export const installCommand: Command = {
  name: "install",
  summary: [["install --hub H --token T --hub-ca-hash H", "run the agent as a hardened systemd service"]],
  help: INSTALL_HELP,
  run: runInstall,
};

export const uninstallCommand: Command = {
  name: "uninstall",
  summary: [["uninstall", "stop and remove the service, its state and every pin"]],
  help: UNINSTALL_HELP,
  run: runUninstall,
};

const HUB_RE = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;
const TOKEN_RE = /^[a-z0-9]{6}\.[a-z0-9]{16}$/;
const HASH_RE = /^sha256:[0-9a-f]{64}$/;

function absolute(flag: string, p: string): string {
  if (!path.isAbsolute(p)) usageError(`--${flag} "${p}" must be an absolute path`);
  return path.normalize(p);
}

/** The running systemd's version, or 0 when there is none (a container, a test machine). */
function systemdVersion(): number {
  try {
    const out = execFileSync("systemctl", ["--version"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    return Number(/^systemd (\d+)/.exec(out)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

const systemdRunning = () => fs.existsSync("/run/systemd/system");

function systemctl(args: string[]): void {
  execFileSync("systemctl", args, { stdio: "inherit" });
}

function runInstall(argv: string[]): void {
  const dash = argv.indexOf("--");
  const passThrough = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values } = parseFlags(dash >= 0 ? argv.slice(0, dash) : argv, {
    hub: { type: "string", multiple: true, default: [] },
    token: { type: "string", default: process.env["SWITCHYARD_TOKEN"] ?? "" },
    "hub-ca-hash": { type: "string" },
    "hub-ca": { type: "string" },
    "node-name": { type: "string" },
    nats: { type: "string", multiple: true, default: [] },
    "nats-creds": { type: "string" },
    "nats-tls-ca": { type: "string" },
    "nats-tls-server-name": { type: "string" },
    "state-dir": { type: "string", default: DEFAULT_STATE_DIR },
    "pin-dir": { type: "string", default: DEFAULT_PIN_DIR },
    "unit-dir": { type: "string", default: DEFAULT_UNIT_DIR },
    "token-file": { type: "string", default: DEFAULT_ENV_FILE },
    exec: { type: "string", default: LAUNCHER },
    start: { type: "boolean", default: false },
  });
  if (values.hub.length === 0) usageError("give --hub HOST:PORT (the hub's address; repeatable)");
  for (const h of values.hub) if (!HUB_RE.test(h)) usageError(`--hub "${h}" is not HOST:PORT`);
  if (!values.token)
    usageError("give --token ID.SECRET (from `switchyard-hub token create`) or set SWITCHYARD_TOKEN");
  if (!TOKEN_RE.test(values.token))
    usageError(`--token is not a join token (ID.SECRET: 6 and 16 lower-case letters or digits)`);
  const hash = values["hub-ca-hash"];
  if (hash !== undefined && !HASH_RE.test(hash))
    usageError(
      `--hub-ca-hash "${hash}" is not sha256:<64 hex digits> (as \`switchyard-hub pki init\` prints it)`,
    );
  if (!hash && !values["hub-ca"])
    usageError(
      "give --hub-ca-hash sha256:H (printed by `switchyard-hub pki init`) or --hub-ca FILE: the agent must know the hub's CA",
    );
  const stateDir = absolute("state-dir", values["state-dir"]);
  const pinDir = absolute("pin-dir", values["pin-dir"]);
  const unitDir = absolute("unit-dir", values["unit-dir"]);
  const envFile = absolute("token-file", values["token-file"]);
  const exec = absolute("exec", values.exec);
  if (!fs.existsSync(exec)) usageError(`--exec ${exec} does not exist (the launcher bin/switchyard-agent)`);
  // the launcher runs from where its links lead (readlink -f)
  const hidden = checkUnitPaths([
    { flag: "--exec", path: fs.realpathSync(exec) },
    { flag: "--state-dir", path: stateDir },
    { flag: "--pin-dir", path: pinDir },
  ]);
  // refused with --start (it would fail at once); else said, since a unit can be written for elsewhere
  if (hidden.length > 0 && values.start) usageError(hidden.join("; "));
  for (const problem of hidden) process.stderr.write(`switchyard-agent: warning: ${problem}\n`);
  let ca: Buffer | undefined;
  if (values["hub-ca"]) {
    try {
      ca = fs.readFileSync(values["hub-ca"]);
    } catch (e) {
      usageError(`--hub-ca ${values["hub-ca"]}: ${(e as Error).message}`);
    }
  }

  // checked now, copied into the state directory (which the unit may read) below
  const natsCreds = values["nats-creds"];
  const creds = natsCreds === undefined ? undefined : loadNatsCreds(natsCreds, "--nats-creds");
  if (creds && !creds.ok) usageError(creds.error);
  const natsTls = loadNatsTls(values["nats-tls-ca"], values["nats-tls-server-name"], {
    tlsCa: "--nats-tls-ca",
    tlsServerName: "--nats-tls-server-name",
    creds: "--nats-creds",
  });
  if (!natsTls.ok) usageError(natsTls.error);
  // not nats.creds: that name is the hub-issued user's, rewritten when it rotates
  const credsCopy = path.join(stateDir, "nats-own.creds");
  const natsCaCopy = path.join(stateDir, "nats-ca.crt");

  const runArgs = [...values.hub.flatMap((h) => ["--hub", h])];
  if (hash) runArgs.push("--hub-ca-hash", hash);
  if (ca) runArgs.push("--hub-ca", path.join(stateDir, "hub-ca.crt"));
  if (values["node-name"]) runArgs.push("--node-name", values["node-name"]);
  for (const n of values.nats) runArgs.push("--nats", n);
  if (creds) runArgs.push("--nats-creds", credsCopy);
  if (natsTls.value) runArgs.push("--nats-tls-ca", natsCaCopy);
  if (natsTls.value?.servername) runArgs.push("--nats-tls-server-name", natsTls.value.servername);
  runArgs.push(...passThrough);

  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(stateDir, 0o700);
  if (ca) fs.writeFileSync(path.join(stateDir, "hub-ca.crt"), ca, { mode: 0o600 });
  if (creds?.ok) writePrivate(credsCopy, creds.value);
  if (natsTls.value) writePrivate(natsCaCopy, natsTls.value.ca);
  fs.mkdirSync(path.dirname(envFile), { recursive: true, mode: 0o755 });
  writePrivate(
    envFile,
    `# switchyard-agent's join token (written by \`switchyard-agent install\`)\nSWITCHYARD_TOKEN=${values.token}\n`,
  );
  const unit = computeAgentUnit({
    exec,
    runArgs,
    envFile,
    stateDir,
    pinDir,
    systemdVersion: systemdVersion(),
  });
  fs.mkdirSync(unitDir, { recursive: true });
  const unitFile = path.join(unitDir, UNIT_NAME);
  fs.writeFileSync(unitFile, unit, { mode: 0o644 });
  fs.chmodSync(unitFile, 0o644);
  process.stdout.write(`wrote ${unitFile}, ${envFile} (0600) and ${stateDir} (0700)\n`);
  if (values.start) {
    systemctl(["daemon-reload"]);
    systemctl(["enable", "--now", UNIT_NAME]);
    process.stdout.write(`started ${UNIT_NAME}; follow it with: journalctl -u ${UNIT_NAME} -f\n`);
  } else
    process.stdout.write(`start it with: systemctl daemon-reload && systemctl enable --now ${UNIT_NAME}\n`);
}

/** A file only its owner reads, whatever the umask, written whole (temp file + rename). */
function writePrivate(file: string, text: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

function runUninstall(argv: string[]): void {
  const { values } = parseFlags(argv, {
    "unit-dir": { type: "string", default: DEFAULT_UNIT_DIR },
    "pin-dir": { type: "string" },
    // accepted as before, unused
    "bpf-object": { type: "string" },
    "state-dir": { type: "string" },
  });
  const unitDir = absolute("unit-dir", values["unit-dir"]);
  const unitFile = path.join(unitDir, UNIT_NAME);
  let pinDir = values["pin-dir"] ?? DEFAULT_PIN_DIR;
  const installed = fs.existsSync(unitFile)
    ? parseInstalledUnit(fs.readFileSync(unitFile, "utf8"))
    : undefined;
  // --pin-dir other than the service's: those pins only (a test's, a second agent's), the service stays
  const serviceStays =
    installed !== undefined &&
    values["pin-dir"] !== undefined &&
    path.resolve(values["pin-dir"]) !== installed.pinDir;
  if (serviceStays)
    process.stderr.write(
      `switchyard-agent: ${unitFile} (pins in ${installed?.pinDir}) and its node entry table are left in place; removing the pins under ${pinDir} only\n`,
    );
  else if (installed) {
    // only the real unit directory is systemd's: a unit elsewhere (a test, a staging root) is not running
    const managed = unitDir === DEFAULT_UNIT_DIR && systemdRunning();
    if (managed) systemctl(["disable", "--now", UNIT_NAME]);
    if (installed.pinDir) pinDir = installed.pinDir;
    if (installed.envFile) fs.rmSync(installed.envFile, { force: true });
    if (installed.stateDir) {
      if (!path.isAbsolute(installed.stateDir) || path.resolve(installed.stateDir) === "/")
        usageError(`${unitFile} names the state directory "${installed.stateDir}"; remove it by hand`);
      fs.rmSync(installed.stateDir, { recursive: true, force: true });
    }
    fs.rmSync(unitFile);
    if (managed) systemctl(["daemon-reload"]);
    process.stdout.write(
      `removed ${unitFile}${installed.envFile ? `, ${installed.envFile}` : ""}${installed.stateDir ? `, ${installed.stateDir}` : ""}\n`,
    );
  }
  const removed = uninstallPins(pinDir);
  process.stdout.write(
    removed.length
      ? `removed ${removed.length} pins under ${pinDir}; programs detached\n`
      : `nothing pinned under ${pinDir}\n`,
  );
  // the node-entry DNAT table goes too: nothing would keep it in step with the hub any more
  // (unless the service stays: the table is its agent's)
  if (serviceStays) return;
  try {
    if (new NftEntryTable().remove())
      process.stdout.write(`removed the node entry table ${ENTRY_FAMILY} ${ENTRY_TABLE}\n`);
  } catch (e) {
    process.stderr.write(
      `switchyard-agent: ${(e as Error).message}; remove it with: nft delete table ${ENTRY_FAMILY} ${ENTRY_TABLE}\n`,
    );
    process.exitCode = 1;
  }
}
