/**
 * A test Kubernetes API server that speaks list/watch the way the real one
 * does, for Services, EndpointSlices, Nodes, Pods, the MCS API's
 * ServiceExports and ServiceImports (as CRDs: `mcsInstalled = false` makes
 * them 404, as in a cluster without them), LocalRedirectPolicies and
 * BalancingPolicies (CRDs too: `policiesInstalled = false`):
 *
 * - one resourceVersion counter for all kinds; lists carry the list RV;
 * - watch from a resourceVersion replays the retained events after it, then
 *   streams live ones (newline-delimited JSON watch events);
 * - bookmarks (when the client allows them) on `bookmark()`;
 * - `compact()` forgets history, so a watch from an older RV gets an ERROR
 *   event with a 410 Status ("too old resource version") and must relist;
 * - `dropWatches()` closes every open watch (the client must resume);
 * - `failNext(n)` answers the next n requests with 500;
 * - `outage()` cuts every connection and refuses new ones (a cluster gone
 *   from the network) until `recover()`; objects applied meanwhile are seen
 *   by the hub only after recovery, as with a real partition;
 * - `hang()` keeps connections open but answers nothing and sends no watch
 *   events (a partition that drops packets) until `recover()`;
 * - lists honour limit/continue (pages of the objects as they are then);
 * - GET /version answers like a real API server (clients probe it);
 * - PATCH of a policy's (LocalRedirectPolicy, BalancingPolicy) `status` subresource with a JSON merge
 *   patch (RFC 7386) changes only its status: a new resourceVersion, a
 *   MODIFIED event, metadata.generation unchanged (as for any status
 *   subresource); `statusPatches` records each; other writes are refused.
 *   `apply()` bumps metadata.generation when the spec changes and sets
 *   uid and creationTimestamp when they are absent, as the API server does
 *   for CRDs.
 *
 * - Namespaces, ServiceAccounts, Secrets, ClusterRoles, ClusterRoleBindings
 *   can be created, read, replaced and deleted (`store`, kube-store.ts), with
 *   the token controller filling service-account-token Secrets;
 * - `acceptedTokens`, when set, is the bearer tokens it accepts (401 for any
 *   other; /version stays open); issued ServiceAccount tokens join it and
 *   leave it with their Secret, and are authorized by the ClusterRoles bound
 *   to their ServiceAccount (403 otherwise; `store.denied`).
 *
 * Tests drive it in-process; the hub talks to it through the real
 * @kubernetes/client-node with a kubeconfig from `writeKubeconfig()`.
 */
import fs from "node:fs";
import type http from "node:http";
import https from "node:https";
import os from "node:os";
import path from "node:path";
import { makeCa, makeServerCert, type Pki } from "./certs.ts";
import { KubeObjectStore } from "./kube-store.ts";

type Kind =
  | "Service"
  | "EndpointSlice"
  | "Node"
  | "ServiceExport"
  | "ServiceImport"
  | "Pod"
  | "LocalRedirectPolicy"
  | "BalancingPolicy";
type Obj = {
  apiVersion?: string;
  kind?: string;
  metadata: Record<string, unknown> & { name: string; namespace?: string; resourceVersion?: string };
  [k: string]: unknown;
};
type WatchEvent = { type: "ADDED" | "MODIFIED" | "DELETED"; rv: number; kind: Kind; object: Obj };

