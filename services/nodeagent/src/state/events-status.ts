/**
 * The running agent's event accounting, kept in the state directory
 * (`events-status.json`, rewritten every couple of seconds while it changes)
 * so `dump` can show it beside the maps.
 */
import fs from "node:fs";
import path from "node:path";
import { type EventCounts, formatEventCounts } from "../events/event-counts.ts";

const FILE = "events-status.json";

export type EventsStatus = EventCounts & { updatedAt: string };

export function writeEventsStatus(stateDir: string, s: EventsStatus): void {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(s)}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function readEventsStatus(stateDir: string): EventsStatus | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(stateDir, FILE), "utf8")) as EventsStatus;
  } catch {
    return undefined;
  }
}

/** The `dump` line on events ("" when no agent with events on wrote one). */
export function formatEventsStatus(stateDir: string): string {
  const s = readEventsStatus(stateDir);
  return s ? formatEventCounts(s, s.updatedAt) : "";
}
