/**
 * TLS to NATS, as the agent, the hub and the events CLI take it: a CA file
 * that signs the server's certificate (and, optionally, the name the
 * certificate carries when it is not the host in the URL). With a CA, the
 * connection is TLS whatever the URL's scheme; a `tls://` URL without one
 * checks the server against the system's CAs.
 */
import fs from "node:fs";
import { err, ok, type Result } from "./errors.ts";

/** nats.js's `tls` option (Node's tls.connect options pass through it). */
export type NatsTls = { ca: string; servername?: string };

/** The options' names, for errors that say what to give. */
export type NatsFlags = {
  tlsCa: string;
  tlsServerName: string;
  /** how to get credentials, said after "not authorized" */
  creds: string;
};

/** A config file's NATS servers: one URL or a list of them; `at` names the field in errors. */
export function parseNatsUrls(raw: unknown, at: string): Result<string[]> {
  const list = typeof raw === "string" ? [raw] : raw;
  if (!Array.isArray(list) || list.length === 0 || !list.every((u) => typeof u === "string" && u !== ""))
    return err(`${at} must be a NATS URL or a list of them (nats://HOST:4222, tls://HOST:4222)`);
  return ok(list as string[]);
}

/** Reads and checks the CA file. */
export function loadNatsTls(
  caFile: string | undefined,
  serverName: string | undefined,
  flags: NatsFlags,
): Result<NatsTls | undefined> {
  const flag = flags.tlsCa;
  if (caFile === undefined) {
    if (serverName !== undefined)
      return err(
        `${flags.tlsServerName} needs ${flag} FILE (the CA that signs the NATS server's certificate)`,
      );
    return ok(undefined);
  }
  let ca: string;
  try {
    ca = fs.readFileSync(caFile, "utf8");
  } catch (e) {
    return err(`${flag} ${caFile}: ${(e as Error).message}`);
  }
  if (!ca.includes("-----BEGIN CERTIFICATE-----"))
    return err(`${flag} ${caFile}: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)`);
  return ok(serverName !== undefined ? { ca, servername: serverName } : { ca });
}

/** A NATS connect error said so that a person knows what to change; `flags` name the options to give. */
export function explainNatsError(e: unknown, servers: string[], flags: NatsFlags): string {
  const msg = (e as Error)?.message ?? String(e);
  const code =
    (e as { code?: string; cause?: { code?: string } })?.cause?.code ?? (e as { code?: string })?.code ?? "";
  const where = `NATS ${servers.join(",")}`;
  if (/altnames|hostname\/ip does not match|ERR_TLS_CERT_ALTNAME/i.test(`${msg} ${code}`))
    return `${where}: the server's TLS certificate is for another name (${msg}): put its name in the URL or give ${flags.tlsServerName} NAME`;
  if (/certificate|self[- ]signed|CERT_|UNABLE_TO_VERIFY|DEPTH_ZERO/i.test(`${msg} ${code}`))
    return `${where}: the server's TLS certificate is not trusted (${msg}): give ${flags.tlsCa} FILE, the CA that signs it`;
  if (/tls.*required|requires tls|secure connection/i.test(msg))
    return `${where}: the server requires TLS (${msg}): use a tls:// URL and ${flags.tlsCa} FILE`;
  if (/authorization|authentication|permissions/i.test(msg))
    return `${where}: not authorized (${msg}): ${flags.creds}`;
  return `${where}: ${msg}`;
}

/**
 * Reads and checks a NATS .creds file (a user JWT and its nkey seed, as
 * `switchyard-hub nats init`/`nats-creds create` and the nsc tool write);
 * `flag` names the option in errors.
 */
export function loadNatsCreds(file: string, flag: string): Result<Uint8Array> {
  let text: Buffer;
  try {
    text = fs.readFileSync(file);
  } catch (e) {
    return err(`${flag} ${file}: ${(e as Error).message}`);
  }
  const s = text.toString("utf8");
  if (!s.includes("-----BEGIN NATS USER JWT-----") || !/-----BEGIN USER NKEY SEED-----\s*\n\s*SU/.test(s))
    return err(
      `${flag} ${file}: not a NATS .creds file (expected a -----BEGIN NATS USER JWT----- block and a -----BEGIN USER NKEY SEED----- block)`,
    );
  return ok(new Uint8Array(text));
}
