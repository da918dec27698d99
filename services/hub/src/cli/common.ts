/**
 * What the hub's commands share: how they fail, the state flags, the shared
 * state or the running hub's admin API, tables, the signing key's KEK.
 */
import { usageError } from "@switchyard/lib/cli";
import { explainNatsError } from "@switchyard/lib/nats-tls";
import { adminClient } from "../admin/admin-server.ts";
import { KEK_ENV, type Kek, loadKek } from "../auth/signing-key.ts";
import { FileState, type HubState, KvState } from "../state/hub-state.ts";
import {
  loadStateNatsAuth,
  resolveStateNats,
  STATE_NATS_FLAGS,
  type StateNats,
} from "../state/state-nats.ts";

/** A wrong flag or a refused command: the reason on stderr in one line, exit code 2 (lib/cli.ts). */
export function fail(msg: string): never {
  return usageError(msg);
}

export const STATE_FLAGS = {
  "state-dir": { type: "string" as const, default: "/var/lib/switchyard-hub" },
  "state-nats": { type: "string" as const, multiple: true as const, default: [] as string[] },
  "state-nats-creds": { type: "string" as const },
  "state-nats-tls-ca": { type: "string" as const },
  "state-nats-tls-server-name": { type: "string" as const },
};

/** The state flags' help lines (commands that open the state directly add them to their help). */
export const STATE_NATS_HELP = `  --state-nats-creds FILE the hub-state NATS user (.creds) when that NATS is in operator mode
                          (\`nats init --state-creds-out FILE\`)
  --state-nats-tls-ca FILE  the CA that signs the state NATS's certificate (TLS)
  --state-nats-tls-server-name NAME  the name in that certificate, when not the URL's host`;

/** The state flags' NATS connection (flags only: the CLI commands take no config file). */
export function stateNatsOf(values: Record<string, unknown>): StateNats {
  const r = resolveStateNats(undefined, values);
  if (!r.ok) fail(r.error);
  return r.value;
}

/** The shared state: JetStream KV when NATS is given, else the file in the state dir. */
export async function openState(stateDir: string, nats: StateNats): Promise<HubState> {
  if (nats.servers.length === 0) return new FileState(stateDir);
  const auth = loadStateNatsAuth(nats);
  if (!auth.ok) fail(auth.error);
  return KvState.open(nats.servers, undefined, auth.value).catch((e: unknown) =>
    fail(
      `--state-nats: cannot open the JetStream KV bucket: ${explainNatsError(e, nats.servers, STATE_NATS_FLAGS)}`,
    ),
  );
}

/** The running hub's admin API, or undefined when none answers on the state dir's socket. */
export async function runningHub(stateDir: string) {
  const c = adminClient(stateDir);
  if (!c) return undefined;
  const ok = await new Promise<boolean>((resolve) =>
    c.waitForReady(Date.now() + 2000, (e) => resolve(e === undefined || e === null)),
  );
  if (ok) return c;
  c.close();
  return undefined;
}

export type AdminClient = NonNullable<Awaited<ReturnType<typeof runningHub>>>;

/**
 * Runs a CLI command through the running hub's admin API (streams are cut
 * at once), else directly on the shared state; errors end the CLI with
 * their reason; both are closed afterwards.
 */
export async function viaHubOrState(
  flags: { "state-dir": string; "state-nats": string[] } & Record<string, unknown>,
  run: (on: { hub: AdminClient; state?: undefined } | { hub?: undefined; state: HubState }) => Promise<void>,
): Promise<void> {
  const hub = await runningHub(flags["state-dir"]);
  const state = hub ? undefined : await openState(flags["state-dir"], stateNatsOf(flags));
  try {
    await run(hub ? { hub } : { state: state! });
  } catch (e) {
    fail((e as { details?: string }).details ?? (e as Error).message);
  } finally {
    hub?.close();
    await state?.close();
  }
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return `${rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

/** The KEK that seals the signing key (flag, env, or the state dir's own); a bad one ends the process. */
export function kekOrFail(
  values: { "signing-key-kek-file"?: string | undefined; "state-nats": string[] },
  stateDir: string,
): { kek: Kek; created: boolean; notes: string[] } {
  const k = loadKek({
    file: values["signing-key-kek-file"],
    env: process.env[KEK_ENV],
    stateDir,
    shared: values["state-nats"].length > 0,
  });
  if (!k.ok) fail(k.error);
  return k.value;
}
