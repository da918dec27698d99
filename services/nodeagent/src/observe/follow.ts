/**
 * `switchyard events` (pure): which events a user asked for, and how each
 * is shown — one line per event, like `hubble observe`, or one JSON object
 * per line for tools.
 */
import { parseDuration } from "@switchyard/lib/duration";
import { err, ok, type Result } from "@switchyard/lib/errors";
import { computeEventFilter } from "@switchyard/lib/event-subjects";
import { formatHostPort } from "@switchyard/lib/ip";
import type { NatEvent } from "../events/nat-event.ts";

export type ResultFilter = "ok" | "failures" | string;

export type FollowFilter = {
  cluster?: string | undefined;
  node?: string | undefined;
  namespace?: string | undefined;
  service?: string | undefined;
  /** "ok", "failures", or one failure code (noBackend, …) */
  result?: ResultFilter | undefined;
  protocol?: "tcp" | "udp" | undefined;
};

/** The NATS subject that carries the events the filter can match (cluster, node, namespace, service are in it). */
export function computeFollowSubject(f: FollowFilter): string {
  return computeEventFilter(f);
}

/** What the subject cannot say: result and protocol (and the names again, exactly, for subject tokens that were escaped). */
export function matchesFilter(e: NatEvent, f: FollowFilter): boolean {
  if (f.protocol !== undefined && e.protocol !== f.protocol) return false;
  if (f.result === "ok" && !e.isSuccess) return false;
  if (f.result === "failures" && e.isSuccess) return false;
  if (f.result !== undefined && f.result !== "ok" && f.result !== "failures" && e.failureCode !== f.result)
    return false;
  if (f.cluster !== undefined && e.cluster !== f.cluster) return false;
  if (f.node !== undefined && e.node !== f.node) return false;
  const [ns, name] = namespaceAndName(e.service);
  if (f.namespace !== undefined && ns !== f.namespace) return false;
  if (f.service !== undefined && name !== f.service) return false;
  return true;
}

/** "east/demo/web" → ["demo", "web"]; "lrp/east/ns/p" → ["ns", "p"]; "unknown(7)" → ["", "unknown(7)"] */
function namespaceAndName(service: string): [string, string] {
  const p = service.split("/");
  return p.length >= 3 ? [p[p.length - 2]!, p[p.length - 1]!] : ["", service];
}

/** --since: a duration back from now ("10m") or a point in time (RFC 3339). */
export function parseSince(v: string, nowMs: number): Result<Date> {
  const d = parseDuration(v);
  if (d.ok) return ok(new Date(nowMs - d.value));
  if (/^\d{4}-\d{2}-\d{2}T/.test(v)) {
    const t = Date.parse(v);
    if (!Number.isNaN(t)) return ok(new Date(t));
  }
  return err(`--since "${v}" is neither a duration (10m, 1h) nor a time (2026-12-02T08:00:00Z)`);
}

export function checkResult(v: string): string | undefined {
  return /^[A-Za-z]+$/.test(v)
    ? undefined
    : `--result "${v}" must be ok, failures, or a failure code (noBackend, backendMissing, noLocalBackend, …)`;
}

const WIDTHS = [24, 18, 5, 52, 28];

/** Cells padded to the table's columns (the last one is not). */
function row(cells: string[]): string {
  return cells.map((c, i) => (i < WIDTHS.length ? c.padEnd(WIDTHS[i]!) : c)).join(" ");
}

/** The table's header line. */
export const TABLE_HEADER = row([
  "TIME",
  "NODE",
  "PROTO",
  "CLIENT → FRONTEND → BACKEND",
  "SERVICE",
  "RESULT",
]);

/**
 * One line: time, node (cluster/node), protocol, client (pid) → frontend →
 * backend, the Service (or policy), and the result (ok, the fallback
 * taken, or why none).
 */
export function formatEventLine(e: NatEvent): string {
  const frontend = formatHostPort(e.originalDestIp, e.originalDestPort);
  const backend = e.isSuccess ? formatHostPort(e.natIp, e.natPort) : "-";
  const fallback = e.fallback ? ` (fallback: ${e.fallback})` : "";
  const datagrams = e.datagrams !== undefined && e.datagrams > 1 ? ` ×${e.datagrams}` : "";
  return row([
    e.time,
    `${e.cluster}/${e.node}`,
    e.protocol.toUpperCase(),
    `pid ${e.pid} → ${frontend} → ${backend}`,
    e.service,
    `${e.isSuccess ? "ok" : e.failureCode}${fallback}${datagrams}`,
  ]);
}