const ROUTES: Array<{ re: RegExp; kind: Kind; apiVersion: string }> = [
  { re: /^\/api\/v1\/services$/, kind: "Service", apiVersion: "v1" },
  { re: /^\/api\/v1\/namespaces\/([^/]+)\/services$/, kind: "Service", apiVersion: "v1" },
  {
    re: /^\/apis\/discovery\.k8s\.io\/v1\/endpointslices$/,
    kind: "EndpointSlice",
    apiVersion: "discovery.k8s.io/v1",
  },
  {
    re: /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/,
    kind: "EndpointSlice",
    apiVersion: "discovery.k8s.io/v1",
  },
  { re: /^\/api\/v1\/nodes$/, kind: "Node", apiVersion: "v1" },
  {
    re: /^\/apis\/multicluster\.x-k8s\.io\/v1alpha1\/serviceexports$/,
    kind: "ServiceExport",
    apiVersion: "multicluster.x-k8s.io/v1alpha1",
  },
  {
    re: /^\/apis\/multicluster\.x-k8s\.io\/v1alpha1\/serviceimports$/,
    kind: "ServiceImport",
    apiVersion: "multicluster.x-k8s.io/v1alpha1",
  },
  { re: /^\/api\/v1\/pods$/, kind: "Pod", apiVersion: "v1" },
  { re: /^\/api\/v1\/namespaces\/([^/]+)\/pods$/, kind: "Pod", apiVersion: "v1" },
  {
    re: /^\/apis\/switchyard\.io\/v1alpha1\/localredirectpolicies$/,
    kind: "LocalRedirectPolicy",
    apiVersion: "switchyard.io/v1alpha1",
  },
  {
    re: /^\/apis\/switchyard\.io\/v1alpha1\/namespaces\/([^/]+)\/localredirectpolicies$/,
    kind: "LocalRedirectPolicy",
    apiVersion: "switchyard.io/v1alpha1",
  },
  {
    re: /^\/apis\/switchyard\.io\/v1alpha1\/balancingpolicies$/,
    kind: "BalancingPolicy",
    apiVersion: "switchyard.io/v1alpha1",
  },
  {
    re: /^\/apis\/switchyard\.io\/v1alpha1\/namespaces\/([^/]+)\/balancingpolicies$/,
    kind: "BalancingPolicy",
    apiVersion: "switchyard.io/v1alpha1",
  },
];

const POLICY_KINDS: Record<string, Kind> = {
  localredirectpolicies: "LocalRedirectPolicy",
  balancingpolicies: "BalancingPolicy",
};

const STATUS_PATCH =
  /^\/apis\/switchyard\.io\/v1alpha1\/namespaces\/([^/]+)\/(localredirectpolicies|balancingpolicies)\/([^/]+)\/status$/;

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === "object" && target !== null && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

type Watcher = { kind: Kind; namespace: string | undefined; res: http.ServerResponse; bookmarks: boolean };

export class FakeKubeApiServer {
  private rv = 1;
  private readonly objects = new Map<string, { kind: Kind; object: Obj }>();
  private history: WatchEvent[] = [];
  /** events at or below this RV are forgotten */
  private compactedRv = 0;
  private readonly watchers = new Set<Watcher>();
  private failures = 0;
  private server: https.Server | undefined;
  private pki: Pki | undefined;
  port = 0;
  requests: string[] = [];
  /** how many watches were answered 410 Gone */
  goneSent = 0;
  /** false: the MCS CRDs are not installed (404) */
  mcsInstalled = true;
  /** false: the LocalRedirectPolicy CRD is not installed (404) */
  policiesInstalled = true;
  /** list pages answered (requests with a limit) */
  pagesServed = 0;
  /** kinds the client may not list or watch (403 Forbidden, as RBAC answers) */
  forbidden = new Set<Kind>();
  /** status patches received, in order */
  statusPatches: Array<{ namespace: string; name: string; contentType: string; body: unknown }> = [];
  /** bearer tokens accepted (401 for others), or undefined: every request is accepted */
  acceptedTokens: Set<string> | undefined;
  /** the writable kinds (onboarding: ServiceAccount, token Secret, RBAC) */
  readonly store = new KubeObjectStore(
    () => ++this.rv,
    () => fs.readFileSync(this.pki!.caCert, "utf8"),
    (token, issued) => (issued ? this.acceptedTokens?.add(token) : this.acceptedTokens?.delete(token)),
  );
  private down = false;
  private hung = false;
  private readonly hungRequests = new Set<http.ServerResponse>();

