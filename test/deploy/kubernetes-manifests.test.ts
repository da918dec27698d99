/**
 * deploy/kubernetes, checked without a cluster: every overlay renders with
 * `kubectl kustomize` (kubectl missing = a failure that says so), every
 * object validates against the Kubernetes schemas (kubernetes-models) and
 * every custom resource (rendered, or in deploy/examples) against its CRD's
 * own openAPIV3Schema; the hub's ClusterRole grants exactly what the hub's
 * sources use (sources/kube-api.ts, and the paths a real KubeSource asks a
 * test API server for); the containers' flags are flags the binaries
 * accept (their --help), and what the agent's flags name is mounted.
 *
 * kubernetes-models' validators check types, required fields and enums but
 * let unknown fields through (the API server's strict field validation
 * would refuse them), so built-in objects are also type-checked against its
 * TypeScript interfaces with `satisfies`, which catches a misspelt field.
 * Not checked here: the CRDs' CEL rules, and anything a running cluster or
 * a container engine would show.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import AjvModule from "ajv";
import pino from "pino";
import { parseAllDocuments } from "yaml";
import { parseHubConfig } from "../../services/hub/src/config.ts";
import { World } from "../../services/hub/src/model/world.ts";
import type { ClusterHealthTracker } from "../../services/hub/src/sources/health.ts";
import { KubeSource } from "../../services/hub/src/sources/kube.ts";
import {
  computeHubClusterRoleRules,
  resourcePath,
  WATCHED_RESOURCES,
} from "../../services/hub/src/sources/kube-api.ts";
import { WorldWriter } from "../../services/hub/src/sources/source.ts";
import { FakeKubeApiServer } from "../kit/kube-apiserver.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const OVERLAYS = path.join(ROOT, "deploy/kubernetes/overlays");
const NAMESPACE = "switchyard";
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string })
  .version;

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
};
// biome-ignore lint/suspicious/noExplicitAny: rendered YAML is walked freely; the schema checks type it
type Any = any;

function kubectlKustomize(dir: string): Obj[] {
  const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8" });
  if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT")
    assert.fail(
      "kubectl is not installed: these tests render deploy/kubernetes with `kubectl kustomize` (kubectl ≥ 1.27, Kustomize v5); install kubectl",
    );
  assert.equal(r.status, 0, `kubectl kustomize ${path.relative(ROOT, dir)} failed:\n${r.stderr}`);
  return parseYaml(r.stdout, dir);
}

function parseYaml(text: string, where: string): Obj[] {
  return parseAllDocuments(text)
    .map((d) => {
      assert.deepEqual(d.errors, [], `${where}: YAML errors`);
      return d.toJS() as Obj | null;
    })
    .filter((o): o is Obj => o !== null);
}

const overlays = fs
  .readdirSync(OVERLAYS)
  .filter((d) => fs.existsSync(path.join(OVERLAYS, d, "kustomization.yaml")))
  .sort();
const rendered = new Map<string, Obj[]>();
function render(overlay: string): Obj[] {
  let r = rendered.get(overlay);
  if (!r) {
    r = kubectlKustomize(path.join(OVERLAYS, overlay));
    rendered.set(overlay, r);
  }
  return r;
}

const id = (o: Obj) =>
  `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata.name}`;

// ---- schemas ----------------------------------------------------------------------------------

/** kubernetes-models' class for a built-in apiVersion/kind, or undefined when it has none. */
async function builtinModel(o: Obj): Promise<{ validate(): void } | undefined> {
  const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
  const mod = group ? `kubernetes-models/${group}/${version}/${o.kind}` : `kubernetes-models/v1/${o.kind}`;
  try {
    const m = (await import(mod)) as Record<string, new (d: unknown) => { validate(): void }>;
    const Cls = m[o.kind];
    return Cls ? new Cls(o) : undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_PACKAGE_PATH_NOT_EXPORTED") return undefined;
    if ((e as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND") return undefined;
    throw e;
  }
}

const Ajv = ((AjvModule as Any).default ?? AjvModule) as new (o: object) => Any;
const ajv = new Ajv({ strict: false, allErrors: true, logger: false });

/**
 * A CRD's schema as the API server applies it under strict field validation (kubectl's default):
 * fields it does not name are refused, except where it preserves unknown fields.
 */
function strictSchema(s: Any): Any {
  if (Array.isArray(s)) return s.map(strictSchema);
  if (s === null || typeof s !== "object") return s;
  const out: Any = {};
  for (const [k, v] of Object.entries(s))
    out[k] =
      k === "properties"
        ? Object.fromEntries(Object.entries(v as object).map(([p, ps]) => [p, strictSchema(ps)]))
        : strictSchema(v);
  if (
    out.properties &&
    out.additionalProperties === undefined &&
    !out["x-kubernetes-preserve-unknown-fields"]
  )
    out.additionalProperties = false;
  return out;
}

function crdsIn(objs: Obj[]): Obj[] {
  return objs.filter((o) => o.kind === "CustomResourceDefinition");
}

const repoCrds = kubectlKustomizeOnce(path.join(ROOT, "deploy/crds"));
function kubectlKustomizeOnce(dir: string): () => Obj[] {
  let v: Obj[] | undefined;
  return () => {
    v ??= crdsIn(kubectlKustomize(dir));
    return v;
  };
}

function crdSchemaFor(o: Obj, crds: Obj[]): Any | undefined {
  const [group, version] = o.apiVersion.split("/");
  for (const c of crds) {
    const spec = (c as Any).spec;
    if (spec.group !== group || spec.names.kind !== o.kind) continue;
    const v = (spec.versions as Any[]).find((x) => x.name === version);
    assert.ok(v, `${id(o)}: CRD ${c.metadata.name} has no version ${version}`);
    return v.schema.openAPIV3Schema;
  }
  return undefined;
}

async function validateObject(o: Obj, crds: Obj[]): Promise<string | undefined> {
  const schema = crdSchemaFor(o, crds);
  if (schema) {
    const check = ajv.compile(strictSchema(schema));
    if (check(o)) return undefined;
    return `${id(o)}: ${ajv.errorsText(check.errors)}`;
  }
  const model = await builtinModel(o);
  if (!model) return `${id(o)}: no schema for ${o.apiVersion} ${o.kind} (neither built in nor a CRD here)`;
  try {
    model.validate();
    return undefined;
  } catch (e) {
    return `${id(o)}: ${(e as Error).message}`;
  }
}

/**
 * Unknown fields (a typo like `mountPropogation`), which the schemas let through: every built-in
 * object is type-checked against kubernetes-models' interface with `satisfies` (TypeScript's
 * excess-property check), one object per line so an error names its object.
 */
async function typeProblems(objs: Obj[]): Promise<string[]> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sy-manifest-types-"));
  try {
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(tmp, "node_modules"));
    const lines: string[] = [];
    const ids: string[] = [];
    for (const o of objs) {
      if (!(await builtinModel(o))) continue;
      const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
      const mod = group
        ? `kubernetes-models/${group}/${version}/${o.kind}`
        : `kubernetes-models/v1/${o.kind}`;
      const n = ids.length;
      ids.push(id(o));
      lines.push(`import type { I${o.kind} as T${n} } from "${mod}";`);
      lines.push(`export const o${n} = ${JSON.stringify(o)} satisfies T${n};`);
    }
    fs.writeFileSync(path.join(tmp, "objects.ts"), `${lines.join("\n")}\n`);
    fs.writeFileSync(
      path.join(tmp, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          module: "nodenext",
          moduleResolution: "nodenext",
          target: "es2022",
          types: [],
        },
        files: ["objects.ts"],
      }),
    );
    const r = spawnSync(path.join(ROOT, "node_modules/.bin/tsc"), ["-p", tmp], { encoding: "utf8" });
    if (r.status === 0) return [];
    return r.stdout
      .split("\n")
      .filter((l) => l.includes("error TS"))
      .map((l) => {
        const line = Number(/objects\.ts\((\d+),/.exec(l)?.[1] ?? 0);
        return `${ids[Math.floor((line - 1) / 2)] ?? "?"}: ${l.replace(/^.*error /, "")}`;
      });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// ---- the pods' containers ---------------------------------------------------------------------

type Container = {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: Any[];
  volumeMounts?: Any[];
  securityContext?: Any;
  ports?: Any[];
};

function podSpec(o: Obj): Any | undefined {
  return (o as Any).spec?.template?.spec;
}

function containersOf(o: Obj): Container[] {
  const s = podSpec(o);
  return s ? [...(s.initContainers ?? []), ...(s.containers ?? [])] : [];
}

function flagsOf(args: readonly string[]): Map<string, string | true> {
  const out = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    if (eq > 0) out.set(a.slice(0, eq), a.slice(eq + 1));
    else if (args[i + 1] !== undefined && !args[i + 1]!.startsWith("--")) out.set(a, args[++i]!);
    else out.set(a, true);
  }
  return out;
}

