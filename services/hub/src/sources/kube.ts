/**
 * A real cluster, watched through @kubernetes/client-node informers
 * (list + watch, relist on 410 Gone, restart with backoff after errors;
 * objects missing from a relist are deleted, like DeletedFinalStateUnknown
 * tombstones in client-go). List and watch Services, EndpointSlices,
 * Nodes, Pods, and — when their CRDs are installed — the MCS API's
 * ServiceExports and ServiceImports and our LocalRedirectPolicies and
 * BalancingPolicies. The only write is a policy's status (KubePolicyStatusClient, a merge patch of the
 * status subresource).
 *
 * Pods are the numerous kind: their informer's cache holds only the fields
 * the hub reads (compactPod), both from the listing and from watch events.
 *
 * Health: any required kind failing marks the cluster unreachable (the last
 * known objects stay); every kind watching again marks it reachable. A
 * partition that drops packets fails nothing (watches just go quiet), so the
 * API server is also probed (GET /version) every `apiTimeoutMs`: no answer
 * within that time marks the cluster unreachable too. The probe runs from
 * the start, so an API server that never answers the first listing is
 * noticed as well.
 *
 * Each kind's first complete listing is reported to the writer (restored
 * objects it did not list are removed then; every kind listed = synced).
 */
import * as k8s from "@kubernetes/client-node";
import { SwitchyardError } from "@switchyard/lib/errors";
import type { Logger } from "@switchyard/lib/log";
import type { KubeKind, PolicyKind } from "../model/types.ts";
import type { PolicyStatus, PolicyStatusClient } from "../status/policy-status.ts";
import { resourcePath, watchedResource } from "./kube-api.ts";
import { compactPod } from "./kube-objects.ts";
import { POLICY_API } from "./policy-objects.ts";
import type { ClusterSource, WorldWriter } from "./source.ts";

type AnyObj = k8s.KubernetesObject;

export type KubeSourceOptions = {
  kubeconfig?: string;
  inCluster?: boolean;
  maxBackoffMs?: number;
  /** how often the API server is probed, and how long an answer may take (default 10 s) */
  apiTimeoutMs?: number;
};

type Spec = {
  kind: KubeKind;
  path: string;
  list: () => Promise<k8s.KubernetesListObject<AnyObj>>;
  /** a CRD that may not be installed: its failures are not an outage */
  optional: boolean;
  /**
   * answers that mean "none of this kind here" rather than a failure: 404 (the CRD is not
   * installed), 403 (the hub's RBAC does not grant it: said, and none is seen until it is)
   */
  absentOn: readonly number[];
  /** what the informer's cache keeps of each object (default: all of it) */
  compact?: (o: unknown) => Record<string, unknown>;
};

const MCS = { group: "multicluster.x-k8s.io", version: "v1alpha1" };

/** Paths come from WATCHED_RESOURCES (kube-api.ts), which the hub's RBAC is tested against. */
const pathOf = (kind: KubeKind) => resourcePath(watchedResource(kind));

/**
 * A failed request in words: the API server's address and the cause
 * (client-node's fetch says only "fetch failed"; the socket's error is its
 * cause).
 */
export function describeKubeError(e: unknown, server: string): string {
  const err = e as { message?: unknown; cause?: { code?: unknown; message?: unknown }; statusCode?: unknown };
  const cause = err?.cause;
  const code = typeof cause?.code === "string" ? cause.code : undefined;
  const causeMsg = typeof cause?.message === "string" ? cause.message : undefined;
  const status = statusOf(e);
  const what =
    causeMsg && (code === undefined || causeMsg.includes(code))
      ? causeMsg
      : code
        ? `${code}${causeMsg ? ` (${causeMsg})` : ""}`
        : status !== undefined
          ? `HTTP ${status}${typeof err?.message === "string" ? `: ${err.message.split("\n")[0]}` : ""}`
          : String(err?.message ?? e);
  return `API server ${server}: ${what}`;
}

function statusOf(e: unknown): number | undefined {
  const o = e as { statusCode?: unknown; code?: unknown };
  const c = o?.statusCode ?? o?.code;
  return typeof c === "number" ? c : undefined;
}

