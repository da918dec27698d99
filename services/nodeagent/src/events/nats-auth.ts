/**
 * How the agent proves itself to NATS, and over what: the NATS user the hub
 * issues with the agent's credential (STATE-DIR/nats.creds, rotated with
 * it; it may publish on switchyard.nat.<cluster>.<node>.> only), or a .creds
 * file of the operator's own (--nats-creds); and TLS with --nats-tls-ca.
 *
 * The .creds file is read at every connect and reconnect, so a rotated user
 * is taken up when the server ends the expired one's connection. With no
 * file (yet), the agent connects without credentials (a server without
 * auth); a server in operator mode refuses it until the hub has issued one.
 */
import fs from "node:fs";
import path from "node:path";
import { type Authenticator, credsAuthenticator } from "@nats-io/transport-node";
import type { NatsFlags, NatsTls } from "@switchyard/lib/nats-tls";

export const NATS_CREDS_FILE = "nats.creds";

export const AGENT_NATS_FLAGS: NatsFlags = {
  tlsCa: "--nats-tls-ca",
  tlsServerName: "--nats-tls-server-name",
  creds:
    "the agent connects as the NATS user the hub issues with its credential (STATE-DIR/nats.creds, after `switchyard-hub nats init`; an agent admitted before gets it within a second of it) or --nats-creds FILE",
};

export type NatsAuth = {
  /** --nats-creds, else the hub-issued STATE-DIR/nats.creds */
  credsFile: string;
  tls?: NatsTls | undefined;
};

export function natsAuth(
  stateDir: string,
  credsFlag: string | undefined,
  tls: NatsTls | undefined,
): NatsAuth {
  return { credsFile: credsFlag ?? path.join(stateDir, NATS_CREDS_FILE), ...(tls ? { tls } : {}) };
}

/** The connection options for `a` (nats.js `authenticator` and `tls`). */
export function natsAuthOptions(a: NatsAuth): { authenticator: Authenticator; tls?: NatsTls } {
  const authenticator: Authenticator = (nonce) => {
    let creds: Uint8Array;
    try {
      creds = fs.readFileSync(a.credsFile);
    } catch {
      // no user issued yet: connect without one
      return;
    }
    return credsAuthenticator(creds)(nonce);
  };
  return { authenticator, ...(a.tls ? { tls: a.tls } : {}) };
}
