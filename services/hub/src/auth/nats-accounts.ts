/**
 * NATS decentralized auth with the hub as the account's signer.
 *
 * `switchyard-hub nats init` makes, once (replicas race safely), an
 * operator, the account events live in ("switchyard"), a system account and
 * the account's signing key; their nkey seeds are kept in the shared state
 * sealed with the hub's KEK (as the agent-credential signing key is), the
 * public JWTs beside them. nats-server is given the operator JWT and both
 * account JWTs (resolver MEMORY with resolver_preload: serverConfig()).
 *
 * From the signing key the hub issues user JWTs:
 * - each agent, with its credential and rotated with it: publish on its own
 *   subjects only (`switchyard.nat.<cluster>.<node>.>`), subscribe on nothing;
 * - subscribers (`nats-creds create --subscribe SUBJECT`): subscribe within
 *   SUBJECT only, plus the JetStream API calls an ordered consumer of the
 *   history stream needs, the filter named in the consumer-create subject
 *   so it cannot reach outside SUBJECT either;
 * - the hub itself: the whole account (it manages the history stream);
 * - the hubs' shared state (`nats init --state-creds-out FILE`): JetStream
 *   KV on the hubs' bucket only, never expiring (the state connection
 *   cannot wait for a user signed from the state it is to open).
 */
import {
  type ClaimsData,
  createAccount,
  createOperator,
  createUser,
  decode,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  fromSeed,
  type KeyPair,
  type User,
} from "@nats-io/jwt";
import { agentEventSubjects, EVENT_SUBJECT_ROOT, HISTORY_STREAM } from "@switchyard/lib/event-subjects";
import type { HubState } from "../state/hub-state.ts";
import { type Kek, openKey, type SealedKey, sealKey } from "./signing-key.ts";

export const NATS_STATE_KEY = "nats-accounts";
export const ACCOUNT_NAME = "switchyard";

type Party = { public: string; jwt: string; seed: SealedKey };
type Stored = {
  operator: Party;
  account: Party;
  system: Party;
  signer: { public: string; seed: SealedKey };
  createdAt: string;
};

const seal = (kp: KeyPair, role: string, kek: Kek): SealedKey =>
  sealKey(`nats-${role}-${kp.getPublicKey().slice(0, 8)}`, new TextDecoder().decode(kp.getSeed()), kek);

/** A subject a subscriber may be given: NATS subject syntax, within the event root. */
export function checkSubscribeSubject(s: string): string | undefined {
  const tokens = s.split(".");
  if (tokens.some((t) => t === "" || /\s/.test(t)) || tokens.slice(0, -1).includes(">"))
    return `--subscribe "${s}" is not a NATS subject (dot-separated tokens; '*' for one token, '>' last for the rest)`;
  const root = EVENT_SUBJECT_ROOT.split(".");
  if (tokens.length <= root.length || root.some((r, i) => tokens[i] !== r))
    return `--subscribe "${s}" is outside the event subjects: give ${EVENT_SUBJECT_ROOT}.> or a part of it, e.g. ${EVENT_SUBJECT_ROOT}.prod.>`;
  return undefined;
}

/** What a subscribe-only user may do: read SUBJECTS live, and replay them from the history stream. */
export function subscriberPermissions(subjects: string[]): Partial<User> {
  const api = "$JS.API";
  return {
    pub: {
      allow: [
        `${api}.INFO`,
        `${api}.STREAM.INFO.${HISTORY_STREAM}`,
        // the consumer's filter is part of the subject (nats-server ≥ 2.9): none outside SUBJECTS can be made
        ...subjects.map((s) => `${api}.CONSUMER.CREATE.${HISTORY_STREAM}.*.${s}`),
        `${api}.CONSUMER.INFO.${HISTORY_STREAM}.*`,
        `${api}.CONSUMER.DELETE.${HISTORY_STREAM}.*`,
        `${api}.CONSUMER.MSG.NEXT.${HISTORY_STREAM}.*`,
      ],
    },
    sub: { allow: [...subjects, "_INBOX.>"] },
  };
}

