/**
 * The resource map of one view and its versions: the resources every agent
 * of the view shares, each node's own (lrpb/…/<node>) overlay, the notes
 * on why an object got no resource, and the snapshots agents are served.
 * A resource's version is a hash of its content, so hub replicas agree on
 * versions without talking to each other.
 */
import { createHash } from "node:crypto";
import { formatDigest, resourceDigest } from "@switchyard/lib/view-digest";
import { BackendSlice, type Resource, ServiceAssignment } from "@switchyard/proto/assignment";

export type Diagnostic = { object: string; message: string };

export type ViewSnapshot = {
  /** hash over every resource name and version (with `overlay`: of both maps) */
  version: string;
  /** the resources every agent of the view shares */
  resources: Map<string, Resource>;
  /** one node's snapshot: that node's own resources (lrpb/…/<node>), sent to it after the shared ones */
  overlay?: ReadonlyMap<string, Resource>;
  /** one node's snapshot: the view's shared snapshot it extends */
  base?: ViewSnapshot;
  readonly diagnostics: Diagnostic[];
  /** why a Service got no resource or lost frontends (empty when fine) */
  diagnosticsOf(name: string): string[];
};

/** The node of a per-node resource (`lrpb/…/<node>`, `bpn/…/<node>`, `entry/…/<node>`), or undefined for a resource every agent of the view shares. */
export function overlayNodeOf(resourceName: string): string | undefined {
  return resourceName.startsWith("lrpb/") ||
    resourceName.startsWith("bpn/") ||
    resourceName.startsWith("entry/")
    ? resourceName.slice(resourceName.lastIndexOf("/") + 1)
    : undefined;
}

function hash(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex").slice(0, 16);
}

/** A named resource whose version is the hash of its encoded body. */
export function serviceResource(name: string, body: ServiceAssignment): Resource {
  return {
    name,
    version: hash(ServiceAssignment.encode(body).finish()),
    body: { $case: "service", value: body },
  };
}

export function sliceResource(name: string, body: BackendSlice): Resource {
  return {
    name,
    version: hash(BackendSlice.encode(body).finish()),
    body: { $case: "backendSlice", value: body },
  };
}

function digest(r: Resource): bigint {
  return resourceDigest(r.name, r.version);
}

/** The resources of one view, their notes and versions (no I/O, no time). */
export class ViewResources {
  /** the resources every agent of the view shares */
  readonly resources = new Map<string, Resource>();
  private readonly diagnostics = new Map<string, string[]>();
  /** XOR of per-resource digests: an order-free version of the whole view, O(1) to update */
  private acc = 0n;
  /** bumped on every change to the resource map (its order too: a delete and re-add moves an entry) */
  private mutations = 0;
  private lastSnapshot: { acc: bigint; mutations: number; snap: ViewSnapshot } | undefined;
  /**
   * Per-node resources (lrpb/…/<node>): node → its resources, their XOR
   * digest, a mutation count and its last snapshot. A node's agents get the
   * shared map and its overlay; the others never hear of it.
   */
  private readonly overlays = new Map<
    string,
    {
      resources: Map<string, Resource>;
      acc: bigint;
      mutations: number;
      last: { base: ViewSnapshot; mutations: number; snap: ViewSnapshot } | undefined;
    }
  >();

  /** Forgets every resource and note; returns the names of the resources it held (shared and per node). */
  clear(): Set<string> {
    const before = new Set(this.resources.keys());
    for (const o of this.overlays.values()) for (const n of o.resources.keys()) before.add(n);
    this.overlays.clear();
    this.resources.clear();
    this.mutations++;
    this.diagnostics.clear();
    this.acc = 0n;
    return before;
  }

  /** Sets (or with undefined, deletes) a resource; a node's own resource goes to that node's overlay. */
  put(name: string, r: Resource | undefined, changed: Set<string>): void {
    const node = overlayNodeOf(name);
    if (node !== undefined) {
      this.putOverlay(node, name, r, changed);
      return;
    }
    const cur = this.resources.get(name);
    if (cur?.version === r?.version) return;
    if (cur) this.acc ^= digest(cur);
    this.mutations++;
    if (r) {
      this.resources.set(name, r);
      this.acc ^= digest(r);
    } else this.resources.delete(name);
    changed.add(name);
  }

  private putOverlay(node: string, name: string, r: Resource | undefined, changed: Set<string>): void {
    let o = this.overlays.get(node);
    const cur = o?.resources.get(name);
    if (cur?.version === r?.version) return;
    if (!o) {
      o = { resources: new Map(), acc: 0n, mutations: 0, last: undefined };
      this.overlays.set(node, o);
    }
    if (cur) o.acc ^= digest(cur);
    o.mutations++;
    if (r) {
      o.resources.set(name, r);
      o.acc ^= digest(r);
    } else o.resources.delete(name);
    // a node left with nothing of its own is served the shared snapshot again
    if (o.resources.size === 0) this.overlays.delete(node);
    changed.add(name);
  }

  /** Sets a resource's notes; a new reason (or none) is news for the logs even when the version stays. */
  note(resName: string, notes: string[], changed: Set<string>): void {
    const before = JSON.stringify(this.diagnostics.get(resName) ?? []);
    if (notes.length) this.diagnostics.set(resName, notes);
    else this.diagnostics.delete(resName);
    if (JSON.stringify(notes) !== before) changed.add(resName);
  }

  /**
   * What one node's agents receive: the shared snapshot, extended by the
   * node's own resources when it has any (version: the XOR of both digests,
   * which is what an agent computes over all it holds). The same object
   * until either map changes; the shared snapshot itself for a node with
   * none.
   */
  nodeSnapshot(node: string): ViewSnapshot {
    const base = this.snapshot();
    const o = this.overlays.get(node);
    if (!o) return base;
    const last = o.last;
    if (last?.base === base && last.mutations === o.mutations) return last.snap;
    const snap: ViewSnapshot = {
      version: formatDigest(this.acc ^ o.acc),
      resources: this.resources,
      overlay: o.resources,
      base,
      get diagnostics() {
        return base.diagnostics;
      },
      diagnosticsOf: base.diagnosticsOf,
    };
    o.last = { base, mutations: o.mutations, snap };
    return snap;
  }

  /**
   * Cheap: the resource map is shared and live; diagnostics are listed only
   * when asked for; the same object until the resource map changes (every
   * pump of every agent asks for it), so the object stands for one exact
   * content and order of the map — a new object even when a change and its
   * undo leave the version as it was.
   */
  snapshot(): ViewSnapshot {
    const last = this.lastSnapshot;
    if (last?.acc === this.acc && last.mutations === this.mutations) return last.snap;
    const all = this.diagnostics;
    const snap: ViewSnapshot = {
      version: formatDigest(this.acc),
      resources: this.resources,
      get diagnostics() {
        const out: Diagnostic[] = [];
        for (const [object, msgs] of all) for (const message of msgs) out.push({ object, message });
        return out;
      },
      diagnosticsOf: (name: string) => all.get(name) ?? [],
    };
    this.lastSnapshot = { acc: this.acc, mutations: this.mutations, snap };
    return snap;
  }
}
