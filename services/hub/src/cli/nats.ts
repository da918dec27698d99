/**
 * `switchyard-hub nats init`: the NATS operator and events account whose
 * signer the hubs are, and the nats-server configuration for them;
 * `switchyard-hub nats-creds create --subscribe SUBJECT`: a subscribe-only
 * .creds file for people and tools (`switchyard events --creds FILE`).
 * Both work on the shared state directly (the accounts' keys are sealed
 * with the KEK, so they take the same --signing-key-kek-file as serve).
 */
import fs from "node:fs";
import { type Command, parseFlags, usageError } from "@switchyard/lib/cli";
import { parseDuration } from "@switchyard/lib/duration";
import { checkSubscribeSubject, decodeCreds, NatsAccounts } from "../auth/nats-accounts.ts";
import { FileState, STATE_BUCKET } from "../state/hub-state.ts";
import { kekOrFail, openState, STATE_FLAGS, STATE_NATS_HELP, stateNatsOf } from "./common.ts";

const STATE_HELP = `  --signing-key-kek-file FILE  the key-encryption key, as for serve (or env SWITCHYARD_HUB_KEK)
  --state-dir DIR         the hub's state directory (default /var/lib/switchyard-hub)
  --state-nats URL        the hub's shared state in NATS JetStream KV (repeatable)
${STATE_NATS_HELP}`;

const INIT_HELP = `switchyard-hub nats init — NATS decentralized auth with the hubs as the account's signer

Usage:
  switchyard-hub nats init [--out FILE] [flags]

Makes, once, a NATS operator, the account NAT events live in, a system
account and the account's signing key; their seeds are kept sealed in the
hub's shared state. Run again, it changes nothing and writes the same
configuration. Writes the nats-server configuration for them (operator JWT,
resolver MEMORY with both accounts preloaded; nats-server ≥ 2.9) to FILE or
stdout: include it in nats-server.conf and enable JetStream there for the
event history. From then on every agent receives, with its credential and
rotated with it, a NATS user that may publish only on
switchyard.nat.<cluster>.<node>.> (connected agents whose credential is
older get a new one within a second); give people and tools subscribe-only
credentials with \`switchyard-hub nats-creds create\`.

One NATS for both the shared state and the events (operator mode): run
it first on a file state (no --state-nats) with --state-creds-out FILE;
start nats-server with the configuration (JetStream on); run it again with
the same --state-dir and --state-nats URL --state-nats-creds FILE: it takes
the operator and accounts from the state directory's file into the shared
bucket (docs/hub-replicas.md).

Flags:
  --out FILE              write the configuration here (0644) instead of stdout
  --state-creds-out FILE  also write the hubs' state user (.creds, 0600, never expires): JetStream
                          KV on the hubs' bucket (${STATE_BUCKET}) only; give it to serve and the
                          CLI as --state-nats-creds FILE
${STATE_HELP}
`;

const CREDS_HELP = `switchyard-hub nats-creds — subscribe-only NATS credentials for events

Usage:
  switchyard-hub nats-creds create --subscribe SUBJECT [--subscribe …] [--expires DUR] [--out FILE] [flags]

Writes a standard NATS .creds file (user JWT + nkey seed, signed by the
account's signing key; needs \`nats init\` first) that may subscribe within
the given subjects only — live, and replaying the event history through
JetStream (a replay is also held to the subjects) — and publish nothing.
Use it with \`switchyard events --creds FILE\` or any NATS client.

Flags:
  --subscribe SUBJECT     event subjects it may read: switchyard.nat.> (all), switchyard.nat.prod.>
                          (cluster prod), switchyard.nat.prod.node-1.> (one node), … (repeatable)
  --expires DUR           lifetime (e.g. 24h, 30d); default: never expires
  --name NAME             the user's name in the JWT (default subscriber)
  --out FILE              write here (0600) instead of stdout
${STATE_HELP}
`;

export const natsCommand: Command = {
  name: "nats",
  summary: [
    [
      "nats init [--out FILE]",
      "NATS operator + events account signed by the hubs;\nwrites the nats-server config",
    ],
  ],
  help: INIT_HELP,
  run: runInit,
};

export const natsCredsCommand: Command = {
  name: "nats-creds",
  summary: [
    ["nats-creds create --subscribe SUBJECT", "subscribe-only NATS .creds for events (switchyard events)"],
  ],
  help: CREDS_HELP,
  run: runCreds,
};

const FLAGS = {
  ...STATE_FLAGS,
  "signing-key-kek-file": { type: "string" as const },
  out: { type: "string" as const },
  "state-creds-out": { type: "string" as const },
};

