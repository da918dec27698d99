/** `serve`'s settings: flags over the config file, checked; read again on each reload. */
import fs from "node:fs";
import os from "node:os";
import { parseDuration } from "@switchyard/lib/duration";
import { err, ok, type Result } from "@switchyard/lib/errors";
import {
  type ClusterConfig,
  checkIoThreads,
  checkRemovedFront,
  type HubFileConfig,
  parseClusterFlag,
  parseHubConfig,
  parseListen,
  parseViewFlag,
  resolveLimits,
} from "../config.ts";
import { type EventsSettings, resolveEventsSettings } from "../events/events-config.ts";
import { resolveStateNats, type StateNats } from "../state/state-nats.ts";
import type { FrontLimits } from "../transport/limits.ts";

/** I/O threads by default: two when the machine has the cores for them (bench:protocol: convergence at 1,000 agents) */
export function defaultIoThreads(): number {
  return os.availableParallelism() >= 2 ? 2 : 0;
}

export type ServeSettings = {
  clusters: ClusterConfig[];
  imports: Map<string, string[]>;
  listen: string;
  stateDir: string;
  /** the shared state's NATS (no servers: the file in stateDir) */
  stateNats: StateNats;
  metricsListen: string | undefined;
  staleGraceMs: number;
  apiTimeoutMs: number;
  debounceMs: number;
  ioThreads: number;
  externalTrafficStrict: boolean;
  /** the interface agents read their node's entry addresses from ("" = none: node annotations only) */
  entryInterface: string;
  limits: FrontLimits;
  events: EventsSettings;
};

/** Flags over the config file: flag clusters and views add to the file's; other flags win. */
export function resolveSettings(
  values: Record<string, string | boolean | string[] | undefined>,
  fileText: string | undefined,
  file: string | undefined,
): Result<ServeSettings> {
  let fromFile: HubFileConfig | undefined;
  if (fileText !== undefined) {
    const r = parseHubConfig(fileText, file);
    if (!r.ok) return r;
    fromFile = r.value;
  }
  const clusters: ClusterConfig[] = [...(fromFile?.clusters ?? [])];
  for (const c of values["cluster"] as string[]) {
    const r = parseClusterFlag(c);
    if (!r.ok) return r;
    if (clusters.some((x) => x.name === r.value.name))
      return err(`cluster ${r.value.name} given twice (--cluster and/or the config file)`);
    clusters.push(r.value);
  }
  if (clusters.length === 0)
    return err("give at least one --cluster NAME=SOURCE or a --config file with clusters");
  const imports = new Map(fromFile?.imports ?? []);
  for (const v of values["view"] as string[]) {
    const r = parseViewFlag(
      v,
      clusters.map((c) => c.name),
    );
    if (!r.ok) return r;
    if (imports.has(r.value.home)) return err(`the view of ${r.value.home} is given twice`);
    imports.set(r.value.home, r.value.imports);
  }
  const pick = (flag: string, fromCfg: string | undefined, def: string) =>
    (values[flag] as string | undefined) ?? fromCfg ?? def;
  const listen = pick("listen", fromFile?.listen, "127.0.0.1:7443");
  const l = parseListen(listen);
  if (!l.ok) return l;
  const metricsListen = (values["metrics-listen"] as string | undefined) ?? fromFile?.metricsListen;
  if (metricsListen !== undefined) {
    const m = parseListen(metricsListen);
    if (!m.ok) return err(`--metrics-listen: ${m.error}`);
  }
  let staleGraceMs = fromFile?.staleGraceMs ?? 60_000;
  if (values["stale-grace"] !== undefined) {
    const d = parseDuration(values["stale-grace"] as string);
    if (!d.ok) return err(`--stale-grace: ${d.error}`);
    staleGraceMs = d.value;
  }
  let apiTimeoutMs = fromFile?.apiTimeoutMs ?? 10_000;
  if (values["api-timeout"] !== undefined) {
    const d = parseDuration(values["api-timeout"] as string);
    if (!d.ok || d.value < 100) return err("--api-timeout: give a duration of at least 100ms");
    apiTimeoutMs = d.value;
  }
  let debounceMs = fromFile?.debounceMs ?? 20;
  if (values["debounce-ms"] !== undefined) {
    debounceMs = Number(values["debounce-ms"]);
    if (!Number.isFinite(debounceMs) || debounceMs < 0)
      return err(`--debounce-ms "${String(values["debounce-ms"])}" is not a number of milliseconds`);
  }
  let ioThreads = fromFile?.ioThreads ?? defaultIoThreads();
  if (values["io-threads"] !== undefined) {
    ioThreads = Number(values["io-threads"]);
    const e = checkIoThreads(/^\d+$/.test(values["io-threads"] as string) ? ioThreads : values["io-threads"]);
    if (e) return err(`--io-threads ${e}`);
  }
  if (values["front"] !== undefined) {
    const e = checkRemovedFront(values["front"], "--front", "--front");
    if (e) return err(e);
  }
  const limits = resolveLimits(fromFile?.limits ?? {}, values);
  if (!limits.ok) return limits;
  const stateNats = resolveStateNats(fromFile?.state, values);
  if (!stateNats.ok) return stateNats;
  return ok({
    stateNats: stateNats.value,
    events: resolveEventsSettings(fromFile?.events, values),
    limits: limits.value,
    ioThreads,
    clusters,
    imports,
    listen,
    stateDir: pick("state-dir", fromFile?.stateDir, "/var/lib/switchyard-hub"),
    metricsListen,
    staleGraceMs,
    apiTimeoutMs,
    debounceMs,
    externalTrafficStrict: fromFile?.externalTrafficStrict ?? false,
    entryInterface: fromFile?.entryInterface ?? "",
  });
}

export function readConfigQuiet(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    // a file being replaced: its next event brings it back
    return "";
  }
}
