/**
 * Pure: the agent's own buffer of NAT events between the ring buffer and
 * NATS, within a byte budget, with exact accounting.
 *
 * Every event offered is, at any moment, in exactly one of: published
 * (the server confirmed it: a flush answered after it was written), held
 * (waiting, or written and not confirmed yet), or dropped for a reason. So
 * `offered = published + held + Σ dropped`, always (`checkOutboxBalance`).
 *
 * Events are sent in the order they were offered. A batch written but not
 * confirmed (the connection went away before the server's answer) goes back
 * to the front of the queue and is sent again: the server may have had it,
 * so a subscriber can see an event twice (same `seq`), never lose one that
 * was counted as published. When the budget is full, the new event is
 * dropped (counted as `buffer_full`): what is held is the oldest part of an
 * outage, sent in order on reconnect.
 *
 * An event can be offered before its address is known (`unaddressed`: the
 * agent's cluster is named by the hub's first Welcome, and a first start
 * with the hub down has none). It is held like any other, and nothing from
 * it on is taken, so the order stays, until `address` rewrites every such
 * event with its real subject; what no longer fits the budget then is
 * dropped from the newest as `buffer_full`.
 */

/** why an event was not published */
export const DROP_REASONS = ["buffer_full", "publish_error", "stopped"] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** what one held event costs in the budget besides its subject and payload (the queue's own record) */
export const EVENT_OVERHEAD_BYTES = 64;

export type OutboxEvent = {
  seq: number;
  subject: string;
  data: Uint8Array;
  /** its subject is not known yet: held, and not sent, until `address` */
  unaddressed?: true;
};

export type OutboxCounts = {
  offered: number;
  published: number;
  /** held now: waiting plus written-not-confirmed */
  held: number;
  heldBytes: number;
  /** written, waiting for the server's confirmation */
  inFlight: number;
  /** of `held`, the events waiting for their address (the cluster) */
  unaddressed: number;
  dropped: Record<DropReason, number>;
};

export function eventCost(e: OutboxEvent): number {
  return e.subject.length + e.data.length + EVENT_OVERHEAD_BYTES;
}

export class EventOutbox {
  readonly budgetBytes: number;
  private queue: OutboxEvent[] = [];
  /** index of the first waiting event in `queue` (the ones before it were taken) */
  private head = 0;
  private flight: OutboxEvent[] = [];
  private bytes = 0;
  private unaddressed = 0;
  private offered = 0;
  private published = 0;
  private readonly dropped: Record<DropReason, number> = { buffer_full: 0, publish_error: 0, stopped: 0 };

  constructor(budgetBytes: number) {
    this.budgetBytes = budgetBytes;
  }

  /** Queues an event; false (and counted as `buffer_full`) when it does not fit in the budget. */
  offer(e: OutboxEvent): boolean {
    this.offered++;
    const cost = eventCost(e);
    if (this.bytes + cost > this.budgetBytes) {
      this.dropped.buffer_full++;
      return false;
    }
    this.bytes += cost;
    this.queue.push(e);
    if (e.unaddressed) this.unaddressed++;
    return true;
  }

  /** An event that is not even offered (the agent is stopping): counted as offered and dropped. */
  reject(reason: DropReason): void {
    this.offered++;
    this.dropped[reason]++;
  }

  get waiting(): number {
    return this.queue.length - this.head;
  }

  get inFlight(): number {
    return this.flight.length;
  }

  /**
   * Takes the next batch to write (at most `maxEvents` and about `maxBytes`;
   * at least one event when any waits). They stay held until `confirm` or
   * `unconfirmed`. Only one batch is in flight at a time: empty while one is.
   * It stops before the first unaddressed event.
   */
  take(maxEvents: number, maxBytes: number): readonly OutboxEvent[] {
    if (this.flight.length > 0) return [];
    let bytes = 0;
    const out: OutboxEvent[] = [];
    while (this.head < this.queue.length && out.length < maxEvents) {
      const e = this.queue[this.head]!;
      if (e.unaddressed) break;
      if (out.length > 0 && bytes + eventCost(e) > maxBytes) break;
      bytes += eventCost(e);
      out.push(e);
      this.head++;
    }
    this.compact();
    this.flight = out;
    return out;
  }

  /**
   * The server answered after the batch in flight: published, and its budget
   * freed — but for `refused` of them it said it would not take (no right to
   * the subject): those are dropped as `publish_error`.
   */
  confirm(refused = 0): void {
    for (const e of this.flight) this.bytes -= eventCost(e);
    const lost = Math.min(refused, this.flight.length);
    this.published += this.flight.length - lost;
    this.dropped.publish_error += lost;
    this.flight = [];
  }

  /**
   * The address is known now: each waiting unaddressed event is replaced by
   * `rewrite(e)` (same seq, its real subject and data), in place. When the
   * rewritten events cost more than the budget holds, the newest waiting
   * events are dropped as `buffer_full` until it fits. Returns how many were
   * addressed.
   */
  address(rewrite: (e: OutboxEvent) => OutboxEvent): number {
    if (this.unaddressed === 0) return 0;
    let n = 0;
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i]!;
      if (!e.unaddressed) continue;
      const w = rewrite(e);
      const r: OutboxEvent = { seq: w.seq, subject: w.subject, data: w.data };
      this.bytes += eventCost(r) - eventCost(e);
      this.queue[i] = r;
      n++;
    }
    this.unaddressed = 0;
    while (this.bytes > this.budgetBytes && this.waiting > 0) {
      this.bytes -= eventCost(this.queue.pop()!);
      this.dropped.buffer_full++;
    }
    return n;
  }

  /** The batch in flight was not confirmed (connection lost): back to the front, in order, sent again later. */
  unconfirmed(): void {
    if (this.flight.length === 0) return;
    this.queue = [...this.flight, ...this.queue.slice(this.head)];
    this.head = 0;
    this.flight = [];
  }

  /** One event of the batch in flight cannot be published at all (refused by the client): dropped. */
  refuse(e: OutboxEvent, reason: DropReason): void {
    const i = this.flight.indexOf(e);
    if (i < 0) return;
    this.flight.splice(i, 1);
    this.bytes -= eventCost(e);
    this.dropped[reason]++;
  }

  /** Drops everything held (the agent stops and could not send it): counted as `reason`. */
  dropAll(reason: DropReason): number {
    this.unconfirmed();
    const n = this.waiting;
    this.dropped[reason] += n;
    this.queue = [];
    this.head = 0;
    this.bytes = 0;
    this.unaddressed = 0;
    return n;
  }

  counts(): OutboxCounts {
    return {
      offered: this.offered,
      published: this.published,
      held: this.waiting + this.flight.length,
      heldBytes: this.bytes,
      inFlight: this.flight.length,
      unaddressed: this.unaddressed,
      dropped: { ...this.dropped },
    };
  }

  private compact(): void {
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}

/** Pure: whether the counts add up (`offered = published + held + Σ dropped`). */
export function checkOutboxBalance(c: OutboxCounts): boolean {
  const dropped = Object.values(c.dropped).reduce((a, b) => a + b, 0);
  return c.offered === c.published + c.held + dropped;
}
