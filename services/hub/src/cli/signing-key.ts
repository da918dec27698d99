/** `switchyard-hub signing-key rotate [--retire-now]`: a new key for agent credentials. */
import { parseArgs } from "node:util";
import { parseDuration } from "@switchyard/lib/duration";
import type { RotateSigningKeyResponse } from "@switchyard/proto/admin";
import { call } from "../admin/admin-server.ts";
import { CredentialAuthority } from "../auth/credentials.ts";
import { fail, kekOrFail, STATE_FLAGS, viaHubOrState } from "./common.ts";
import { printHelp } from "./help.ts";

export async function signingKeyCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...STATE_FLAGS,
      "signing-key-kek-file": { type: "string" },
      "retire-now": { type: "boolean", default: false },
      "credential-ttl": { type: "string", default: "24h" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return printHelp();
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
