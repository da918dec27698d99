/**
 * `serve --config FILE`: the file is watched (and read again on SIGHUP);
 * clusters, views, staleGrace, apiTimeout and externalTrafficStrict change
 * live; a bad edit is reported and the previous config stays.
 */
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "@switchyard/lib/log";
import type { EventsSettings } from "../events/events-config.ts";
import type { ClusterHealthTracker } from "../sources/health.ts";
import type { ClusterManager } from "../sources/manager.ts";
import type { AssignmentServer } from "../xds/grpc-server.ts";
import type { SnapshotCache } from "../xds/snapshots.ts";
import { readConfigQuiet, resolveSettings, type ServeSettings } from "./settings.ts";

export type ConfigReloadDeps = {
  /** serve's flags: they still win over the file */
  values: Record<string, string | boolean | string[] | undefined>;
  configFile: string | undefined;
  /** the settings in force, and where a reload puts the next ones */
  current: () => ServeSettings;
  setCurrent: (next: ServeSettings) => void;
  log: Logger;
  tracker: ClusterHealthTracker;
  clusters: ClusterManager;
  snapshots: SnapshotCache;
  assignments: AssignmentServer;
  /** NAT events' history limits follow the file */
  events?: { apply(next: EventsSettings): void };
};

/** Reloads on a change of the config file and on SIGHUP; `close` stops watching the file. */
export function watchConfig(d: ConfigReloadDeps): { close(): void } {
  const { values, configFile, log, tracker, clusters, snapshots, assignments } = d;
  let reloading = Promise.resolve();
  const reload = () => {
    reloading = reloading.then(async () => {
      const next = resolveSettings(values, readConfigQuiet(configFile), configFile);
      if (!next.ok) {
        log.error({ file: configFile, reason: next.error }, "config not applied; the previous one stays");
        return;
      }
      const prev = d.current();
      if (next.value.listen !== prev.listen || next.value.stateDir !== prev.stateDir)
        log.warn({ file: configFile }, "listen and stateDir changes take effect at the next restart");
      if (JSON.stringify(next.value.limits) !== JSON.stringify(prev.limits))
        log.warn({ file: configFile }, "limits changes take effect at the next restart");
      if (next.value.metricsListen !== prev.metricsListen)
        log.warn({ file: configFile }, "metricsListen changes take effect at the next restart");
      if (JSON.stringify(next.value.stateNats) !== JSON.stringify(prev.stateNats))
        log.warn({ file: configFile }, "state changes take effect at the next restart");
      const current = {
        ...next.value,
        listen: prev.listen,
        stateDir: prev.stateDir,
        stateNats: prev.stateNats,
      };
      d.setCurrent(current);
      tracker.graceMs = next.value.staleGraceMs;
      clusters.apiTimeoutMs = next.value.apiTimeoutMs;
      if (next.value.externalTrafficStrict !== prev.externalTrafficStrict)
        log.info(
          { externalTrafficStrict: next.value.externalTrafficStrict },
          "traffic policy setting changed",
        );
      snapshots.setTranslateOptions({ externalTrafficStrict: next.value.externalTrafficStrict });
      if (next.value.entryInterface !== prev.entryInterface)
        log.info(
          { entryInterface: next.value.entryInterface || "(none)" },
          "entry interface changed; each agent is told when it next connects",
        );
      d.events?.apply(next.value.events);
      try {
        const r = await clusters.apply(next.value.clusters);
        if (r.added.length || r.removed.length) log.info(r, "clusters changed");
      } catch (e) {
        log.error({ reason: (e as Error).message }, "some clusters could not start");
      }
      for (const c of new Set([...prev.imports.keys(), ...current.imports.keys()])) {
        if ((prev.imports.get(c) ?? []).join() === (current.imports.get(c) ?? []).join()) continue;
        const n = assignments.cutOffCluster(
          c,
          "the cluster's view changed; reconnect to receive the new one",
        );
        log.info({ cluster: c, imports: current.imports.get(c) ?? [], agents: n }, "view changed");
      }
    });
  };
  let watcher: fs.FSWatcher | undefined;
  if (configFile) {
    let timer: NodeJS.Timeout | undefined;
    // watch the directory: editors replace the file rather than write it in place
    watcher = fs.watch(path.dirname(path.resolve(configFile)), (_ev, f) => {
      if (f !== null && f !== path.basename(configFile)) return;
      clearTimeout(timer);
      timer = setTimeout(reload, 100);
    });
  }
  process.on("SIGHUP", reload);
  return { close: () => watcher?.close() };
}
