/**
 * What watching Pods costs the hub's memory, per Pod and for 100,000
 * (issue 15: a cluster with 100k Pods must not double the hub's memory).
 * A Pod is held twice: in the informer's cache (client-node compares
 * resourceVersions and finds deletions on relist with it) and in the
 * World (the parsed model Pod). The informer keeps compactPod's fields
 * (sources/kube.ts), not the whole object; this measures both forms, and a
 * whole object for comparison, with realistic Pods (labels, owner,
 * managedFields, two containers with env, probes, resources, mounts,
 * status with conditions and container statuses).
 *
 * Each part is measured in a process of its own (V8 shares the strings
 * JSON.parse reads between objects made one after another, which would
 * hide the second part's cost).
 *
 *   node --expose-gc bench/pod-memory.ts [--pods 100000]
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { silentLogger } from "@switchyard/lib/log";
import { World } from "../services/hub/src/model/world.ts";
import { compactPod } from "../services/hub/src/sources/kube-objects.ts";
import { WorldWriter } from "../services/hub/src/sources/source.ts";

const { values } = parseArgs({
  options: { pods: { type: "string", default: "100000" }, part: { type: "string" } },
});
const N = Number(values.pods);
const PARTS = ["whole", "cache", "world", "both"] as const;
type Part = (typeof PARTS)[number];

/** A Pod as the API server sends it (JSON parsed: every string its own). */
function fullPod(i: number): Record<string, unknown> {
  const ns = `ns-${i % 200}`;
  const app = `app-${i % 1000}`;
  const name = `${app}-${(i * 7919).toString(36)}-${i.toString(36)}`;
  const node = `node-${i % 1000}`;
  const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  const text = JSON.stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: ns,
      uid: `6f1c${i.toString(16).padStart(8, "0")}-3c2b-4b8e-9d1a-0242ac120002`,
      resourceVersion: String(1_000_000 + i),
      creationTimestamp: "2026-01-01T00:00:00Z",
      generateName: `${app}-`,
      labels: { app, "pod-template-hash": "7c9f8d6b5", tier: "web", version: "v1", team: "shop" },
      annotations: { "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z" },
      ownerReferences: [
        {
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: `${app}-7c9f8d6b5`,
          uid: "a-uid",
          controller: true,
        },
      ],
      managedFields: [
        {
          manager: "kube-controller-manager",
          operation: "Update",
          apiVersion: "v1",
          fieldsType: "FieldsV1",
          fieldsV1: { "f:metadata": { "f:labels": { ".": {}, "f:app": {} } } },
        },
        {
          manager: "kubelet",
          operation: "Update",
          apiVersion: "v1",
          subresource: "status",
          fieldsType: "FieldsV1",
          fieldsV1: { "f:status": { "f:conditions": {}, "f:podIPs": {} } },
        },
      ],
    },
    spec: {
      nodeName: node,
      serviceAccountName: "default",
      containers: ["app", "sidecar"].map((c, k) => ({
        name: c,
        image: `registry.example/${app}/${c}:1.2.${k}`,
        ports: [{ name: k ? "metrics" : "http", containerPort: 8080 + k, protocol: "TCP" }],
        env: [
          { name: "LOG_LEVEL", value: "info" },
          { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
        ],
        resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "256Mi" } },
        readinessProbe: { httpGet: { path: "/healthz", port: 8080 + k }, periodSeconds: 10 },
        volumeMounts: [
          {
            name: "kube-api-access",
            mountPath: "/var/run/secrets/kubernetes.io/serviceaccount",
            readOnly: true,
          },
        ],
      })),
      volumes: [
        { name: "kube-api-access", projected: { sources: [{ serviceAccountToken: { path: "token" } }] } },
      ],
      tolerations: [
        {
          key: "node.kubernetes.io/not-ready",
          operator: "Exists",
          effect: "NoExecute",
          tolerationSeconds: 300,
        },
      ],
    },
    status: {
      phase: "Running",
      hostIP: `198.18.${(i >> 8) & 255}.${i & 255}`,
      podIP: ip,
      podIPs: [{ ip }],
      startTime: "2026-01-01T00:00:00Z",
      conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"].map((type) => ({
        type,
        status: "True",
        lastTransitionTime: "2026-01-01T00:00:00Z",
      })),
      containerStatuses: ["app", "sidecar"].map((c) => ({
        name: c,
        ready: true,
        restartCount: 0,
        image: `registry.example/${app}/${c}:1.2.0`,
        imageID: `registry.example/${app}/${c}@sha256:${"ab".repeat(32)}`,
        containerID: `containerd://${"cd".repeat(32)}`,
        state: { running: { startedAt: "2026-01-01T00:00:00Z" } },
      })),
    },
  });
  return JSON.parse(text) as Record<string, unknown>;
}

function heap(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc");
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Heap bytes per Pod that one part holds. */
function measure(part: Part): number {
  const h0 = heap();
  const held: unknown[] = [];
  const world = new World();
  const writer = new WorldWriter(world, "c", silentLogger());
  for (let i = 0; i < N; i++) {
    const pod = fullPod(i);
    if (part === "whole") {
      held.push(pod);
      continue;
    }
    // the informer's cache holds compact forms; the World the parsed Pods, made from a plain copy
    // of what the informer delivers (sources/kube.ts), so the two share no objects
    const compact = compactPod(pod);
    if (part !== "world") held.push(compact);
    if (part !== "cache") writer.upsert(JSON.parse(JSON.stringify(compact)));
  }
  const per = Math.round((heap() - h0) / N);
  // (read after the measurement: what is held stays alive through it)
  const kept = held.length + world.cluster("c").pods.size;
  if (kept < N) throw new Error(`${kept} objects held, not ${N}`);
  return per;
}

if (values.part) {
  if (!PARTS.includes(values.part as Part))
    throw new Error(`--part ${values.part}: one of ${PARTS.join(", ")}`);
  process.stdout.write(String(measure(values.part as Part)));
} else {
  const per = Object.fromEntries(
    PARTS.map((p) => [
      p,
      Number(
        execFileSync(
          process.execPath,
          ["--expose-gc", fileURLToPath(import.meta.url), "--pods", String(N), "--part", p],
          { encoding: "utf8" },
        ),
      ),
    ]),
  ) as Record<Part, number>;
  const mb = (b: number) => Math.round((b * N) / 2 ** 20);
  process.stdout.write(
    `${JSON.stringify(
      {
        pods: N,
        bytesPerPod: per,
        heapMB: { hub: mb(per.both), ifTheCacheHeldWholePods: mb(per.whole + per.world) },
      },
      null,
      2,
    )}\n`,
  );
}