/** Every --flag a command's --help names (the CLI frame prints every flag a command reads: lib/src/cli.ts). */
const helpCache = new Map<string, Set<string>>();
function helpFlags(main: string, command: string): Set<string> {
  const cached = helpCache.get(`${main} ${command}`);
  if (cached) return cached;
  const r = spawnSync(process.execPath, [path.join(ROOT, main), command, "--help"], { encoding: "utf8" });
  assert.equal(r.status, 0, `${main} ${command} --help failed: ${r.stderr}`);
  const flags = new Set(`${r.stdout}${r.stderr}`.match(/--[a-z][a-z0-9-]*/g) ?? []);
  assert.ok(flags.size > 5, `${main} ${command} --help names few flags:\n${r.stdout}`);
  helpCache.set(`${main} ${command}`, flags);
  return flags;
}

const BINARIES: Record<string, { main: string; command: string }> = {
  "switchyard-hub": { main: "services/hub/src/main.ts", command: "serve" },
  "switchyard-agent": { main: "services/nodeagent/src/main.ts", command: "run" },
};

const CLUSTER_SCOPED = new Set([
  "Namespace",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "PriorityClass",
]);

function selectorMatches(sel: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.entries(sel).every(([k, v]) => labels?.[k] === v);
}

describe("deploy/kubernetes renders and validates", () => {
  it("has the overlays the guides name", () => {
    for (const o of ["management", "management-external-nats", "member", "k3s", "kubeedge"])
      assert.ok(overlays.includes(o), o);
  });

  for (const overlay of overlays) {
    describe(`overlay ${overlay}`, () => {
      it("renders with kubectl kustomize; every object validates against its schema (built in, or its CRD's)", async () => {
        const objs = render(overlay);
        assert.ok(objs.length > 0);
        const crds = [...crdsIn(objs), ...repoCrds()];
        const problems = (await Promise.all(objs.map((o) => validateObject(o, crds)))).filter(Boolean);
        assert.deepEqual(problems, []);
        const ids = objs.map(id);
        assert.equal(new Set(ids).size, ids.length, "no object twice");
      });

      it("puts every namespaced object in the switchyard namespace", () => {
        const stray = render(overlay)
          .filter((o) => !CLUSTER_SCOPED.has(o.kind) && o.metadata.namespace !== NAMESPACE)
          .map(id);
        assert.deepEqual(stray, []);
      });

      it("runs the release's image, and every $(VAR) in a container's args is in its env", () => {
        for (const o of render(overlay))
          for (const c of containersOf(o)) {
            if (c.image.startsWith("switchyard:") || c.image.includes("/switchyard:"))
              assert.equal(
                c.image.split(":").at(-1),
                VERSION,
                `${id(o)} ${c.name}: the image tag is package.json's version`,
              );
            const env = new Set((c.env ?? []).map((e) => e.name as string));
            for (const e of c.env ?? [])
              assert.ok(
                !(e.value !== undefined && e.valueFrom !== undefined),
                `${id(o)} ${c.name}: env ${e.name} has value and valueFrom`,
              );
            for (const a of [...(c.command ?? []), ...(c.args ?? [])])
              for (const m of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g))
                assert.ok(
                  env.has(m[1]!),
                  `${id(o)} ${c.name}: ${a} names $(${m[1]}), which is not in its env (Kubernetes would pass it on literally)`,
                );
          }
      });

      it("selectors of Services, PodDisruptionBudgets and NetworkPolicies take pods of this render", () => {
        const objs = render(overlay);
        const podLabels = objs.filter(podSpec).map((o) => (o as Any).spec.template.metadata.labels);
        for (const o of objs) {
          const sel =
            o.kind === "Service"
              ? (o as Any).spec.selector
              : o.kind === "PodDisruptionBudget"
                ? (o as Any).spec.selector.matchLabels
                : o.kind === "NetworkPolicy"
                  ? (o as Any).spec.podSelector.matchLabels
                  : undefined;
          if (!sel) continue;
          assert.ok(
            podLabels.some((l) => selectorMatches(sel, l)),
            `${id(o)}: its selector takes no pod here`,
          );
        }
      });

      it("gives the binaries only flags they accept (their --help)", () => {
        for (const o of render(overlay))
          for (const c of containersOf(o)) {
            const bin = c.command?.[0];
            if (!bin || !BINARIES[bin]) continue;
            const { main, command } = BINARIES[bin]!;
            assert.equal(c.args?.[0], command, `${id(o)} ${c.name}: runs ${bin} ${command}`);
            const known = helpFlags(main, command);
            const unknown = [...flagsOf(c.args!.slice(1)).keys()].filter((f) => !known.has(f));
            assert.deepEqual(unknown, [], `${id(o)} ${c.name}: flags ${bin} ${command} does not accept`);
          }
      });
    });
  }
});

