/**
 * A real cluster, watched through @kubernetes/client-node informers
 * (list + watch, relist on 410 Gone, restart with backoff after errors).
 * Read-only: list and watch Services, EndpointSlices and Nodes.
 */
import * as k8s from "@kubernetes/client-node";
import type { Logger } from "@switchyard/lib/log";
import type { KubeKind } from "../model/types.ts";
import type { ClusterSource, WorldWriter } from "./source.ts";

type AnyObj = k8s.KubernetesObject;

export type KubeSourceOptions = { kubeconfig?: string; inCluster?: boolean; maxBackoffMs?: number };

export class KubeSource implements ClusterSource {
  readonly cluster: string;
  private readonly writer: WorldWriter;
  private readonly log: Logger;
  private readonly kc: k8s.KubeConfig;
  private readonly informers: Array<k8s.Informer<AnyObj>> = [];
  private stopped = false;
  private readonly maxBackoffMs: number;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(writer: WorldWriter, log: Logger, opts: KubeSourceOptions) {
    this.writer = writer;
    this.cluster = writer.cluster;
    this.log = log;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.kc = new k8s.KubeConfig();
    if (opts.inCluster) this.kc.loadFromCluster();
    else if (opts.kubeconfig) this.kc.loadFromFile(opts.kubeconfig);
    else this.kc.loadFromDefault();
  }

  /**
   * Starts every informer; resolves true once all listed, or false as soon as
   * one failed (it keeps retrying in the background, and the hub serves
   * the other clusters meanwhile).
   */
  async start(): Promise<boolean> {
    const core = this.kc.makeApiClient(k8s.CoreV1Api);
    const discovery = this.kc.makeApiClient(k8s.DiscoveryV1Api);
    const specs: Array<{
      kind: KubeKind;
      path: string;
      list: () => Promise<k8s.KubernetesListObject<AnyObj>>;
    }> = [
      { kind: "Service", path: "/api/v1/services", list: () => core.listServiceForAllNamespaces() },
      {
        kind: "EndpointSlice",
        path: "/apis/discovery.k8s.io/v1/endpointslices",
        list: () => discovery.listEndpointSliceForAllNamespaces(),
      },
      { kind: "Node", path: "/api/v1/nodes", list: () => core.listNode() },
    ];
    const results = await Promise.all(specs.map((s) => this.watchKind(s.kind, s.path, s.list)));
    return results.every(Boolean);
  }

  private async watchKind(
    kind: KubeKind,
    path: string,
    list: () => Promise<k8s.KubernetesListObject<AnyObj>>,
  ): Promise<boolean> {
    const informer = k8s.makeInformer(this.kc, path, list);
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
    let failedAtStart = false;
    informer.on("connect", () => {
      backoff = 500;
    });
    informer.on("error", (e: unknown) => {
      failedAtStart = true;
      if (this.stopped) return;
      this.log.warn({ kind, err: String(e), retryMs: backoff }, "watch failed; restarting");
      const t = setTimeout(() => {
        this.timers.delete(t);
        if (!this.stopped) informer.start().catch(() => {});
      }, backoff);
      this.timers.add(t);
      backoff = Math.min(backoff * 2, this.maxBackoffMs);
    });
    await informer.start();
    return !failedAtStart;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    await Promise.all(this.informers.map((i) => i.stop()));
  }
}

/** client-node hands back model classes; our parsers read plain JSON shapes. */
function toPlain(o: AnyObj): Record<string, unknown> {
  return JSON.parse(JSON.stringify(o)) as Record<string, unknown>;
}
