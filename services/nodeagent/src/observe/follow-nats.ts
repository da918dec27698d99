/**
 * `switchyard events` against NATS (the adapter): live from a core
 * subscription, or from a point in time through an ordered JetStream
 * consumer on the history stream, which carries on with new events once
 * the history is read (nothing between replay and live is lost or shown
 * twice).
 */
import fs from "node:fs";
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { SwitchyardError } from "@switchyard/lib/errors";
import { HISTORY_STREAM } from "@switchyard/lib/event-subjects";
import { explainNatsError, type NatsFlags, type NatsTls } from "@switchyard/lib/nats-tls";

export const FOLLOW_FLAGS: NatsFlags = {
  tlsCa: "--tls-ca",
  tlsServerName: "--tls-server-name",
  creds: "give --creds FILE (from `switchyard-hub nats-creds create --subscribe …`)",
};

export type FollowConnection = {
  servers: string[];
  credsFile?: string | undefined;
  tls?: NatsTls | undefined;
};

export async function connectForFollow(c: FollowConnection): Promise<NatsConnection> {
  let creds: Uint8Array | undefined;
  if (c.credsFile !== undefined) {
    try {
      creds = fs.readFileSync(c.credsFile);
    } catch (e) {
      throw new SwitchyardError("invalid_argument", `--creds ${c.credsFile}: ${(e as Error).message}`);
    }
  }
  try {
    return await connect({
      servers: c.servers,
      name: "switchyard events",
      maxReconnectAttempts: -1,
      ...(c.tls ? { tls: c.tls } : {}),
      ...(creds ? { authenticator: credsAuthenticator(creds) } : {}),
    });
  } catch (e) {
    throw new SwitchyardError("unavailable", explainNatsError(e, c.servers, FOLLOW_FLAGS));
  }
}

/**
 * Calls `each` with every message on `subject`, from `since` (history, then
 * live) or from now; `ready` once the server holds the subscription (or the
 * consumer); ends when `nc` closes.
 */
export async function followSubject(
  nc: NatsConnection,
  subject: string,
  since: Date | undefined,
  ready: () => void,
  each: (subject: string, data: Uint8Array) => void,
): Promise<void> {
  const denied = (e: unknown) => {
    const m = (e as Error).message;
    return /permission/i.test(m)
      ? new SwitchyardError(
          "permission_denied",
          `not allowed to read ${subject}${since ? " from the history" : ""} (${m}): ask for creds that cover it (switchyard-hub nats-creds create --subscribe …)`,
        )
      : /stream not found|jetstream is not enabled/i.test(m)
        ? new SwitchyardError(
            "not_found",
            `no event history on this NATS (${/jetstream/i.test(m) ? "JetStream is not enabled on it" : `stream ${HISTORY_STREAM}`}): the hub keeps one when given events.nats on a NATS with JetStream; follow live without --since`,
          )
        : (e as Error);
  };
  if (!since) {
    const sub = nc.subscribe(subject);
    try {
      await nc.flush();
      ready();
      for await (const m of sub) each(m.subject, m.data);
    } catch (e) {
      throw denied(e);
    }
    return;
  }
  try {
    const consumer = await jetstream(nc).consumers.get(HISTORY_STREAM, {
      // one subject: nats-server 2.9 takes filter_subject only (filter_subjects is 2.10)
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.StartTime,
      opt_start_time: since.toISOString(),
    });
    const msgs = await consumer.consume();
    ready();
    for await (const m of msgs) each(m.subject, m.data);
  } catch (e) {
    throw denied(e);
  }
}
