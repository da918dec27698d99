/**
 * Each cluster's last known state in the hub's shared state (a file, or
 * JetStream KV shared by replicas; state/hub-state.ts), so a restarted hub
 * or a fresh replica that cannot reach a cluster serves what was last seen
 * of it instead of nothing.
 *
 * A record is the World's objects of one cluster (Services, EndpointSlices,
 * Nodes, ServiceExports/Imports, LocalRedirectPolicies as the translator
 * reads them; not Pods, see objectsOf), gzipped JSON,
 * with the time the cluster was last seen healthy:
 *
 * - `lastknown/<cluster>`: {format, cluster, lastSeenAt, savedAt, digest,
 *   parts, bytes} — written last;
 * - `lastknown-part/<cluster>/<digest16>/<i>`: the gzip bytes in base64,
 *   256 KiB a key (a JetStream message is 1 MB at most by default).
 *
 * Loading is parsing external input: a record that is corrupt, incomplete
 * (a replica replaced it meanwhile), of another format or of another
 * cluster is refused with the reason, and the hub starts without it.
 *
 * Here: the record (its keys, header and parts), the store and the
 * debounced writer; the objects' JSON is state/last-known-objects.ts.
 */
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import zlib from "node:zlib";
import { err, ok, type Result } from "@switchyard/lib/errors";
import type { Logger } from "@switchyard/lib/log";
import { type ModelObject, objectsOf, type World } from "../model/world.ts";
import type { HubState } from "./hub-state.ts";
import { encodeLastKnownObjects, parseLastKnownObjects } from "./last-known-objects.ts";

export const LAST_KNOWN_FORMAT = 1;
const PART_CHARS = 256 * 1024;
const MAX_PARTS = 4096;
const MAX_JSON_BYTES = 512 * 1024 * 1024;
const gzip = promisify(zlib.gzip);

export type LastKnown = { lastSeenAt: number; objects: ModelObject[] };

export type LastKnownMeta = {
  format: number;
  cluster: string;
  lastSeenAt: string;
  savedAt: string;
  digest: string;
  parts: number;
  bytes: number;
};

export function metaKey(cluster: string): string {
  return `lastknown/${cluster}`;
}

/** the parts of a cluster's records; with a digest, of that record */
function partPrefix(cluster: string, digest?: string): string {
  return `lastknown-part/${cluster}/${digest === undefined ? "" : `${digest.slice(0, 16)}/`}`;
}

