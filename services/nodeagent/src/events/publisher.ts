/**
 * Where NAT events go: a port, and its NATS implementation.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "@switchyard/lib/log";
import type { NatEvent } from "./nat-event.ts";

export interface EventPublisher {
  publish(subject: string, event: NatEvent): void;
  close(): Promise<void>;
}

export class NatsEventPublisher implements EventPublisher {
  private readonly nc: NatsConnection;
  private readonly log: Logger;
  dropped = 0;
  private constructor(nc: NatsConnection, log: Logger) {
    this.nc = nc;
    this.log = log;
  }

  static async connect(
    servers: string[],
    log: Logger,
    opts: { user?: string; pass?: string; token?: string } = {},
  ): Promise<NatsEventPublisher> {
    const nc = await connect({
      servers,
      name: "switchyard-agent",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      ...(opts.user !== undefined ? { user: opts.user } : {}),
      ...(opts.pass !== undefined ? { pass: opts.pass } : {}),
      ...(opts.token !== undefined ? { token: opts.token } : {}),
    });
    log.info({ server: nc.getServer() }, "connected to nats");
    (async () => {
      for await (const s of nc.status()) log.info({ status: s.type }, "nats status");
    })().catch(() => {});
    return new NatsEventPublisher(nc, log);
  }

  publish(subject: string, event: NatEvent): void {
    try {
      this.nc.publish(subject, JSON.stringify(event));
    } catch (e) {
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 1000 === 0)
        this.log.warn({ err: e, dropped: this.dropped }, "nat event not published");
    }
  }

  async close(): Promise<void> {
    await this.nc.drain();
  }
}