describe("every overlay's built-in objects", () => {
  it("name no field the Kubernetes types do not have (a typo the schemas let through)", async () => {
    // one type-check of every distinct object of every overlay (tsc loads the types once)
    const all = new Map<string, Obj>();
    for (const ov of overlays) for (const o of render(ov)) all.set(JSON.stringify(o), o);
    assert.deepEqual(await typeProblems([...all.values()]), []);
  });
});

describe("the hub's RBAC is exactly what its sources use", () => {
  type Triple = string;
  const triples = (rules: Any[]): Triple[] =>
    rules
      .flatMap((r) => {
        assert.equal(r.resourceNames, undefined, "no resourceNames");
        assert.equal(r.nonResourceURLs, undefined, "no nonResourceURLs");
        return (r.apiGroups as string[]).flatMap((g) =>
          (r.resources as string[]).flatMap((res) =>
            (r.verbs as string[]).map((v) => `${g || "core"}/${res}:${v}`),
          ),
        );
      })
      .sort();

  it("every rendered hub ClusterRole grants what kube-api.ts lists, and nothing more", () => {
    const want = triples(computeHubClusterRoleRules());
    let seen = 0;
    for (const overlay of overlays) {
      const objs = render(overlay);
      const role = objs.find((o) => o.kind === "ClusterRole" && o.metadata.name === "switchyard-hub");
      if (!role) continue;
      seen++;
      assert.deepEqual(triples((role as Any).rules), want, `overlay ${overlay}: ClusterRole switchyard-hub`);
      const binding = objs.find(
        (o) => o.kind === "ClusterRoleBinding" && (o as Any).roleRef.name === "switchyard-hub",
      );
      assert.deepEqual((binding as Any)?.subjects, [
        { kind: "ServiceAccount", name: "switchyard-hub", namespace: NAMESPACE },
      ]);
      for (const d of objs.filter((o) => o.kind === "Deployment" && o.metadata.name === "switchyard-hub"))
        assert.equal(podSpec(d).serviceAccountName, "switchyard-hub");
    }
    assert.ok(seen >= 1, "some overlay holds the hub's ClusterRole");
  });

  describe("the paths a real KubeSource asks an API server for are the ones kube-api.ts lists", () => {
    let api: FakeKubeApiServer;
    let dir: string;
    let source: KubeSource | undefined;
    before(async () => {
      api = new FakeKubeApiServer();
      await api.start();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), "sy-rbac-paths-"));
    });
    after(async () => {
      await source?.stop();
      await api.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it("lists and watches only WATCHED_RESOURCES' paths, every one of them, and patches only statuses it names", async () => {
      api.apply({
        apiVersion: "switchyard.io/v1alpha1",
        kind: "LocalRedirectPolicy",
        metadata: { name: "p", namespace: "default" },
        spec: {
          frontend: { service: { name: "s", ports: ["dns"] } },
          backend: {
            selector: { matchLabels: { app: "x" } },
            toPorts: [{ name: "dns", port: 53, protocol: "UDP" }],
          },
        },
      });
      const log = pino({ level: "silent" });
      const tracker = { report: () => {}, synced: () => {} } as unknown as ClusterHealthTracker;
      source = new KubeSource(new WorldWriter(new World(), "c", log, tracker), log, {
        kubeconfig: api.writeKubeconfig(dir, "c"),
        maxBackoffMs: 200,
      });
      // the paths first: a kind the test API server does not serve fails to list, and that is not the point
      const started = await source.start();
      await source.policyStatusClient().patchStatus("default", "p", {
        observedGeneration: 1,
        frontend: "s",
        conditions: [],
      });
      const allowed = new Map(WATCHED_RESOURCES.map((r) => [resourcePath(r), r]));
      const asked = new Set<string>();
      for (const req of api.requests) {
        const [method, url] = req.split(" ") as [string, string];
        const p = url.split("?")[0]!;
        if (method === "GET" && p === "/version") continue;
        if (method === "GET") {
          assert.ok(
            allowed.has(p),
            `the hub's source listed/watched ${p}, which WATCHED_RESOURCES does not name (add it there: the RBAC test follows)`,
          );
          asked.add(p);
          continue;
        }
        assert.equal(method, "PATCH", req);
        const m = /^\/apis\/([^/]+)\/([^/]+)\/namespaces\/[^/]+\/([^/]+)\/[^/]+\/status$/.exec(p);
        assert.ok(m, `a write that is not a status patch: ${req}`);
        const r = WATCHED_RESOURCES.find(
          (x) => x.group === m[1] && x.version === m[2] && x.resource === m[3],
        );
        assert.ok(r?.statusPatched, `patched ${p}, whose status WATCHED_RESOURCES does not mark as patched`);
      }
      assert.deepEqual([...asked].sort(), [...allowed.keys()].sort(), "every watched resource is listed");
      assert.equal(started, true, "every kind listed");
    });
  });
});