/**
 * What the hubs' state user may do: the JetStream KV calls on BUCKET
 * (create or look up its stream, read, write, watch, purge a key's history)
 * and nothing else: no other stream, no event subject.
 */
export function stateUserPermissions(bucket: string): Partial<User> {
  const api = "$JS.API";
  const stream = `KV_${bucket}`;
  return {
    pub: {
      allow: [
        `${api}.INFO`,
        `${api}.STREAM.INFO.${stream}`,
        `${api}.STREAM.CREATE.${stream}`,
        `${api}.STREAM.PURGE.${stream}`,
        `${api}.STREAM.MSG.GET.${stream}`,
        `${api}.DIRECT.GET.${stream}`,
        `${api}.DIRECT.GET.${stream}.>`,
        `${api}.CONSUMER.CREATE.${stream}`,
        `${api}.CONSUMER.CREATE.${stream}.>`,
        `${api}.CONSUMER.INFO.${stream}.*`,
        `${api}.CONSUMER.DELETE.${stream}.*`,
        `${api}.CONSUMER.MSG.NEXT.${stream}.*`,
        `$JS.FC.${stream}.>`,
        `$KV.${bucket}.>`,
      ],
    },
    sub: { allow: ["_INBOX.>"] },
  };
}

export class NatsAccounts {
  private readonly stored: Stored;
  private readonly signer: KeyPair;

  private constructor(stored: Stored, kek: Kek) {
    this.stored = stored;
    const seed = openKey(stored.signer.seed, kek);
    if (!seed.ok) throw new Error(seed.error.replace("hub signing key", "NATS account signing key"));
    this.signer = fromSeed(new TextEncoder().encode(seed.value));
  }

  /** The accounts `nats init` made, or undefined before it ran. Throws when the KEK does not open them. */
  static open(state: HubState, kek: Kek): NatsAccounts | undefined {
    const s = state.get<Stored>(NATS_STATE_KEY);
    return s ? new NatsAccounts(s, kek) : undefined;
  }

  /**
   * Puts the accounts FROM holds into TO unless TO has some already (the
   * bootstrap's second step: made on a file state, then taken into the
   * shared bucket of the server they put in operator mode); true when it did.
   */
  static async copy(from: HubState, to: HubState): Promise<boolean> {
    const s = from.get<Stored>(NATS_STATE_KEY);
    if (!s || to.get<Stored>(NATS_STATE_KEY)) return false;
    return to.create(NATS_STATE_KEY, s);
  }

  /** Makes the operator and accounts unless the shared state holds them already; idempotent. */
  static async init(state: HubState, kek: Kek): Promise<{ accounts: NatsAccounts; created: boolean }> {
    const have = NatsAccounts.open(state, kek);
    if (have) return { accounts: have, created: false };
    const operator = createOperator();
    const account = createAccount();
    const system = createAccount();
    const signer = createAccount();
    const opJwt = await encodeOperator("switchyard", operator, { system_account: system.getPublicKey() });
    const accJwt = await encodeAccount(
      ACCOUNT_NAME,
      account,
      {
        signing_keys: [signer.getPublicKey()],
        // no account limits (a limit left out is 0 for the server); JetStream on for the account (the
        // history stream), its size being the stream's own limit
        limits: {
          subs: -1,
          data: -1,
          payload: -1,
          imports: -1,
          exports: -1,
          wildcards: true,
          conn: -1,
          leaf: -1,
          mem_storage: -1,
          disk_storage: -1,
          streams: -1,
          consumer: -1,
        },
      },
      { signer: operator },
    );
    const sysJwt = await encodeAccount("SYS", system, {}, { signer: operator });
    const stored: Stored = {
      operator: { public: operator.getPublicKey(), jwt: opJwt, seed: seal(operator, "operator", kek) },
      account: { public: account.getPublicKey(), jwt: accJwt, seed: seal(account, "account", kek) },
      system: { public: system.getPublicKey(), jwt: sysJwt, seed: seal(system, "system", kek) },
      signer: { public: signer.getPublicKey(), seed: seal(signer, "signer", kek) },
      createdAt: new Date().toISOString(),
    };
    const created = await state.create(NATS_STATE_KEY, stored);
    const accounts = NatsAccounts.open(state, kek);
    if (!accounts) throw new Error("the shared state holds no NATS accounts and none could be created");
    return { accounts, created };
  }