async function withState<T>(
  values: {
    "state-dir": string;
    "state-nats": string[];
    "signing-key-kek-file"?: string | undefined;
  } & Record<string, unknown>,
  run: (a: {
    state: Awaited<ReturnType<typeof openState>>;
    kek: ReturnType<typeof kekOrFail>["kek"];
  }) => Promise<T>,
): Promise<T> {
  const { kek } = kekOrFail(values, values["state-dir"]);
  const state = await openState(values["state-dir"], stateNatsOf(values));
  try {
    return await run({ state, kek });
  } finally {
    await state.close();
  }
}

function write(out: string | undefined, text: string, mode: number): void {
  if (out === undefined) process.stdout.write(text);
  else fs.writeFileSync(out, text, { mode });
}

async function runInit(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(argv, FLAGS, { positionals: true });
  if (positionals[0] !== "init" || positionals.length > 1)
    usageError(`nats: the command is \`nats init [--out FILE]\` (got "${positionals.join(" ")}")`);
  const shared = values["state-nats"].length > 0;
  if (values["state-creds-out"] !== undefined && shared && values["state-nats-creds"] === undefined)
    usageError(
      "--state-creds-out with --state-nats but no --state-nats-creds: the accounts would be kept in the bucket of a NATS without auth, which is not the events account's once that server is in operator mode; run `nats init --state-creds-out FILE` first without --state-nats (a file state in --state-dir), start nats-server in operator mode, then again with --state-nats URL --state-nats-creds FILE (docs/hub-replicas.md)",
    );
  await withState(values, async ({ state, kek }) => {
    // the second step of the bootstrap: the accounts made on the file state go into the shared bucket
    const from = shared ? new FileState(values["state-dir"]) : undefined;
    const copied = from ? await NatsAccounts.copy(from, state) : false;
    // a server in operator mode runs with accounts made before: new ones here would not match its configuration
    if (values["state-nats-creds"] !== undefined && !copied && !NatsAccounts.open(state, kek))
      usageError(
        `no NATS accounts in the shared bucket nor in ${from!.describe}: give the --state-dir that \`nats init --state-creds-out\` ran on (its state.json holds them); new ones would not match the server's operator`,
      );
    const { accounts, created } = await NatsAccounts.init(state, kek);
    write(values.out, accounts.serverConfig(), 0o644);
    const credsOut = values["state-creds-out"];
    if (credsOut !== undefined) write(credsOut, await accounts.stateCreds(STATE_BUCKET), 0o600);
    const what = copied ? `took from ${from!.describe}` : created ? "made" : "kept";
    process.stderr.write(
      `${what} the NATS operator and account ${accounts.accountPublicKey}${values.out ? `; nats-server configuration in ${values.out}` : ""}${credsOut ? `; the hubs' state user in ${credsOut}` : ""}\n`,
    );
  });
}

async function runCreds(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    argv,
    {
      ...FLAGS,
      subscribe: { type: "string", multiple: true, default: [] },
      expires: { type: "string" },
      name: { type: "string", default: "subscriber" },
    },
    { positionals: true },
  );
  if (positionals[0] !== "create" || positionals.length > 1)
    usageError(
      `nats-creds: the command is \`nats-creds create --subscribe SUBJECT\` (got "${positionals.join(" ")}")`,
    );
  if (values.subscribe.length === 0)
    usageError("give --subscribe SUBJECT: the event subjects it may read (e.g. 'switchyard.nat.prod.>')");
  for (const s of values.subscribe) {
    const e = checkSubscribeSubject(s);
    if (e) usageError(e);
  }
  let expiresAt: number | undefined;
  if (values.expires !== undefined) {
    const d = parseDuration(values.expires);
    if (!d.ok || d.value < 60_000)
      usageError(`--expires "${values.expires}": give a duration of at least 1m (24h, 30d)`);
    expiresAt = Date.now() + d.value;
  }
  await withState(values, async ({ state, kek }) => {
    const accounts = NatsAccounts.open(state, kek);
    if (!accounts)
      usageError(
        "no NATS account in the hub's state yet: run `switchyard-hub nats init` first (same --state-dir/--state-nats)",
      );
    const creds = await accounts.subscriberCreds(values.subscribe, expiresAt, values.name);
    write(values.out, creds, 0o600);
    const c = decodeCreds(creds);
    process.stderr.write(
      `subscribe-only credentials for ${values.subscribe.join(", ")} (user ${c.sub}, ${c.exp ? `expires ${new Date(c.exp * 1000).toISOString()}` : "never expires"})${values.out ? ` in ${values.out}` : ""}\n`,
    );
  });
}