describe("the hub's config file (ConfigMap)", () => {
  it("parses with the hub's own parser, listens where the container's ports are, and finds its kubeconfigs mounted", () => {
    let seen = 0;
    for (const ov of overlays) {
      const objs = render(ov);
      const hub = objs.find((o) => o.kind === "Deployment" && o.metadata.name === "switchyard-hub");
      if (!hub) continue;
      const c = (podSpec(hub).containers as Container[]).find((x) => x.name === "hub")!;
      const configFile = flagsOf(c.args!).get("--config") as string;
      const mount = c.volumeMounts!.find((m) => m.mountPath === configFile)!;
      assert.ok(mount, `${ov}: --config ${configFile} is mounted`);
      const volume = (podSpec(hub).volumes as Any[]).find((v) => v.name === mount.name);
      const cm = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === volume.configMap.name) as Any;
      const text = cm?.data?.[mount.subPath];
      assert.ok(typeof text === "string", `${ov}: ConfigMap ${volume.configMap.name} holds ${mount.subPath}`);
      const parsed = parseHubConfig(text, `${ov}: hub.yaml`);
      assert.ok(parsed.ok, parsed.ok ? "" : parsed.error);
      seen++;
      const port = (name: string) => c.ports!.find((p) => p.name === name)?.containerPort;
      assert.equal(parsed.value.listen, `0.0.0.0:${port("grpc")}`, `${ov}: listen`);
      assert.equal(parsed.value.metricsListen, `0.0.0.0:${port("metrics")}`, `${ov}: metricsListen`);
      for (const cl of parsed.value.clusters)
        if (cl.kind === "kubeconfig")
          assert.ok(
            c.volumeMounts!.some((m) => cl.path.startsWith(`${m.mountPath}/`)),
            `${ov}: cluster ${cl.name}'s kubeconfig ${cl.path} is in a mounted directory`,
          );
    }
    assert.ok(seen >= 3);
  });
});

