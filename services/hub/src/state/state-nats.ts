/**
 * How the hubs reach the NATS that holds their shared state (KvState):
 * the servers, the hub-state user's .creds (`switchyard-hub nats init
 * --state-creds-out FILE`) when that NATS is in operator mode, and TLS with
 * a CA. Flags (`--state-nats`, `--state-nats-creds`, `--state-nats-tls-ca`,
 * `--state-nats-tls-server-name`) over the config file's `state:` mapping:
 *
 *     state:
 *       nats: [tls://nats.example:4222]
 *       creds: /etc/switchyard/hub-state.creds
 *       tlsCa: /etc/switchyard/nats-ca.crt
 *       tlsServerName: nats.example     # when the certificate names another host
 *
 * The connection depends on files only, never on the state itself (the NATS
 * accounts' keys are sealed in it).
 */
import { err, ok, type Result } from "@switchyard/lib/errors";
import {
  loadNatsCreds,
  loadNatsTls,
  type NatsFlags,
  type NatsTls,
  parseNatsUrls,
} from "@switchyard/lib/nats-tls";

export type StateNats = {
  servers: string[];
  credsFile?: string | undefined;
  tlsCa?: string | undefined;
  tlsServerName?: string | undefined;
};

/** What KvState.open is given: the checked creds and TLS. */
export type StateNatsAuth = { creds?: Uint8Array; tls?: NatsTls };

export const STATE_NATS_FLAGS: NatsFlags = {
  tlsCa: "--state-nats-tls-ca",
  tlsServerName: "--state-nats-tls-server-name",
  creds:
    "the server is in operator mode: give every hub (and the CLI) --state-nats-creds FILE, the hub-state user `switchyard-hub nats init --state-creds-out FILE` wrote (docs/hub-replicas.md)",
};

const KNOWN = ["nats", "creds", "tlsCa", "tlsServerName"];

/** The config file's `state:` mapping (absent: nothing). */
export function parseStateConfig(raw: unknown, file: string): Result<Partial<StateNats>> {
  if (raw === undefined) return ok({});
  const at = `${file}: state`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    return err(`${at} must be a mapping of ${KNOWN.join(", ")}`);
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r))
    if (!KNOWN.includes(k)) return err(`${at}: unknown field "${k}" (known: ${KNOWN.join(", ")})`);
  const out: Partial<StateNats> = {};
  if (r["nats"] !== undefined) {
    const n = parseNatsUrls(r["nats"], `${at}.nats`);
    if (!n.ok) return n;
    out.servers = n.value;
  }
  const names = { creds: "credsFile", tlsCa: "tlsCa", tlsServerName: "tlsServerName" } as const;
  for (const [k, to] of Object.entries(names)) {
    const v = r[k];
    if (v === undefined) continue;
    if (typeof v !== "string" || v === "") return err(`${at}.${k} must be a non-empty string`);
    out[to] = v;
  }
  return ok(out);
}

/** Flags over the file's `state:`; the creds and TLS options need servers to go to. */
export function resolveStateNats(
  fromFile: Partial<StateNats> | undefined,
  flags: Record<string, unknown>,
): Result<StateNats> {
  const urls = flags["state-nats"] as string[] | undefined;
  const pick = (flag: string, file: string | undefined) =>
    typeof flags[flag] === "string" ? (flags[flag] as string) : file;
  const s: StateNats = {
    servers: urls && urls.length > 0 ? urls : (fromFile?.servers ?? []),
    credsFile: pick("state-nats-creds", fromFile?.credsFile),
    tlsCa: pick("state-nats-tls-ca", fromFile?.tlsCa),
    tlsServerName: pick("state-nats-tls-server-name", fromFile?.tlsServerName),
  };
  if (s.servers.length === 0) {
    const given = [
      ["--state-nats-creds", s.credsFile],
      [STATE_NATS_FLAGS.tlsCa, s.tlsCa],
      [STATE_NATS_FLAGS.tlsServerName, s.tlsServerName],
    ].find(([, v]) => v !== undefined);
    if (given) return err(`${given[0]} needs --state-nats URL (the NATS that holds the shared state)`);
  }
  return ok(s);
}

/** Reads and checks the creds and CA files. */
export function loadStateNatsAuth(s: StateNats): Result<StateNatsAuth> {
  const tls = loadNatsTls(s.tlsCa, s.tlsServerName, STATE_NATS_FLAGS);
  if (!tls.ok) return tls;
  const out: StateNatsAuth = tls.value ? { tls: tls.value } : {};
  if (s.credsFile !== undefined) {
    const c = loadNatsCreds(s.credsFile, "--state-nats-creds");
    if (!c.ok) return c;
    out.creds = c.value;
  }
  return ok(out);
}
