/**
 * The agent's connection to NATS (the adapter): made in the background, so
 * the agent starts and serves while NATS is unreachable. The first connect
 * is retried with jittered exponential backoff; once connected, the nats.js
 * client reconnects by itself. The state is logged once per change of state
 * (and of cause), never per attempt.
 *
 * How the agent authenticates to NATS (credentials, TLS) is decided in
 * `natsConnectOptions` alone.
 */
import { type ConnectionOptions, connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "@switchyard/lib/log";
import { explainNatsError } from "@switchyard/lib/nats-tls";
import { AGENT_NATS_FLAGS, type NatsAuth, natsAuthOptions } from "./nats-auth.ts";

export type NatsState = "connecting" | "connected" | "disconnected" | "closed";

export type NatsSettings = {
  servers: string[];
  /** the agent's NATS user and TLS (events/nats-auth.ts) */
  auth?: NatsAuth;
  /** the first connect's backoff: from this, doubled per failure up to `maxBackoffMs` (jittered) */
  minBackoffMs?: number;
  maxBackoffMs?: number;
};

/** Pure: the nats.js options of the agent's connection. */
export function natsConnectOptions(s: NatsSettings): ConnectionOptions {
  return {
    servers: s.servers,
    name: "switchyard-agent",
    ...(s.auth ? natsAuthOptions(s.auth) : {}),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    reconnectJitter: 500,
    // a server that stops answering is noticed in ~30 s (nats.js's default is 2 min × 2)
    pingInterval: 10_000,
    maxPingOut: 3,
    timeout: 5000,
  };
}

/** A NATS connection that may not exist yet: `current` is set while connected. */
export class NatsLink {
  private nc: NatsConnection | undefined;
  private _state: NatsState = "connecting";
  private cause = "";
  private server = "";
  private stopped = false;
  /** the unreachable state was logged (once until connected again) */
  private warned = false;
  private timer: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private readonly settings: NatsSettings;
  private readonly log: Logger;
  private readonly listeners: Array<(s: NatsState) => void> = [];
  private readonly refusals: Array<(subject: string) => void> = [];
  /** times the state became `connected` (the first connect and every reconnect) */
  connects = 0;

  constructor(settings: NatsSettings, log: Logger) {
    this.settings = settings;
    this.log = log;
    this.backoffMs = settings.minBackoffMs ?? 250;
  }

  get state(): NatsState {
    return this._state;
  }

  /** the live connection while `connected` */
  get current(): NatsConnection | undefined {
    return this._state === "connected" ? this.nc : undefined;
  }

  onState(fn: (s: NatsState) => void): void {
    this.listeners.push(fn);
  }

  /**
   * Called for every message the server refused to take (a publish
   * permissions violation), before the answer to a flush written after it
   * has been handled in a later turn of the event loop.
   */
  onPublishRefused(fn: (subject: string) => void): void {
    this.refusals.push(fn);
  }

  /** Starts connecting in the background; returns at once. */
  start(): void {
    void this.attempt();
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    let nc: NatsConnection;
    try {
      nc = await connect(natsConnectOptions(this.settings));
    } catch (e) {
      if (this.stopped) return;
      this.setState("connecting", explainNatsError(e, this.settings.servers, AGENT_NATS_FLAGS));
      const max = this.settings.maxBackoffMs ?? 10_000;
      const delay = Math.min(this.backoffMs, max) * (0.5 + Math.random() * 0.5);
      this.backoffMs = Math.min(this.backoffMs * 2, max);
      this.timer = setTimeout(() => void this.attempt(), delay);
      this.timer.unref();
      return;
    }
    if (this.stopped) {
      await nc.close().catch(() => {});
      return;
    }
    this.nc = nc;
    this.server = nc.getServer();
    this.setState("connected", "");
    (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect") this.setState("disconnected", `lost ${s.server}`);
        else if (s.type === "reconnect") {
          this.server = s.server;
          this.setState("connected", "");
        } else if (s.type === "error" && isPublishRefusal(s.error))
          // the server refused one message (no right to its subject): the connection stays
          for (const fn of this.refusals) fn((s.error as Error & { subject: string }).subject);
        else if (s.type === "error") this.setState(this._state, s.error.message);
        else if (s.type === "staleConnection")
          this.setState("disconnected", "server stopped answering pings");
      }
    })().catch(() => {});
    nc.closed().then((err) => {
      if (!this.stopped) this.setState("closed", err?.message ?? "closed");
    });
  }

  private setState(state: NatsState, cause: string): void {
    const was = this._state;
    const causeChanged = cause !== "" && cause !== this.cause;
    if (state === was && !causeChanged) return;
    this._state = state;
    if (cause) this.cause = cause;
    if (state === "connected") {
      this.connects++;
      this.warned = false;
      this.log.info({ server: this.server }, "nats connected; events flow");
    } else if (state === "closed") {
      this.log.error({ cause: this.cause }, "nats connection closed; connecting again");
      this.nc = undefined;
      this.timer = setTimeout(() => void this.attempt(), this.settings.minBackoffMs ?? 250);
      this.timer.unref();
    } else if (state !== was || !this.warned) {
      this.warned = true;
      this.log.warn({ state, cause: this.cause }, "nats unreachable; events are buffered until it is back");
    } else this.log.debug({ state, cause: this.cause }, "nats still unreachable, for another cause");
    if (state !== was) for (const fn of this.listeners) fn(state);
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.nc?.close().catch(() => {});
  }
}

/** Pure: whether a NATS client error is the server refusing a publish (the message is lost, the connection stays). */
export function isPublishRefusal(e: Error): boolean {
  return (
    e.name === "PermissionViolationError" && (e as Error & { operation?: string }).operation === "publish"
  );
}