describe("the agent DaemonSet", () => {
  const daemonSets = () =>
    overlays.flatMap((ov) =>
      render(ov)
        .filter((o) => o.kind === "DaemonSet" && o.metadata.name === "switchyard-agent")
        .map((o) => ({ ov, o })),
    );

  it("runs on the host network on every node, with capabilities instead of privileged", () => {
    assert.ok(daemonSets().length >= 2, "member and k3s hold it");
    for (const { ov, o } of daemonSets()) {
      const s = podSpec(o);
      assert.equal(s.hostNetwork, true, ov);
      assert.deepEqual(s.tolerations, [{ operator: "Exists" }], `${ov}: tolerates every taint`);
      const agent = (s.containers as Container[]).find((c) => c.name === "agent")!;
      assert.equal(agent.securityContext.privileged, false, ov);
      assert.deepEqual(agent.securityContext.capabilities, {
        drop: ["ALL"],
        add: ["BPF", "NET_ADMIN", "PERFMON"],
      });
      const probes = [
        (agent as Any).livenessProbe?.httpGet?.path,
        (agent as Any).readinessProbe?.httpGet?.path,
      ];
      assert.deepEqual(probes, ["/healthz", "/readyz"], ov);
    }
  });

  it("its --pin-dir, --cgroup and --state-dir are host paths mounted into it (pins and state outlive the pod)", () => {
    for (const { ov, o } of daemonSets()) {
      const s = podSpec(o);
      const agent = (s.containers as Container[]).find((c) => c.name === "agent")!;
      const flags = flagsOf(agent.args!);
      const hostPathOf = (dir: string) => {
        const m = (agent.volumeMounts ?? []).find(
          (vm) => dir === vm.mountPath || dir.startsWith(`${vm.mountPath}/`),
        );
        assert.ok(m, `${ov}: ${dir} is not mounted`);
        const v = (s.volumes as Any[]).find((x) => x.name === m.name);
        assert.ok(v?.hostPath, `${ov}: ${dir} is not a host path`);
        return { mount: m, hostPath: v.hostPath.path as string };
      };
      const pin = hostPathOf(flags.get("--pin-dir") as string);
      assert.equal(pin.hostPath, "/sys/fs/bpf");
      assert.equal(
        pin.mount.mountPropagation,
        "HostToContainer",
        `${ov}: a bpffs mounted later on the host is seen`,
      );
      const cg = hostPathOf(flags.get("--cgroup") as string);
      assert.equal(cg.hostPath, "/sys/fs/cgroup");
      const state = hostPathOf(flags.get("--state-dir") as string);
      assert.equal(state.hostPath, "/var/lib/switchyard-agent");
      // bpffs is mounted on the host by the init container, through Bidirectional propagation
      const init = (s.initContainers as Container[]).find((c) => c.name === "mount-bpffs")!;
      assert.equal(init.volumeMounts?.[0]?.mountPropagation, "Bidirectional");
      assert.equal(init.securityContext.privileged, true, "Bidirectional propagation needs it");
    }
  });
});

