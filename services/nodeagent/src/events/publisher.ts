/**
 * Where NAT events go: a port, and its NATS implementation.
 *
 * `NatsEventPublisher` owns the buffer between the ring buffer and NATS
 * (`EventOutbox`, within `--events-buffer-bytes`): nats.js discards what it
 * has not written when it reconnects, so nothing is handed to it that the
 * agent does not still hold. Events go out in batches while connected; a
 * batch counts as published once a flush (PING → PONG: the server has
 * processed everything written before it) answers, and goes back to the
 * front of the queue when the connection is lost first.
 *
 * An event whose cluster is empty was emitted before the agent knew its
 * cluster (a first start, the hub not reached yet): its subject would carry
 * `_` for the cluster, which the agent's NATS user may not publish on. It is
 * held in the outbox (counted as held, within the budget) until `address`
 * names the cluster, then sent with it, in order.
 */
import type { Logger } from "@switchyard/lib/log";
import { encodeNatEvent } from "./event-codec.ts";
import { type DropReason, EventOutbox, type OutboxCounts, type OutboxEvent } from "./event-outbox.ts";
import type { NatEvent } from "./nat-event.ts";
import type { NatsLink, NatsState } from "./nats-connection.ts";

export interface EventPublisher {
  publish(subject: string, event: NatEvent): void;
  close(): Promise<void>;
}

export const DEFAULT_EVENTS_BUFFER_BYTES = 64 * 1024 * 1024;
const dec = new TextDecoder();
/** a batch written before one flush */
const BATCH_EVENTS = 1024;
const BATCH_BYTES = 512 * 1024;
/** at most one "events dropped" line per this many ms */
const DROP_LOG_MS = 10_000;

export type NatsPublisherOptions = {
  bufferBytes: number;
  /** how long `close` tries to send what is held before counting it as dropped (`stopped`) */
  stopTimeoutMs?: number;
};

export class NatsEventPublisher implements EventPublisher {
  readonly outbox: EventOutbox;
  private readonly link: NatsLink;
  private readonly log: Logger;
  private readonly stopTimeoutMs: number;
  private seq = 0;
  /** messages of the batch in flight the server refused (permissions) */
  private refused = 0;
  private readonly refusedSubjects = new Set<string>();
  private pumping = false;
  private closing = false;
  private lastDropLog = 0;
  private droppedLogged = 0;
  /** the cluster's events' subject and payload, once `address` named it */
  private addressed: ((seq: number, event: NatEvent) => OutboxEvent) | undefined;

  constructor(link: NatsLink, opts: NatsPublisherOptions, log: Logger) {
    this.link = link;
    this.log = log;
    this.outbox = new EventOutbox(opts.bufferBytes);
    this.stopTimeoutMs = opts.stopTimeoutMs ?? 2000;
    link.onState((s: NatsState) => {
      if (s === "connected") this.kick();
    });
    link.onPublishRefused((subject) => {
      this.refused++;
      if (this.refusedSubjects.size < 100 && !this.refusedSubjects.has(subject)) {
        this.refusedSubjects.add(subject);
        this.log.warn(
          { subject },
          "nats refused nat events on this subject (no right to publish there): dropped, counted as publish_error",
        );
      }
    });
  }

  /** the NATS connection's state */
  get state(): NatsState {
    return this.link.state;
  }

  counts(): OutboxCounts {
    return this.outbox.counts();
  }

  publish(subject: string, event: NatEvent): void {
    const seq = ++this.seq;
    if (this.closing) {
      this.outbox.reject("stopped");
      return;
    }
    const e: OutboxEvent =
      event.cluster !== ""
        ? { seq, subject, data: encodeNatEvent({ ...event, seq }) }
        : this.addressed
          ? this.addressed(seq, event)
          : { seq, subject, data: encodeNatEvent({ ...event, seq }), unaddressed: true };
    if (!this.outbox.offer(e)) {
      this.noteDrops();
      return;
    }
    this.kick();
  }

  /**
   * The agent's cluster is known (the hub's Welcome): the events held
   * without it get it, in their payload and in `subjectOf`'s subject, and
   * go out in the order they were emitted; later events without a cluster
   * get it too.
   */
  address(cluster: string, subjectOf: (event: NatEvent) => string): void {
    const addressed = (seq: number, event: NatEvent): OutboxEvent => {
      const full = { ...event, cluster, seq };
      return { seq, subject: subjectOf(full), data: encodeNatEvent(full) };
    };
    this.addressed = addressed;
    const n = this.outbox.address((e) => addressed(e.seq, JSON.parse(dec.decode(e.data)) as NatEvent));
    if (n > 0) this.log.info({ cluster, events: n }, "cluster known: nat events held for it are sent");
    this.kick();
  }

  private kick(): void {
    if (this.pumping || !this.link.current || this.outbox.waiting === 0) return;
    this.pumping = true;
    setImmediate(() => void this.pump());
  }

  /** Writes batches while connected, one flush per batch; the only place events reach nats.js. */
  private async pump(): Promise<void> {
    try {
      for (;;) {
        const nc = this.link.current;
        if (!nc) return;
        const batch = this.outbox.take(BATCH_EVENTS, BATCH_BYTES);
        if (batch.length === 0) return;
        this.refused = 0;
        for (const e of batch) {
          try {
            nc.publish(e.subject, e.data);
          } catch (err) {
            if (nc.isClosed() || nc.isDraining()) {
              this.outbox.unconfirmed();
              return;
            }
            // refused by the client for this event alone (too large, a bad subject): never publishable
            this.outbox.refuse(e, "publish_error");
            this.log.warn(
              { subject: e.subject, err: (err as Error).message },
              "nat event not publishable; dropped",
            );
          }
        }
        try {
          await nc.flush();
          // a refusal (-ERR) came before the flush's answer; its status reaches us a turn later
          await new Promise((r) => setImmediate(r));
          this.outbox.confirm(this.refused);
        } catch {
          // the connection went before the server answered: the server may or may not have the batch
          this.outbox.unconfirmed();
          return;
        }
      }
    } finally {
      this.pumping = false;
      if (!this.closing) this.kick();
    }
  }

  private noteDrops(): void {
    const now = Date.now();
    if (now - this.lastDropLog < DROP_LOG_MS) return;
    const c = this.outbox.counts();
    const total = Object.values(c.dropped).reduce((a, b) => a + b, 0);
    if (total === this.droppedLogged) return;
    this.lastDropLog = now;
    this.droppedLogged = total;
    this.log.warn(
      {
        ...c.dropped,
        held: c.held,
        heldBytes: c.heldBytes,
        budget: this.outbox.budgetBytes,
        nats: this.state,
      },
      "nat events dropped: the events buffer is full (counted per reason; raise --events-buffer-bytes)",
    );
  }

  /** Sends what is held (for up to stopTimeoutMs while connected), counts the rest as dropped, disconnects. */
  async close(): Promise<void> {
    this.closing = true;
    const deadline = Date.now() + this.stopTimeoutMs;
    while (this.outbox.counts().held > 0 && this.link.current && Date.now() < deadline) {
      if (!this.pumping) {
        this.pumping = true;
        await this.pump();
      } else await new Promise((r) => setTimeout(r, 10));
    }
    const lost = this.outbox.dropAll("stopped" satisfies DropReason);
    if (lost > 0)
      this.log.warn({ events: lost }, "nat events not sent before stopping; counted as dropped (stopped)");
    await this.link.close();
  }
}
