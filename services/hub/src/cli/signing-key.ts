/** `switchyard-hub signing-key rotate [--retire-now]`: a new key for agent credentials. */
import { type Command, parseFlags } from "@switchyard/lib/cli";
import { parseDuration } from "@switchyard/lib/duration";
import type { RotateSigningKeyResponse } from "@switchyard/proto/admin";
import { call } from "../admin/admin-server.ts";
import { CredentialAuthority } from "../auth/credentials.ts";
import { fail, kekOrFail, STATE_FLAGS, STATE_NATS_HELP, viaHubOrState } from "./common.ts";

const HELP = `switchyard-hub signing-key — the key that signs agent credentials

Usage:
  switchyard-hub signing-key rotate [--retire-now] [flags]

A new key for agent credentials; connected agents get new ones within a
second; the old key's credentials work until they expire (--credential-ttl,
default 24h), or not at all with --retire-now (a leaked key: its agents must
join again).

Flags:
  --retire-now            the old key's credentials stop working at once
  --credential-ttl DUR    as serve's (with no hub running; default 24h)
  --signing-key-kek-file FILE  the key-encryption key, as for serve (with no hub running)
  --state-dir DIR         the hub's state directory (default /var/lib/switchyard-hub)
  --state-nats URL        the hub's shared state in NATS JetStream KV (repeatable; only when no hub
                          runs on --state-dir)
${STATE_NATS_HELP}
`;

export const signingKeyCommand: Command = {
  name: "signing-key",
  summary: [
    [
      "signing-key rotate",
      "new key for agent credentials; connected agents get new\nones within a second (--retire-now: the old ones stop at once)",
    ],
  ],
  help: HELP,
  run: runSigningKey,
};

async function runSigningKey(argv: string[]): Promise<void> {
  const { values, positionals } = parseFlags(
    argv,
    {
      ...STATE_FLAGS,
      "signing-key-kek-file": { type: "string" },
      "retire-now": { type: "boolean", default: false },
      "credential-ttl": { type: "string", default: "24h" },
    },
    { positionals: true },
  );
  if (positionals[0] !== "rotate" || positionals.length !== 1)
    fail(`unknown signing-key command "${positionals.join(" ")}": use rotate [--retire-now]`);
  const ttl = parseDuration(values["credential-ttl"]);
  if (!ttl.ok) fail(`--credential-ttl: ${ttl.error}`);
  const report = (r: { keyId: string; previousKeyId: string; previousValidUntil: string }, extra: string) =>
    process.stdout.write(
      `signing key ${r.keyId} is current; credentials of ${r.previousKeyId} are accepted until ${r.previousValidUntil}${extra}\n`,
    );
  await viaHubOrState(values, async ({ hub, state }) => {
    if (hub) {
      const r = await call<RotateSigningKeyResponse>((cb) =>
        hub.rotateSigningKey({ retireNow: values["retire-now"] }, cb),
      );
      report(r, `; ${r.agentsCutOff} stream(s) cut off, the others get new credentials within a second`);
      return;
    }
    const { kek } = kekOrFail(values, values["state-dir"]);
    const ca = await CredentialAuthority.open(state, ttl.value, kek).catch((e: unknown) =>
      fail((e as Error).message),
    );
    report(
      await ca.rotate({ retireNow: values["retire-now"] }),
      " (no hub running here; hubs follow within a second)",
    );
  });
}
