/**
 * The node's entry addresses from the interface the hub names
 * (Welcome.entry_interface, the hub's entryInterface setting): read here,
 * reported to the hub in a NodeReport after each Welcome and again when they
 * change (checked every few seconds; an interface that comes, goes or is
 * readdressed is told within that time).
 */
import os from "node:os";
import type { Logger } from "@switchyard/lib/log";
import type { NodeReport } from "@switchyard/proto/assignment";

type Interfaces = NodeJS.Dict<os.NetworkInterfaceInfo[]>;

/** Pure: the IPv4 and IPv6 addresses of one interface (link-local IPv6 left out: not reachable from another link). */
export function computeEntryReport(ifaces: Interfaces, name: string): NodeReport {
  const list = ifaces[name];
  if (!list)
    return {
      entryAddresses: [],
      entryProblem: `interface ${name} not found on this node (or it has no address)`,
    };
  const addresses = list
    .filter((a) => !(a.family === "IPv6" && /^fe[89ab]/i.test(a.address)))
    .map((a) => a.address)
    .sort();
  return {
    entryAddresses: [...new Set(addresses)],
    entryProblem: addresses.length ? "" : `interface ${name} has no IPv4 or global IPv6 address`,
  };
}

export class EntryReporter {
  private iface = "";
  private lastSent: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly send: (r: NodeReport) => boolean;
  private readonly log: Logger;
  private readonly read: () => Interfaces;

  constructor(send: (r: NodeReport) => boolean, log: Logger, read: () => Interfaces = os.networkInterfaces) {
    this.send = send;
    this.log = log;
    this.read = read;
  }

  /** A new stream's Welcome: report at once (the hub may be another replica, or restarted). */
  onWelcome(entryInterface: string): void {
    this.iface = entryInterface;
    this.lastSent = undefined;
    this.check();
  }

  /** Reports when what the interface holds changed since the last report on this stream. */
  check(): void {
    if (!this.iface) return;
    const report = computeEntryReport(this.read(), this.iface);
    const key = `${report.entryAddresses.join(",")}|${report.entryProblem}`;
    if (key === this.lastSent) return;
    if (!this.send(report)) return;
    this.lastSent = key;
    if (report.entryProblem)
      this.log.warn(
        { interface: this.iface, reason: report.entryProblem },
        "entry interface has no address to report",
      );
    else
      this.log.info({ interface: this.iface, addresses: report.entryAddresses }, "entry addresses reported");
  }

  start(everyMs = 5000): void {
    this.timer = setInterval(() => this.check(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
