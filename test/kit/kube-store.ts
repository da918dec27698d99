/**
 * The test API server's writable kinds, for member-cluster onboarding
 * (`switchyard-hub cluster join/leave`): Namespaces, ServiceAccounts,
 * Secrets, ClusterRoles and ClusterRoleBindings, with create (POST, 409 when
 * it exists), get, replace (PUT) and delete, as the real API server answers
 * them (Status objects, resourceVersion, uid, creationTimestamp). And the
 * token controller's part: a `kubernetes.io/service-account-token` Secret
 * annotated with an existing ServiceAccount gets `data.token`, `ca.crt` and
 * `namespace` a moment after it is created; deleting the ServiceAccount
 * deletes its token Secrets, deleting a Namespace what is in it. Issued
 * tokens are reported (`onToken`) so the server can accept them as bearers.
 * A request with a ServiceAccount's token is authorized as RBAC does, by
 * the ClusterRoles bound to it (`authorize`; refusals kept in `denied`).
 */
import { randomBytes, randomUUID } from "node:crypto";
import type http from "node:http";

type Obj = { metadata: Record<string, unknown> & { name: string; namespace?: string }; [k: string]: unknown };

/** each kind's paths: the collection, or one object by name */
const KINDS: Array<{ re: RegExp; kind: string; apiVersion: string; namespaced: boolean }> = [
  { re: /^\/api\/v1\/namespaces(?:\/([^/]+))?$/, kind: "Namespace", apiVersion: "v1", namespaced: false },
  {
    re: /^\/api\/v1\/namespaces\/([^/]+)\/serviceaccounts(?:\/([^/]+))?$/,
    kind: "ServiceAccount",
    apiVersion: "v1",
    namespaced: true,
  },
  {
    re: /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/,
    kind: "Secret",
    apiVersion: "v1",
    namespaced: true,
  },
  {
    re: /^\/apis\/rbac\.authorization\.k8s\.io\/v1\/clusterroles(?:\/([^/]+))?$/,
    kind: "ClusterRole",
    apiVersion: "rbac.authorization.k8s.io/v1",
    namespaced: false,
  },
  {
    re: /^\/apis\/rbac\.authorization\.k8s\.io\/v1\/clusterrolebindings(?:\/([^/]+))?$/,
    kind: "ClusterRoleBinding",
    apiVersion: "rbac.authorization.k8s.io/v1",
    namespaced: false,
  },
];

export class KubeObjectStore {
  private readonly objects = new Map<string, Obj & { kind: string; apiVersion: string }>();
  /** each write, in order: "POST Secret switchyard/x", "DELETE ClusterRole y" */
  readonly writes: string[] = [];
  /** requests with a ServiceAccount's token that its ClusterRoles do not allow: "list pods" */
  readonly denied: string[] = [];
  /** issued token → its ServiceAccount */
  private readonly saTokens = new Map<string, { namespace: string; name: string }>();
  private readonly nextRv: () => number;
  private readonly caPem: () => string;
  private readonly onToken: (token: string, issued: boolean) => void;
  constructor(nextRv: () => number, caPem: () => string, onToken: (token: string, issued: boolean) => void) {
    this.nextRv = nextRv;
    this.caPem = caPem;
    this.onToken = onToken;
  }

  /** True when the path is one of this store's kinds (it then answers the request). */
  handle(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): boolean {
    for (const k of KINDS) {
      const m = k.re.exec(pathname);
      if (!m) continue;
      // Namespace: m[1] is the name; the others: m[1] namespace, m[2] name
      const ns = k.namespaced ? decodeURIComponent(m[1]!) : undefined;
      const name = k.namespaced ? m[2] : m[1];
      this.answer(req, res, k, ns, name === undefined ? undefined : decodeURIComponent(name));
      return true;
    }
    return false;
  }