export class KubeSource implements ClusterSource {
  readonly cluster: string;
  private readonly writer: WorldWriter;
  private readonly log: Logger;
  private readonly kc: k8s.KubeConfig;
  private readonly informers: Array<k8s.Informer<AnyObj>> = [];
  private stopped = false;
  private readonly maxBackoffMs: number;
  private readonly timers = new Set<NodeJS.Timeout>();
  /** required kinds whose watch is failing (and "probe"), with the last reason */
  private readonly down = new Map<string, string>();
  private readonly apiTimeoutMs: number;
  private probeTimer: NodeJS.Timeout | undefined;
  /** the API server's address, for errors */
  private readonly server: string;
  /** the failure last said in the log (said again only when it changes) */
  private lastSaid: string | undefined;

  constructor(writer: WorldWriter, log: Logger, opts: KubeSourceOptions) {
    this.writer = writer;
    this.cluster = writer.cluster;
    this.log = log;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.apiTimeoutMs = opts.apiTimeoutMs ?? 10_000;
    this.kc = new k8s.KubeConfig();
    const from = opts.inCluster
      ? "the in-cluster service account"
      : `kubeconfig ${opts.kubeconfig ?? "(default)"}`;
    try {
      if (opts.inCluster) this.kc.loadFromCluster();
      else if (opts.kubeconfig) this.kc.loadFromFile(opts.kubeconfig);
      else this.kc.loadFromDefault();
    } catch (e) {
      throw new SwitchyardError("invalid_argument", `${from} cannot be read: ${(e as Error).message}`);
    }
    const server = this.kc.getCurrentCluster()?.server;
    if (!server)
      throw new SwitchyardError(
        "invalid_argument",
        `${from} names no API server (no current context with a cluster server)`,
      );
    this.server = server;
  }

  /**
   * Starts every informer; resolves true once all listed, or false as soon as
   * one failed (it keeps retrying in the background, and the hub serves
   * the other clusters meanwhile).
   */
  async start(): Promise<boolean> {
    const core = this.kc.makeApiClient(k8s.CoreV1Api);
    const discovery = this.kc.makeApiClient(k8s.DiscoveryV1Api);
    const custom = this.kc.makeApiClient(k8s.CustomObjectsApi);
    const crd = (api: { group: string; version: string }, plural: string) => () =>
      custom.listClusterCustomObject({ ...api, plural }) as Promise<k8s.KubernetesListObject<AnyObj>>;
    const mcs = (plural: string) => crd(MCS, plural);
    const specs: Spec[] = [
      {
        kind: "Service",
        path: pathOf("Service"),
        list: () => core.listServiceForAllNamespaces(),
        optional: false,
        absentOn: [],
      },
      {
        kind: "EndpointSlice",
        path: pathOf("EndpointSlice"),
        list: () => discovery.listEndpointSliceForAllNamespaces(),
        optional: false,
        absentOn: [],
      },
      { kind: "Node", path: pathOf("Node"), list: () => core.listNode(), optional: false, absentOn: [] },
      {
        kind: "ServiceExport",
        path: pathOf("ServiceExport"),
        list: mcs("serviceexports"),
        optional: true,
        absentOn: [404],
      },
      {
        kind: "ServiceImport",
        path: pathOf("ServiceImport"),
        list: mcs("serviceimports"),
        optional: true,
        absentOn: [404],
      },
      {
        kind: "Pod",
        path: pathOf("Pod"),
        // in pages, each compacted before the next is asked for: a 100k-Pod listing never sits whole in memory
        list: () =>
          listInPages(
            (_continue) => core.listPodForAllNamespaces({ limit: 500, ...(_continue ? { _continue } : {}) }),
            compactPod,
          ),
        optional: false,
        // a hub deployed with the RBAC of before policies: its Services keep working, policies get no pods
        absentOn: [403],
        compact: compactPod,
      },
      {
        kind: "LocalRedirectPolicy",
        path: pathOf("LocalRedirectPolicy"),
        list: crd(POLICY_API, watchedResource("LocalRedirectPolicy").resource),
        optional: true,
        absentOn: [404, 403],
      },
      {
        kind: "BalancingPolicy",
        path: pathOf("BalancingPolicy"),
        list: crd(POLICY_API, watchedResource("BalancingPolicy").resource),
        optional: true,
        absentOn: [404, 403],
      },
    ];
    this.scheduleProbe(this.kc.makeApiClient(k8s.VersionApi));
    const results = await Promise.all(specs.map((s) => this.watchKind(s)));
    return results.every(Boolean);
  }