  /** Serves HTTPS with a fresh CA, as a real API server does. */
  async start(): Promise<void> {
    this.pki = makeCa(fs.mkdtempSync(path.join(os.tmpdir(), "sy-apiserver-pki-")), "test-apiserver-ca");
    const cert = makeServerCert(this.pki, "apiserver", { ips: ["127.0.0.1"], dns: ["localhost"] });
    this.server = https.createServer(
      { cert: fs.readFileSync(cert.cert), key: fs.readFileSync(cert.key) },
      (req, res) => this.handle(req, res),
    );
    // during an outage new connections are cut before TLS completes, like an unreachable host
    this.server.on("connection", (sock) => {
      if (this.down) sock.destroy();
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    for (const r of this.hungRequests) r.destroy();
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    if (this.pki) fs.rmSync(this.pki.dir, { recursive: true, force: true });
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  writeKubeconfig(dir: string, name = "test"): string {
    const file = path.join(dir, `${name}.kubeconfig`);
    fs.writeFileSync(
      file,
      `apiVersion: v1
kind: Config
clusters:
- name: ${name}
  cluster:
    server: ${this.url}
    certificate-authority-data: ${fs.readFileSync(this.pki!.caCert).toString("base64")}
contexts:
- name: ${name}
  context:
    cluster: ${name}
    user: ${name}
current-context: ${name}
users:
- name: ${name}
  user:
    token: test-token
`,
    );
    return file;
  }

  private key(kind: Kind, ns: string | undefined, name: string): string {
    return `${kind}/${ns ?? ""}/${name}`;
  }

  /** Creates or replaces an object (like kubectl apply). */
  apply(object: Obj): void {
    const kind = object.kind as Kind;
    const ns = kind === "Node" ? undefined : ((object.metadata.namespace as string | undefined) ?? "default");
    const k = this.key(kind, ns, object.metadata.name);
    const prev = this.objects.get(k)?.object;
    const existed = prev !== undefined;
    const rv = ++this.rv;
    const stored: Obj = structuredClone(object);
    stored.metadata = { ...stored.metadata, resourceVersion: String(rv), ...(ns ? { namespace: ns } : {}) };
    if (kind === "LocalRedirectPolicy" || kind === "BalancingPolicy") {
      // as the API server does for a CRD with a status subresource
      const pm: Record<string, unknown> = prev?.metadata ?? {};
      const gen = typeof pm["generation"] === "number" ? pm["generation"] : 0;
      const specChanged = JSON.stringify(prev?.["spec"]) !== JSON.stringify(stored["spec"]);
      stored.metadata["generation"] ??= existed && !specChanged ? gen : gen + 1;
      stored.metadata["uid"] ??= pm["uid"] ?? `uid-${kind}-${ns}-${object.metadata.name}-${rv}`;
      stored.metadata["creationTimestamp"] ??=
        pm["creationTimestamp"] ?? new Date(Date.now() + rv).toISOString();
      if (prev?.["status"] !== undefined && stored["status"] === undefined) stored["status"] = prev["status"];
    }
    this.objects.set(k, { kind, object: stored });
    this.emit({ type: existed ? "MODIFIED" : "ADDED", rv, kind, object: stored });
  }

  delete(kind: Kind, namespace: string | undefined, name: string): void {
    const k = this.key(kind, kind === "Node" ? undefined : (namespace ?? "default"), name);
    const cur = this.objects.get(k);
    if (!cur) return;
    this.objects.delete(k);
    const rv = ++this.rv;
    const object = structuredClone(cur.object);
    object.metadata.resourceVersion = String(rv);
    this.emit({ type: "DELETED", rv, kind, object });
  }

  /** Forgets all history: watches resuming from an older RV get 410 Gone. */
  compact(): void {
    this.compactedRv = this.rv;
    this.history = [];
  }

  dropWatches(): void {
    for (const w of this.watchers) w.res.destroy();
    this.watchers.clear();
  }

  /** The cluster drops off the network: open watches are cut, new connections refused. */
  outage(): void {
    this.down = true;
    this.dropWatches();
    this.server?.closeAllConnections();
  }

  /** Nothing answers any more, nothing is cut: requests and watches just go quiet. */
  hang(): void {
    this.hung = true;
  }

  recover(): void {
    this.down = false;
    if (this.hung) {
      this.hung = false;
      // what was held is dropped, as a partition that heals leaves dead connections behind
      for (const r of this.hungRequests) r.destroy();
      this.hungRequests.clear();
      this.dropWatches();
    }
  }

  failNext(n: number): void {
    this.failures = n;
  }

  bookmark(): void {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      const route = ROUTES.find((r) => r.kind === w.kind)!;
      w.res.write(
        `${JSON.stringify({ type: "BOOKMARK", object: { kind: w.kind, apiVersion: route.apiVersion, metadata: { resourceVersion: String(this.rv) } } })}\n`,
      );
    }
  }

  get watchCount(): number {
    return this.watchers.size;
  }

  private emit(ev: WatchEvent): void {
    this.history.push(ev);
    if (this.hung) return;
    for (const w of this.watchers) this.send(w, ev);
  }

  private send(w: Watcher, ev: WatchEvent): void {
    if (ev.kind !== w.kind) return;
    if (w.namespace && ev.object.metadata.namespace !== w.namespace) return;
    const route = ROUTES.find((r) => r.kind === ev.kind)!;
    w.res.write(
      `${JSON.stringify({ type: ev.type, object: { apiVersion: route.apiVersion, kind: ev.kind, ...ev.object } })}\n`,
    );
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    res.on("error", () => {});
    if (this.hung) {
      this.hungRequests.add(res);
      return;
    }
    if (url.pathname === "/version") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ major: "1", minor: "33", gitVersion: "v1.33.0-switchyard-test" }));
      return;
    }
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (this.acceptedTokens && !(bearer && this.acceptedTokens.has(bearer))) {
      this.status(res, 401, "Unauthorized", "Unauthorized");
      return;
    }
    const denied = bearer ? this.store.authorize(bearer, req.method ?? "GET", url) : undefined;
    if (denied) {
      this.status(res, 403, "Forbidden", denied);
      return;
    }
    if (this.store.handle(req, res, url.pathname)) return;
    if (this.failures > 0) {
      this.failures--;
      this.status(res, 500, "InternalError", "injected failure");
      return;
    }
    const patch = STATUS_PATCH.exec(url.pathname);
    if (req.method === "PATCH" && patch) {
      this.patchStatus(
        req,
        res,
        decodeURIComponent(patch[1]!),
        decodeURIComponent(patch[3]!),
        POLICY_KINDS[patch[2]!]!,
      );
      return;
    }
    if (req.method !== "GET") {
      this.status(
        res,
        405,
        "MethodNotAllowed",
        "this test server is read-only over HTTP, but for a policy's status",
      );
      return;
    }
    let route: (typeof ROUTES)[number] | undefined;
    let namespace: string | undefined;
    for (const r of ROUTES) {
      const m = r.re.exec(url.pathname);
      if (m) {
        route = r;
        namespace = m[1];
        break;
      }
    }
    if (route && this.forbidden.has(route.kind)) {
      this.status(res, 403, "Forbidden", `cannot list resource of kind ${route.kind}: forbidden by RBAC`);
      return;
    }
    if (
      !route ||
      (!this.mcsInstalled && route.apiVersion.startsWith("multicluster")) ||
      (!this.policiesInstalled && (route.kind === "LocalRedirectPolicy" || route.kind === "BalancingPolicy"))
    ) {
      this.status(res, 404, "NotFound", `no route ${url.pathname}`);
      return;
    }
    if (url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1") {
      this.watch(route.kind, namespace, url, res);
      return;
    }
    const all = [...this.objects.entries()]
      .filter(([, o]) => o.kind === route.kind && (!namespace || o.object.metadata.namespace === namespace))
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([, o]) => ({ apiVersion: route.apiVersion, kind: route.kind, ...o.object }));
    // limit/continue: pages of the objects as they are when each page is asked for (a real API
    // server serves every page from the first page's snapshot); the token carries that page's RV
    const limit = Number(url.searchParams.get("limit") ?? 0);
    const cont = url.searchParams.get("continue");
    const [rvText, offsetText] = cont ? cont.split(":") : [String(this.rv), "0"];
    const offset = Number(offsetText);
    const items = limit > 0 ? all.slice(offset, offset + limit) : all;
    const more = limit > 0 && offset + limit < all.length;
    if (limit > 0) this.pagesServed++;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        apiVersion: route.apiVersion,
        kind: `${route.kind}List`,
        metadata: { resourceVersion: rvText, ...(more ? { continue: `${rvText}:${offset + limit}` } : {}) },
        items,
      }),
    );
  }

  private patchStatus(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    namespace: string,
    name: string,
    kind: Kind,
  ): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const contentType = String(req.headers["content-type"] ?? "");
      if (!this.policiesInstalled) return this.status(res, 404, "NotFound", `no ${kind} CRD`);
      if (!contentType.startsWith("application/merge-patch+json"))
        return this.status(
          res,
          415,
          "UnsupportedMediaType",
          `this test server takes merge patches, not ${contentType}`,
        );
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return this.status(res, 400, "BadRequest", "the patch is not JSON");
      }
      this.statusPatches.push({ namespace, name, contentType, body });
      const k = this.key(kind, namespace, name);
      const cur = this.objects.get(k);
      if (!cur) return this.status(res, 404, "NotFound", `${kind.toLowerCase()} "${name}" not found`);
      const patched = mergePatch(cur.object, body) as Obj;
      // the status subresource changes the status only
      const next: Obj = { ...structuredClone(cur.object), status: patched["status"] };
      const rv = ++this.rv;
      next.metadata.resourceVersion = String(rv);
      this.objects.set(k, { kind, object: next });
      this.emit({ type: "MODIFIED", rv, kind, object: next });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ apiVersion: "switchyard.io/v1alpha1", kind, ...next }));
    });
  }

  /** The stored object (a copy), e.g. to read a policy's status. */
  get(kind: Kind, namespace: string | undefined, name: string): Obj | undefined {
    const o = this.objects.get(this.key(kind, kind === "Node" ? undefined : (namespace ?? "default"), name));
    return o ? structuredClone(o.object) : undefined;
  }

  private watch(kind: Kind, namespace: string | undefined, url: URL, res: http.ServerResponse): void {
    const fromText = url.searchParams.get("resourceVersion") ?? "";
    const from = fromText === "" || fromText === "0" ? this.rv : Number(fromText);
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    if (!Number.isFinite(from) || from < this.compactedRv) {
      this.goneSent++;
      res.end(
        `${JSON.stringify({
          type: "ERROR",
          object: {
            kind: "Status",
            apiVersion: "v1",
            metadata: {},
            status: "Failure",
            message: `too old resource version: ${fromText} (${this.compactedRv})`,
            reason: "Expired",
            code: 410,
          },
        })}\n`,
      );
      return;
    }
    const w: Watcher = {
      kind,
      namespace,
      res,
      bookmarks: url.searchParams.get("allowWatchBookmarks") === "true",
    };
    for (const ev of this.history) if (ev.rv > from) this.send(w, ev);
    this.watchers.add(w);
    res.on("close", () => this.watchers.delete(w));
  }

  private status(res: http.ServerResponse, code: number, reason: string, message: string): void {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message,
        reason,
        code,
      }),
    );
  }
}