  /**
   * RBAC for a ServiceAccount's token: undefined when allowed (or not a
   * ServiceAccount's token, or a non-resource path), else why not.
   */
  authorize(token: string, method: string, url: URL): string | undefined {
    const sa = this.saTokens.get(token);
    const attrs = requestAttributes(method, url);
    if (!sa || !attrs) return undefined;
    const rules = [...this.objects.values()]
      .filter(
        (b) =>
          b.kind === "ClusterRoleBinding" &&
          ((b["subjects"] ?? []) as Array<{ kind: string; name: string; namespace?: string }>).some(
            (x) => x.kind === "ServiceAccount" && x.name === sa.name && x.namespace === sa.namespace,
          ),
      )
      .flatMap((b) => {
        const role = this.objects.get(key("ClusterRole", undefined, (b["roleRef"] as { name: string }).name));
        return (role?.["rules"] ?? []) as Rule[];
      });
    const allowed = rules.some(
      (r) =>
        (r.apiGroups ?? []).some((g) => g === "*" || g === attrs.group) &&
        (r.resources ?? []).some((x) => x === "*" || x === attrs.resource) &&
        (r.verbs ?? []).some((v) => v === "*" || v === attrs.verb),
    );
    if (allowed) return undefined;
    const what = `${attrs.verb} ${attrs.resource}${attrs.group ? `.${attrs.group}` : ""}`;
    this.denied.push(what);
    return `system:serviceaccount:${sa.namespace}:${sa.name} cannot ${what}: forbidden by RBAC`;
  }

  /** The stored object (a copy). */
  get(kind: string, namespace: string | undefined, name: string): Obj | undefined {
    const o = this.objects.get(key(kind, namespace, name));
    return o ? structuredClone(o) : undefined;
  }

  /** Every stored object of a kind. */
  list(kind: string): Obj[] {
    return [...this.objects.values()].filter((o) => o.kind === kind).map((o) => structuredClone(o));
  }

  private answer(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    k: (typeof KINDS)[number],
    ns: string | undefined,
    name: string | undefined,
  ): void {
    const method = req.method ?? "GET";
    if (method === "GET" && name !== undefined) {
      const o = this.objects.get(key(k.kind, ns, name));
      if (o) json(res, 200, o);
      else notFound(res, k.kind, name);
      return;
    }
    if (method === "DELETE" && name !== undefined) {
      if (this.remove(k.kind, ns, name)) {
        this.writes.push(`DELETE ${k.kind} ${ns ? `${ns}/` : ""}${name}`);
        json(res, 200, { kind: "Status", apiVersion: "v1", status: "Success", code: 200 });
      } else notFound(res, k.kind, name);
      return;
    }
    if ((method === "POST" && name === undefined) || (method === "PUT" && name !== undefined)) {
      readJson(req, (body) => {
        if (!body?.metadata?.name) return status(res, 422, "Invalid", `${k.kind}: metadata.name is required`);
        const n = body.metadata.name;
        if (name !== undefined && n !== name)
          return status(res, 400, "BadRequest", `the name in the body (${n}) is not the one in the path`);
        if (ns !== undefined && ns !== (body.metadata.namespace ?? ns))
          return status(res, 400, "BadRequest", "the namespace of the body does not match the path");
        if (ns !== undefined && !this.objects.has(key("Namespace", undefined, ns)))
          return notFound(res, "Namespace", ns);
        const id = key(k.kind, ns, n);
        const prev = this.objects.get(id);
        if (method === "POST" && prev)
          return status(res, 409, "AlreadyExists", `${k.kind.toLowerCase()}s "${n}" already exists`);
        if (method === "PUT" && !prev) return notFound(res, k.kind, n);
        const stored = {
          ...structuredClone(body),
          kind: k.kind,
          apiVersion: k.apiVersion,
          metadata: {
            ...body.metadata,
            ...(ns ? { namespace: ns } : {}),
            uid: prev?.metadata["uid"] ?? randomUUID(),
            creationTimestamp: prev?.metadata["creationTimestamp"] ?? new Date().toISOString(),
            resourceVersion: String(this.nextRv()),
          },
        };
        this.objects.set(id, stored);
        this.writes.push(`${method} ${k.kind} ${ns ? `${ns}/` : ""}${n}`);
        json(res, method === "POST" ? 201 : 200, stored);
        if (k.kind === "Secret" && method === "POST") setTimeout(() => this.fillToken(id), 100);
      });
      return;
    }
    status(res, 405, "MethodNotAllowed", `${method} is not served for ${k.kind} by this test server`);
  }