  /** GET /version every apiTimeoutMs; no answer in time = unreachable, an answer = reachable again. */
  private scheduleProbe(version: k8s.VersionApi): void {
    if (this.stopped) return;
    this.probeTimer = setTimeout(async () => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the API server did not answer within ${this.apiTimeoutMs} ms`)),
          this.apiTimeoutMs,
        );
      });
      try {
        await Promise.race([version.getCode(), timeout]);
        if (this.down.has("probe")) this.log.info({}, "API server answers again");
        this.setDown("probe", undefined);
      } catch (e) {
        if (!this.stopped) this.setDown("probe", describeKubeError(e, this.server));
      } finally {
        clearTimeout(timer);
      }
      this.scheduleProbe(version);
    }, this.apiTimeoutMs);
    this.probeTimer.unref();
  }

  private setDown(what: string, reason: string | undefined): void {
    // a late answer after stop() must not bring a removed cluster back
    if (this.stopped) return;
    const wasDown = this.down.size > 0;
    if (reason === undefined) this.down.delete(what);
    else this.down.set(what, reason);
    const isDown = this.down.size > 0;
    if (isDown && !wasDown) this.writer.health(false, reason);
    else if (!isDown && wasDown) {
      this.lastSaid = undefined;
      this.writer.health(true);
    }
  }

  /** A watch failure: said once per cause (each retry at debug), not once per kind and retry. */
  private sayFailure(kind: KubeKind, reason: string, retryMs: number): void {
    if (reason === this.lastSaid) {
      this.log.debug({ kind, reason, retryMs }, "watch failed; restarting");
      return;
    }
    this.lastSaid = reason;
    this.log.warn(
      { server: this.server, reason, kind },
      "cannot watch the cluster's API server; retrying with exponential backoff (said again when the cause changes)",
    );
  }

  private async watchKind(spec: Spec): Promise<boolean> {
    const { kind, optional } = spec;
    const informer = spec.compact
      ? compactInformer(this.kc, spec.path, spec.list, spec.compact)
      : k8s.makeInformer(this.kc, spec.path, spec.list);
    this.informers.push(informer);
    const put = (o: AnyObj) => this.writer.upsert({ ...toPlain(o), kind }, `${kind} watch`);
    informer.on("add", put);
    informer.on("update", put);
    informer.on("delete", (o: AnyObj) => {
      this.writer.remove(
        kind,
        kind === "Node" ? "" : (o.metadata?.namespace ?? "default"),
        o.metadata?.name ?? "",
      );
    });
    let backoff = 500;
    let errors = 0;
    /** why none of this kind is seen (404, 403), until a listing succeeds */
    let absent: number | undefined;
    // the backoff starts again only once a listing succeeded (the informer says "connect" before it lists)
    informer.on("error", (e: unknown) => {
      errors++;
      if (this.stopped) return;
      let retryMs = backoff;
      const code = statusOf(e);
      if (code !== undefined && spec.absentOn.includes(code)) {
        // not installed or not permitted: not an outage; look again now and then
        if (absent !== code) {
          if (code === 404)
            this.log.info({ kind }, "CRD not installed in this cluster; checking again later");
          else
            this.log.warn(
              { kind, path: spec.path },
              "not permitted to list and watch this kind (403): none is seen; grant it (deploy/rbac/hub.yaml)",
            );
        }
        absent = code;
        // none of that kind can exist: restored ones are gone
        this.writer.listed(kind);
        retryMs = this.maxBackoffMs;
      } else {
        const reason = describeKubeError(e, this.server);
        if (!optional) this.setDown(kind, `${kind} watch: ${reason}`);
        this.sayFailure(kind, reason, retryMs);
        backoff = Math.min(backoff * 2, this.maxBackoffMs);
      }
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (this.stopped) return;
        const before = errors;
        informer
          .start()
          .then(() => {
            // start() resolves once the list and the new watch are in place; no error meanwhile = reachable
            if (errors !== before || this.stopped) return;
            backoff = 500;
            if (absent !== undefined) {
              this.log.info({ kind }, absent === 404 ? "CRD found; watching" : "permitted now; watching");
              absent = undefined;
            }
            this.writer.listed(kind);
            if (!optional) this.setDown(kind, undefined);
          })
          .catch(() => {});
      }, retryMs);
      this.timers.add(t);
    });
    await informer.start();
    const listed = errors === 0 || absent !== undefined;
    if (listed && !this.stopped) this.writer.listed(kind);
    return listed;
  }

  /** Writes policies' status in this cluster. */
  policyStatusClient(): PolicyStatusClient {
    return new KubePolicyStatusClient(this.kc.makeApiClient(k8s.CustomObjectsApi));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.probeTimer);
    for (const t of this.timers) clearTimeout(t);
    await Promise.all(this.informers.map((i) => i.stop()));
  }
}

/** client-node hands back model classes; our parsers read plain JSON shapes. */
function toPlain(o: AnyObj): Record<string, unknown> {
  return JSON.parse(JSON.stringify(o)) as Record<string, unknown>;
}

/**
 * An informer whose cache keeps `compact(o)` instead of each object: the
 * listing is compacted as it arrives, and so is every watch event before
 * the cache sees it.
 */
function compactInformer(
  kc: k8s.KubeConfig,
  path: string,
  list: () => Promise<k8s.KubernetesListObject<AnyObj>>,
  compact: (o: unknown) => Record<string, unknown>,
): k8s.Informer<AnyObj> {
  const watch = new k8s.Watch(kc);
  const compacting = {
    watch: (
      p: string,
      query: Record<string, string | number | boolean | undefined>,
      callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
      done: (err: unknown) => void,
    ) =>
      watch.watch(
        p,
        query,
        // ERROR and BOOKMARK events are the server's, not objects: passed on as they are
        (phase, o, w) => callback(phase, phase === "ERROR" || phase === "BOOKMARK" ? o : compact(o), w),
        done,
      ),
  } as unknown as k8s.Watch;
  const compactList = async () => {
    const l = await list();
    return { ...l, items: l.items.map((o) => compact(o) as AnyObj) };
  };
  return new k8s.ListWatch(path, compacting, compactList, false);
}

/**
 * A whole listing fetched in pages (limit/continue: one consistent snapshot, the first page's
 * resourceVersion), each page's items compacted before the next page is asked for.
 */
async function listInPages(
  page: (cont: string | undefined) => Promise<k8s.KubernetesListObject<AnyObj>>,
  compact: (o: unknown) => Record<string, unknown>,
): Promise<k8s.KubernetesListObject<AnyObj>> {
  const items: AnyObj[] = [];
  let cont: string | undefined;
  let first: k8s.KubernetesListObject<AnyObj> | undefined;
  do {
    const p = await page(cont);
    first ??= p;
    for (const o of p.items) items.push(compact(o) as AnyObj);
    cont = p.metadata?._continue || undefined;
  } while (cont);
  const { _continue: _, ...metadata } = first.metadata ?? {};
  return { ...first, metadata, items };
}

/** A policy's status, written with a JSON merge patch of the status subresource (RBAC: patch on …/status). */
export class KubePolicyStatusClient implements PolicyStatusClient {
  private readonly api: k8s.CustomObjectsApi;
  constructor(api: k8s.CustomObjectsApi) {
    this.api = api;
  }

  async patchStatus(
    namespace: string,
    name: string,
    status: PolicyStatus,
    kind: PolicyKind = "LocalRedirectPolicy",
  ): Promise<void> {
    await this.api.patchNamespacedCustomObjectStatus(
      {
        ...POLICY_API,
        plural: watchedResource(kind).resource,
        namespace,
        name,
        body: { status },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  }
}