  get accountPublicKey(): string {
    return this.stored.account.public;
  }

  /** when `nats init` made the account (agents' credentials from before carry no NATS user) */
  get createdAtMs(): number {
    return Date.parse(this.stored.createdAt);
  }

  /**
   * The nats-server configuration fragment: the operator, the system
   * account and the events account, preloaded (nats-server 2.9: resolver
   * MEMORY). Include it in nats-server.conf, with a `jetstream` block for
   * the history.
   */
  serverConfig(): string {
    const s = this.stored;
    return [
      "# Switchyard: NATS decentralized auth (written by `switchyard-hub nats init`).",
      "# Include it from nats-server.conf (`include switchyard-auth.conf`); enable JetStream there",
      "# (`jetstream { store_dir: /var/lib/nats }`) for the event history.",
      `operator: ${s.operator.jwt}`,
      `system_account: ${s.system.public}`,
      "resolver: MEMORY",
      "resolver_preload: {",
      `  # account ${ACCOUNT_NAME} (events), signing key ${s.signer.public}`,
      `  ${s.account.public}: ${s.account.jwt}`,
      "  # account SYS (system)",
      `  ${s.system.public}: ${s.system.jwt}`,
      "}",
      "",
    ].join("\n");
  }

  private async user(name: string, perms: Partial<User>, expiresAtMs?: number): Promise<string> {
    const u = createUser();
    const jwt = await encodeUser(
      name,
      u,
      this.signer,
      { issuer_account: this.stored.account.public, ...perms },
      expiresAtMs !== undefined ? { exp: Math.floor(expiresAtMs / 1000) } : {},
    );
    return new TextDecoder().decode(fmtCreds(jwt, u));
  }

  /** An agent's user (.creds text): publish on its own subjects only, until its credential expires. */
  agentCreds(cluster: string, node: string, expiresAtMs: number): Promise<string> {
    return this.user(
      `agent ${cluster}/${node}`,
      { pub: { allow: [agentEventSubjects(cluster, node)] }, sub: { deny: [">"] } },
      expiresAtMs,
    );
  }

  /** A subscribe-only user (.creds text) for SUBJECTS (checked with checkSubscribeSubject). */
  subscriberCreds(subjects: string[], expiresAtMs?: number, name = "subscriber"): Promise<string> {
    return this.user(name, subscriberPermissions(subjects), expiresAtMs);
  }

  /** The hubs' state user (.creds text): JetStream KV on BUCKET only; it does not expire. */
  stateCreds(bucket: string): Promise<string> {
    return this.user("hub-state", stateUserPermissions(bucket));
  }

  /** The hub's own user: the whole account (it creates and updates the history stream). */
  hubCreds(hubId: string, expiresAtMs?: number): Promise<string> {
    return this.user(`hub ${hubId}`, {}, expiresAtMs);
  }
}

/**
 * The accounts as the shared state holds them now, opened once per stored
 * value: a hub sees `nats init` run by the CLI (or another replica) while it
 * serves.
 */
export function followNatsAccounts(state: HubState, kek: Kek): () => NatsAccounts | undefined {
  let seen: unknown;
  let opened: NatsAccounts | undefined;
  return () => {
    const s = state.get<Stored>(NATS_STATE_KEY);
    if (s !== seen) {
      seen = s;
      opened = s ? NatsAccounts.open(state, kek) : undefined;
    }
    return opened;
  };
}

/** The claims of a .creds text's user JWT (for `nats-creds create`'s summary and the tests). */
export function decodeCreds(creds: string): ClaimsData<User> {
  const m = /-----BEGIN NATS USER JWT-----\s*\n\s*(\S+)\s*\n/.exec(creds);
  if (!m) throw new Error("not a NATS .creds text");
  return decode<User>(m[1]!);
}