export function partKey(cluster: string, digest: string, i: number): string {
  return `${partPrefix(cluster, digest)}${i}`;
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function parseMeta(cluster: string, v: unknown): Result<LastKnownMeta & { lastSeen: number }> {
  if (!isObj(v)) return err("its header is not an object");
  if (v["format"] !== LAST_KNOWN_FORMAT)
    return err(
      `format ${JSON.stringify(v["format"])} is not format ${LAST_KNOWN_FORMAT} (written by another version of the hub)`,
    );
  if (v["cluster"] !== cluster) return err(`it is the record of cluster ${JSON.stringify(v["cluster"])}`);
  const lastSeen = typeof v["lastSeenAt"] === "string" ? Date.parse(v["lastSeenAt"]) : Number.NaN;
  if (!Number.isFinite(lastSeen)) return err("lastSeenAt is not a time");
  const digest = v["digest"];
  if (typeof digest !== "string" || !/^[0-9a-f]{64}$/.test(digest))
    return err("digest is not a sha256 in hex");
  const parts = v["parts"];
  if (typeof parts !== "number" || !Number.isInteger(parts) || parts < 1 || parts > MAX_PARTS)
    return err(`parts is not a whole number from 1 to ${MAX_PARTS}`);
  return ok({ ...(v as LastKnownMeta), lastSeen });
}

/**
 * A stored record → the cluster's objects and when it was last seen
 * (a time in the future, from a replica whose clock runs ahead, counts as now).
 */
export function parseLastKnown(
  cluster: string,
  meta: unknown,
  part: (key: string) => unknown,
  now: number,
): Result<LastKnown> {
  const m = parseMeta(cluster, meta);
  if (!m.ok) return m;
  const chunks: Buffer[] = [];
  for (let i = 0; i < m.value.parts; i++) {
    const p = part(partKey(cluster, m.value.digest, i));
    if (typeof p !== "string")
      return err(`part ${i + 1} of ${m.value.parts} is missing (replaced while it was read?)`);
    chunks.push(Buffer.from(p, "base64"));
  }
  const gz = Buffer.concat(chunks);
  if (createHash("sha256").update(gz).digest("hex") !== m.value.digest)
    return err("its content does not match its digest (corrupt or half written)");
  let json: string;
  try {
    json = zlib.gunzipSync(gz, { maxOutputLength: MAX_JSON_BYTES }).toString("utf8");
  } catch (e) {
    return err(`cannot be decompressed: ${(e as Error).message}`);
  }
  const objects = parseLastKnownObjects(cluster, json);
  if (!objects.ok) return objects;
  return ok({ lastSeenAt: Math.min(m.value.lastSeen, now), objects: objects.value });
}

// ---- the store and the writer ----

/** Reads and writes last known states in the hub's shared state. */
export class LastKnownStore {
  private readonly state: HubState;
  constructor(state: HubState) {
    this.state = state;
  }

  /** undefined: no record; an error: a record that cannot be used (say why, start without it). */
  load(cluster: string, now = Date.now()): Result<LastKnown> | undefined {
    const meta = this.state.get(metaKey(cluster));
    if (meta === undefined) return undefined;
    return parseLastKnown(cluster, meta, (k) => this.state.get(k), now);
  }

  /** The header of the stored record (to tell whether its content is current). */
  meta(cluster: string): LastKnownMeta | undefined {
    const m = this.state.get<unknown>(metaKey(cluster));
    const p = parseMeta(cluster, m);
    return p.ok ? p.value : undefined;
  }

  /** Writes the objects (parts first, then the header), then drops the parts of earlier records. */
  async save(cluster: string, objects: readonly ModelObject[], lastSeenAt: number, now = Date.now()) {
    const gz = await gzip(encodeLastKnownObjects(objects));
    const digest = createHash("sha256").update(gz).digest("hex");
    const b64 = gz.toString("base64");
    const parts: string[] = [];
    for (let i = 0; i < b64.length; i += PART_CHARS) parts.push(b64.slice(i, i + PART_CHARS));
    if (parts.length > MAX_PARTS)
      throw new Error(
        `cluster ${cluster}: its state is ${gz.length} bytes packed, over the ${MAX_PARTS} parts a record may have`,
      );
    const cur = this.meta(cluster);
    if (cur?.digest !== digest)
      await Promise.all(parts.map((p, i) => this.state.put(partKey(cluster, digest, i), p)));
    await this.writeMeta(cluster, { digest, parts: parts.length, bytes: gz.length }, lastSeenAt, now);
    if (cur?.digest === digest) return;
    const keep = partPrefix(cluster, digest);
    const old = this.state.list(partPrefix(cluster)).filter(([k]) => !k.startsWith(keep));
    await Promise.all(old.map(([k]) => this.state.delete(k)));
  }

  /** Moves the record's last-seen time (the content is current). */
  async touch(cluster: string, lastSeenAt: number, now = Date.now()): Promise<boolean> {
    const cur = this.meta(cluster);
    if (!cur) return false;
    await this.writeMeta(cluster, cur, lastSeenAt, now);
    return true;
  }

  async delete(cluster: string): Promise<void> {
    await this.state.delete(metaKey(cluster));
    await Promise.all(this.state.list(partPrefix(cluster)).map(([k]) => this.state.delete(k)));
  }

  private writeMeta(
    cluster: string,
    c: Pick<LastKnownMeta, "digest" | "parts" | "bytes">,
    lastSeenAt: number,
    now: number,
  ): Promise<void> {
    const meta: LastKnownMeta = {
      format: LAST_KNOWN_FORMAT,
      cluster,
      lastSeenAt: new Date(lastSeenAt).toISOString(),
      savedAt: new Date(now).toISOString(),
      digest: c.digest,
      parts: c.parts,
      bytes: c.bytes,
    };
    return this.state.put(metaKey(cluster), meta);
  }
}

/**
 * Keeps every synced cluster's record current: its objects at most once per
 * `debounceMs` after they change, its last-seen time every `heartbeatMs`
 * while it is healthy (a header write), and once more on close. A cluster
 * that is only restored (not listed since) is not written: its record is
 * what it was. A stale cluster's record keeps the time it went stale.
 */
export class LastKnownWriter {
  private readonly world: World;
  private readonly store: LastKnownStore;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly now: () => number;
  private readonly dirty = new Set<string>();
  /** per cluster: the last-seen time last written */
  private readonly written = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private running: Promise<void> = Promise.resolve();
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(
    world: World,
    store: LastKnownStore,
    log: Logger,
    opts: { debounceMs?: number; heartbeatMs?: number; now?: () => number } = {},
  ) {
    this.world = world;
    this.store = store;
    this.log = log;
    this.debounceMs = opts.debounceMs ?? 5_000;
    this.now = opts.now ?? Date.now;
    this.unsubscribe = world.onChange((cluster, change) => {
      // Pods are not stored (objectsOf): their churn does not rewrite the record
      if (change?.kind === "Pod") return;
      this.dirty.add(cluster);
      this.schedule();
    });
    this.heartbeat = setInterval(() => this.flush(), opts.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.debounceMs);
    this.timer.unref();
  }

  /** Writes what changed (and every healthy cluster's last-seen time); resolves when written. */
  flush(): Promise<void> {
    this.running = this.running.then(() => this.write());
    return this.running;
  }

  private async write(): Promise<void> {
    const dirty = new Set(this.dirty);
    this.dirty.clear();
    for (const c of this.world.clusters.values()) {
      if (c.sync !== "synced") continue;
      const lastSeenAt = c.health.stale ? (c.health.staleSince ?? this.now()) : this.now();
      const name = c.name;
      try {
        if (dirty.has(name) || !(await this.touchIfMoved(name, lastSeenAt))) {
          await this.store.save(name, objectsOf(c), lastSeenAt, this.now());
          this.log.debug(
            { cluster: name, lastSeenAt: new Date(lastSeenAt).toISOString() },
            "last known state saved",
          );
        }
        this.written.set(name, lastSeenAt);
      } catch (e) {
        // the next change or heartbeat tries again
        this.dirty.add(name);
        this.log.warn(
          { cluster: name, err: (e as Error).message },
          "cannot save the cluster's last known state",
        );
      }
    }
  }

  /** true when the stored record is current (its time moved if needed); false when it must be written whole. */
  private async touchIfMoved(cluster: string, lastSeenAt: number): Promise<boolean> {
    if (!this.written.has(cluster)) return false;
    if (this.written.get(cluster) === lastSeenAt) return true;
    return this.store.touch(cluster, lastSeenAt, this.now());
  }

  /** A last write (healthy clusters were seen until now), then no more. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    await this.flush();
  }
}