describe("the hub Deployment", () => {
  it("runs two replicas sharing state in JetStream KV, kept by a PodDisruptionBudget", () => {
    let seen = 0;
    for (const ov of overlays) {
      const objs = render(ov);
      const hub = objs.find((o) => o.kind === "Deployment" && o.metadata.name === "switchyard-hub");
      if (!hub) continue;
      seen++;
      assert.equal((hub as Any).spec.replicas, 2, ov);
      const c = (podSpec(hub).containers as Container[]).find((x) => x.name === "hub")!;
      assert.ok(flagsOf(c.args!).has("--state-nats"), `${ov}: --state-nats`);
      assert.ok(
        c.env?.some((e) => e.name === "SWITCHYARD_HUB_KEK"),
        `${ov}: a KEK (required with --state-nats)`,
      );
      const pdb = objs.find((o) => o.kind === "PodDisruptionBudget" && o.metadata.name === "switchyard-hub");
      assert.equal((pdb as Any)?.spec.minAvailable, 1, ov);
      const np = objs.find((o) => o.kind === "NetworkPolicy" && o.metadata.name === "switchyard-hub") as Any;
      assert.ok(
        np?.spec.ingress.some((r: Any) => r.ports.some((p: Any) => p.port === "grpc")),
        `${ov}: the hub's port`,
      );
      // the bundled NATS, when its NetworkPolicy is there, admits the hub pods on its client port (their state)
      const natsNp = objs.find(
        (o) => o.kind === "NetworkPolicy" && o.metadata.name === "switchyard-nats",
      ) as Any;
      const hubLabels = (hub as Any).spec.template.metadata.labels;
      if (natsNp)
        assert.ok(
          natsNp.spec.ingress.some(
            (r: Any) =>
              r.ports.some((p: Any) => p.port === "client") &&
              r.from.some((f: Any) => selectorMatches(f.podSelector?.matchLabels ?? { none: "" }, hubLabels)),
          ),
          `${ov}: NATS admits the hubs on its client port`,
        );
    }
    assert.ok(seen >= 3);
  });
});

