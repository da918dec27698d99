/**
 * The agent's event pipeline from the ring buffer on: the NATS connection
 * (in the background), the buffered publisher, the accounting against the
 * kernel's counters (taken as they were at start), and the status file
 * `dump` reads.
 */
import type { Logger } from "@switchyard/lib/log";
import { writeEventsStatus } from "../state/events-status.ts";
import { computeEventCounts, type EventCounts, type KernelEventCounters } from "./event-counts.ts";
import type { NatsAuth } from "./nats-auth.ts";
import { NatsLink } from "./nats-connection.ts";
import { NatsEventPublisher } from "./publisher.ts";

/** how often the status file is rewritten while the counts change */
const STATUS_EVERY_MS = 2000;

export type EventPipeline = {
  publisher: NatsEventPublisher;
  counts(): EventCounts;
  close(): Promise<void>;
};

export function startEvents(opts: {
  servers: string[];
  /** credentials and TLS (events/nats-auth.ts) */
  auth?: NatsAuth;
  bufferBytes: number;
  stateDir: string;
  kernelCounters: () => KernelEventCounters;
  log: Logger;
}): EventPipeline {
  const link = new NatsLink({ servers: opts.servers, ...(opts.auth ? { auth: opts.auth } : {}) }, opts.log);
  const publisher = new NatsEventPublisher(link, { bufferBytes: opts.bufferBytes }, opts.log);
  const atStart = opts.kernelCounters();
  let stopped = false;
  const counts = () =>
    computeEventCounts(
      publisher.counts(),
      opts.bufferBytes,
      stopped ? "closed" : link.state,
      opts.kernelCounters(),
      atStart,
    );
  let last = "";
  const saveStatus = () => {
    const c = counts();
    const key = JSON.stringify(c);
    if (key === last) return;
    last = key;
    try {
      writeEventsStatus(opts.stateDir, { ...c, updatedAt: new Date().toISOString() });
    } catch (e) {
      opts.log.warn(
        { reason: (e as Error).message },
        "cannot write the events status in the state directory",
      );
    }
  };
  saveStatus();
  const timer = setInterval(saveStatus, STATUS_EVERY_MS);
  timer.unref();
  link.onState(saveStatus);
  link.start();
  return {
    publisher,
    counts,
    close: async () => {
      clearInterval(timer);
      await publisher.close();
      // the last figures of this run: what dump shows until the next start
      stopped = true;
      saveStatus();
    },
  };
}
