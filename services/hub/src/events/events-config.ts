/**
 * The hub's `events:` settings (pure): where the NAT events' NATS is, how
 * the hub reaches it, and how much history JetStream keeps.
 *
 *     events:
 *       nats: [tls://nats.example:4222]   # or --events-nats URL
 *       tlsCa: /etc/switchyard/nats-ca.crt  # or --nats-tls-ca FILE
 *       tlsServerName: nats.example         # when the certificate names another host
 *       historyMaxAge: 1h                   # 0 keeps no history (no stream)
 *       historyMaxBytes: 1GiB
 */
import { parseDuration } from "@switchyard/lib/duration";
import { err, ok, type Result } from "@switchyard/lib/errors";
import { parseNatsUrls } from "@switchyard/lib/nats-tls";
import { parseBytes } from "../transport/limits.ts";

export type EventsSettings = {
  nats: string[];
  tlsCa: string | undefined;
  tlsServerName: string | undefined;
  /** 0: no history stream */
  historyMaxAgeMs: number;
  historyMaxBytes: number;
};

export const DEFAULT_EVENTS: EventsSettings = {
  nats: [],
  tlsCa: undefined,
  tlsServerName: undefined,
  historyMaxAgeMs: 3_600_000,
  historyMaxBytes: 1 << 30,
};

const KNOWN = ["nats", "tlsCa", "tlsServerName", "historyMaxAge", "historyMaxBytes"];

/** The config file's `events:` mapping (absent: the defaults). */
export function parseEventsConfig(raw: unknown, file: string): Result<Partial<EventsSettings>> {
  if (raw === undefined) return ok({});
  const at = `${file}: events`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    return err(`${at} must be a mapping of ${KNOWN.join(", ")}`);
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r))
    if (!KNOWN.includes(k)) return err(`${at}: unknown field "${k}" (known: ${KNOWN.join(", ")})`);
  const out: Partial<EventsSettings> = {};
  if (r["nats"] !== undefined) {
    const n = parseNatsUrls(r["nats"], `${at}.nats`);
    if (!n.ok) return n;
    out.nats = n.value;
  }
  for (const k of ["tlsCa", "tlsServerName"] as const) {
    const v = r[k];
    if (v === undefined) continue;
    if (typeof v !== "string" || v === "") return err(`${at}.${k} must be a non-empty string`);
    out[k] = v;
  }
  if (r["historyMaxAge"] !== undefined) {
    const v = r["historyMaxAge"];
    const d = typeof v === "string" ? parseDuration(v) : typeof v === "number" && v === 0 ? ok(0) : undefined;
    if (!d?.ok)
      return err(
        `${at}.historyMaxAge must be a duration like 1h or 30m (0: keep no history), not ${JSON.stringify(v)}`,
      );
    out.historyMaxAgeMs = d.value;
  }
  if (r["historyMaxBytes"] !== undefined) {
    const v = r["historyMaxBytes"];
    const n = typeof v === "number" ? v : typeof v === "string" ? parseBytes(v) : undefined;
    if (n === undefined || !Number.isInteger(n) || n < 1 << 20)
      return err(
        `${at}.historyMaxBytes must be a size of at least 1MiB, like 512MiB or 1GiB, not ${JSON.stringify(v)}`,
      );
    out.historyMaxBytes = n;
  }
  return ok(out);
}

/** Flags over the file over the defaults. */
export function resolveEventsSettings(
  fromFile: Partial<EventsSettings> | undefined,
  flags: Record<string, unknown>,
): EventsSettings {
  const s: EventsSettings = { ...DEFAULT_EVENTS, ...fromFile };
  const urls = flags["events-nats"] as string[] | undefined;
  if (urls && urls.length > 0) s.nats = urls;
  if (typeof flags["nats-tls-ca"] === "string") s.tlsCa = flags["nats-tls-ca"];
  if (typeof flags["nats-tls-server-name"] === "string") s.tlsServerName = flags["nats-tls-server-name"];
  return s;
}