describe("the overlay management-operator-nats (one NATS in operator mode for state and events)", () => {
  it("gives the hub and the bucket's init container the hubs' state user from a Secret; NATS reads the auth", () => {
    const objs = render("management-operator-nats");
    const hub = objs.find((o) => o.kind === "Deployment" && o.metadata.name === "switchyard-hub")!;
    const s = podSpec(hub);
    const vol = (s.volumes as Any[]).find((v) => v.secret?.secretName === "switchyard-hub-state-nats");
    assert.ok(vol, "a volume from the Secret switchyard-hub-state-nats");
    const mountOf = (c: Container) => c.volumeMounts?.find((m: Any) => m.name === vol.name)?.mountPath;
    const main = (s.containers as Container[]).find((c) => c.name === "hub")!;
    assert.equal(flagsOf(main.args!).get("--state-nats-creds"), `${mountOf(main)}/hub-state.creds`);
    const init = (s.initContainers as Container[]).find((c) => c.name === "state-bucket")!;
    assert.equal(
      init.env?.find((e) => e.name === "NATS_CREDS")?.value,
      `${mountOf(init)}/hub-state.creds`,
      "nats-box's nats reads NATS_CREDS",
    );
    const nats = objs.find((o) => o.kind === "StatefulSet" && o.metadata.name === "switchyard-nats")!;
    const ns = podSpec(nats);
    const server = (ns.containers as Container[]).find((c) => c.name === "nats")!;
    const conf = server.args![server.args!.indexOf("--config") + 1]!;
    const at = server.volumeMounts!.find((m: Any) => conf.startsWith(`${m.mountPath}/`))!;
    const sources = (ns.volumes as Any[]).find((v) => v.name === at.name).projected.sources as Any[];
    const operator = objs.find(
      (o) => o.kind === "ConfigMap" && o.metadata.name === sources[2].configMap.name,
    ) as Any;
    assert.match(operator.data[path.basename(conf)], /include nats\.conf\ninclude switchyard-auth\.conf/);
    assert.equal(sources[1].configMap.name, "switchyard-nats-auth", "the auth from `nats init --out`");
    assert.match(sources[0].configMap.name, /^switchyard-nats-config-/, "the base's nats.conf beside it");
  });
});