  /** The token controller: fills a service-account-token Secret whose ServiceAccount exists. */
  private fillToken(id: string): void {
    const s = this.objects.get(id);
    if (s?.["type"] !== "kubernetes.io/service-account-token") return;
    const annotations = (s.metadata["annotations"] ?? {}) as Record<string, string>;
    const sa = annotations["kubernetes.io/service-account.name"];
    const ns = s.metadata.namespace;
    if (!sa || !this.objects.has(key("ServiceAccount", ns, sa))) return;
    const token = `sa-token-${randomBytes(16).toString("hex")}`;
    s["data"] = {
      token: Buffer.from(token).toString("base64"),
      "ca.crt": Buffer.from(this.caPem()).toString("base64"),
      namespace: Buffer.from(ns ?? "").toString("base64"),
    };
    s.metadata["resourceVersion"] = String(this.nextRv());
    this.saTokens.set(token, { namespace: ns ?? "", name: sa });
    this.onToken(token, true);
  }

  private remove(kind: string, ns: string | undefined, name: string): boolean {
    const o = this.objects.get(key(kind, ns, name));
    if (!o) return false;
    this.objects.delete(key(kind, ns, name));
    if (kind === "Secret") {
      const t = (o["data"] as Record<string, string> | undefined)?.["token"];
      if (t) {
        this.saTokens.delete(Buffer.from(t, "base64").toString());
        this.onToken(Buffer.from(t, "base64").toString(), false);
      }
    }
    // what the controllers do: a ServiceAccount's token Secrets go with it, a Namespace's objects too
    for (const other of [...this.objects.values()]) {
      const m = other.metadata;
      const sa = ((m["annotations"] ?? {}) as Record<string, string>)["kubernetes.io/service-account.name"];
      if (
        (kind === "ServiceAccount" && other.kind === "Secret" && m.namespace === ns && sa === name) ||
        (kind === "Namespace" && m.namespace === name)
      )
        this.remove(other.kind, m.namespace, m.name);
    }
    return true;
  }
}

/**
 * What RBAC sees of a request: API group, resource (with "/status" for the
 * subresource) and verb; undefined for non-resource paths (/version).
 */
function requestAttributes(
  method: string,
  url: URL,
): { group: string; resource: string; verb: string } | undefined {
  const m =
    /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)(?:\/namespaces\/([^/]+)(?=\/))?\/([^/]+)(?:\/([^/]+)(?:\/([^/]+))?)?$/.exec(
      url.pathname,
    );
  if (!m) return undefined;
  const [, group = "", , resource, name, sub] = m;
  const watch = url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1";
  const verb =
    method === "GET"
      ? name === undefined
        ? watch
          ? "watch"
          : "list"
        : "get"
      : (({ POST: "create", PUT: "update", PATCH: "patch", DELETE: "delete" } as Record<string, string>)[
          method
        ] ?? method.toLowerCase());
  return { group, resource: sub ? `${resource}/${sub}` : resource!, verb };
}

type Rule = { apiGroups?: string[]; resources?: string[]; verbs?: string[] };

function key(kind: string, ns: string | undefined, name: string): string {
  return `${kind}/${ns ?? ""}/${name}`;
}

function json(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function status(res: http.ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  });
}

function notFound(res: http.ServerResponse, kind: string, name: string): void {
  status(res, 404, "NotFound", `${kind.toLowerCase()}s "${name}" not found`);
}

function readJson(req: http.IncomingMessage, then: (body: Obj | undefined) => void): void {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    try {
      then(JSON.parse(Buffer.concat(chunks).toString("utf8")) as Obj);
    } catch {
      then(undefined);
    }
  });
}
