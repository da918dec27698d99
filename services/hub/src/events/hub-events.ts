/**
 * The hub's connection to the events' NATS (the adapter): in the
 * background (a hub serves agents whether NATS is up or not), as the hub's
 * own user of the events account when the hubs sign one, over TLS with the
 * configured CA. Once connected, and again on each config reload, it makes
 * the history stream match the settings.
 *
 * The hub's user lives a day and is signed again when a third is left (or
 * when `nats init` made the account after the hub started); nats-server
 * ends the expired one's connection and nats.js reconnects with the new.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "@switchyard/lib/log";
import { explainNatsError, loadNatsTls, type NatsFlags } from "@switchyard/lib/nats-tls";
import type { NatsAccounts } from "../auth/nats-accounts.ts";
import type { EventsSettings } from "./events-config.ts";
import { applyHistoryStream } from "./history.ts";

const FLAGS: NatsFlags = {
  tlsCa: "--nats-tls-ca",
  tlsServerName: "--nats-tls-server-name",
  creds:
    "with decentralized auth the hub connects as its own user once `switchyard-hub nats init` has made the account",
};
const USER_TTL_MS = 86_400_000;
const USER_CHECK_MS = 60_000;

export class HubEvents {
  private nc: NatsConnection | undefined;
  private settings: EventsSettings;
  private readonly log: Logger;
  private closed = false;
  private applying = Promise.resolve();
  /** settles once connected (or given up); tests wait for it */
  connecting: Promise<void> = Promise.resolve();
  /** the hub's own user (.creds), when the hubs sign the account */
  private creds: { text: Uint8Array; expiresAt: number; of: NatsAccounts } | undefined;
  private userTimer: NodeJS.Timeout | undefined;

  private constructor(settings: EventsSettings, log: Logger) {
    this.settings = settings;
    this.log = log;
  }

  /** Starts connecting when `events.nats` is set; a bad TLS file is an error now, NATS being down is not. */
  static start(
    settings: EventsSettings,
    accounts: () => NatsAccounts | undefined,
    hubId: string,
    log: Logger,
  ): HubEvents {
    const ev = new HubEvents(settings, log);
    if (settings.nats.length === 0) return ev;
    const tls = loadNatsTls(settings.tlsCa, settings.tlsServerName, FLAGS);
    if (!tls.ok) throw new Error(tls.error);
    const signUser = async () => {
      const a = accounts();
      const c = ev.creds;
      if (!a || (c && c.of === a && c.expiresAt - Date.now() > USER_TTL_MS / 3)) return;
      const expiresAt = Date.now() + USER_TTL_MS;
      ev.creds = { text: new TextEncoder().encode(await a.hubCreds(hubId, expiresAt)), expiresAt, of: a };
    };
    ev.userTimer = setInterval(
      () =>
        void signUser().catch((e: unknown) =>
          log.error({ reason: (e as Error).message }, "cannot sign the hub's nats user"),
        ),
      USER_CHECK_MS,
    );
    ev.userTimer.unref();
    ev.connecting = (async () => {
      await signUser();
      const nc = await connect({
        servers: settings.nats,
        name: `switchyard-hub ${hubId}`,
        waitOnFirstConnect: true,
        maxReconnectAttempts: -1,
        ...(tls.value ? { tls: tls.value } : {}),
        // read at every (re)connect: the newest user
        authenticator: (nonce) => (ev.creds ? credsAuthenticator(ev.creds.text)(nonce) : undefined),
      });
      if (ev.closed) return void (await nc.close());
      ev.nc = nc;
      log.info({ server: nc.getServer(), operatorMode: ev.creds !== undefined }, "events nats connected");
      ev.apply(ev.settings);
    })().catch((e: unknown) =>
      log.error({ reason: explainNatsError(e, settings.nats, FLAGS) }, "events nats: cannot connect"),
    );
    return ev;
  }

  /** New settings (a config reload): the history's limits follow; a changed NATS address needs a restart. */
  apply(next: EventsSettings): void {
    if (next.nats.join() !== this.settings.nats.join())
      this.log.warn({ nats: next.nats }, "events.nats changes take effect at the next restart");
    this.settings = { ...next, nats: this.settings.nats };
    const nc = this.nc;
    if (!nc) return;
    const { historyMaxAgeMs: maxAgeMs, historyMaxBytes: maxBytes } = this.settings;
    this.applying = this.applying.then(async () => {
      if (maxAgeMs === 0) return;
      try {
        const r = await applyHistoryStream(await jetstreamManager(nc), { maxAgeMs, maxBytes });
        this.log.info({ result: r, maxAgeMs, maxBytes }, "event history stream");
      } catch (e) {
        this.log.error(
          { reason: (e as Error).message },
          "event history stream not applied (is JetStream enabled on the NATS server and for the account?)",
        );
      }
    });
  }

  /** Resolves once the last apply is done (tests). */
  settled(): Promise<void> {
    return this.applying;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.userTimer);
    await this.applying;
    await this.nc?.close().catch(() => {});
  }
}