describe("deploy/examples", () => {
  it("every object validates against its schema (custom resources against deploy/crds)", async () => {
    const files = fs
      .readdirSync(path.join(ROOT, "deploy/examples"), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith(".yaml"));
    const objs = files.flatMap((f) =>
      parseYaml(fs.readFileSync(path.join(ROOT, "deploy/examples", f), "utf8"), f).map((o) => ({ f, o })),
    );
    assert.ok(
      objs.some(({ o }) => o.kind === "LocalRedirectPolicy"),
      "a custom resource is among them",
    );
    const problems = (
      await Promise.all(objs.map(({ f, o }) => validateObject(o, repoCrds()).then((p) => p && `${f}: ${p}`)))
    ).filter(Boolean);
    assert.deepEqual(problems, []);
  });
});

describe("deploy/image/Containerfile (not built here: no container engine)", () => {
  const text = fs.readFileSync(path.join(ROOT, "deploy/image/Containerfile"), "utf8");
  const lines = text.replace(/\\\n/g, " ").split("\n");

  it("copies every workspace's package.json before npm ci (npm ci refuses a workspace it cannot find)", () => {
    const workspaces = (
      JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { workspaces: string[] }
    ).workspaces;
    const ci = lines.findIndex((l) => /^RUN npm ci\b/.test(l));
    assert.ok(ci > 0, "RUN npm ci");
    const copied = lines
      .slice(0, ci)
      .flatMap((l) => /^COPY (?!--)(.+) \S+$/.exec(l)?.[1]?.split(/\s+/) ?? []);
    for (const f of ["package.json", "package-lock.json", ...workspaces.map((w) => `${w}/package.json`)])
      assert.ok(copied.includes(f), `COPY ${f} before npm ci`);
  });

  it("names only files and make targets that exist", () => {
    for (const l of lines) {
      const m = /^COPY (?!--)(.+) \S+$/.exec(l);
      if (m) for (const f of m[1]!.split(/\s+/)) assert.ok(fs.existsSync(path.join(ROOT, f)), `COPY ${f}`);
    }
    const makefile = fs.readFileSync(path.join(ROOT, "bpf/Makefile"), "utf8");
    for (const m of text.matchAll(/make -C bpf (\S+)/g)) {
      const target = m[1]!.replace(/^build\//, "$(BUILD)/");
      assert.ok(makefile.includes(`${target}:`), `bpf/Makefile has a target ${m[1]}`);
    }
    assert.ok(fs.existsSync(path.join(ROOT, "scripts/package.ts")));
  });
});

describe("overlay kubeedge", () => {
  it("one agent per node: the cloud DaemonSet skips edge nodes, the edge one takes only them, with the edge Secret", () => {
    const ds = render("kubeedge").filter((o) => o.kind === "DaemonSet");
    const affinity = (o: Obj) =>
      podSpec(o).affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms;
    const secrets = (o: Obj) => {
      const agent = (podSpec(o).containers as Container[])[0]!;
      return [
        agent.env?.find((e) => e.name === "SWITCHYARD_TOKEN")?.valueFrom.secretKeyRef.name,
        (podSpec(o).volumes as Any[]).find((v) => v.name === "hub").secret.secretName,
      ];
    };
    const byName = new Map(ds.map((o) => [o.metadata.name, o]));
    const term = (operator: string) => [
      { matchExpressions: [{ key: "node-role.kubernetes.io/edge", operator }] },
    ];
    assert.deepEqual(affinity(byName.get("switchyard-agent")!), term("DoesNotExist"));
    assert.deepEqual(affinity(byName.get("switchyard-agent-edge")!), term("Exists"));
    assert.deepEqual(secrets(byName.get("switchyard-agent")!), ["switchyard-agent", "switchyard-agent"]);
    assert.deepEqual(secrets(byName.get("switchyard-agent-edge")!), [
      "switchyard-agent-edge",
      "switchyard-agent-edge",
    ]);
  });
});
