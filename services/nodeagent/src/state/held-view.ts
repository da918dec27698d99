/**
 * The last complete view this agent applied, kept in its state directory so a
 * restarted agent resumes instead of starting from nothing: it presents the
 * view's version in its Hello (the hub sends only what changed, or nothing)
 * and, with no hub at all, it still knows what its pinned maps stand for.
 *
 * File `held-view.bin`: "SYHV1\n", a 4-byte big-endian header length, a JSON
 * header {node, cluster, viewVersion, savedAt, count}, then a serialized
 * ResourceBatch (the same bytes as the `resources` of a hub message). It is
 * written only when the agent holds a complete view, to a temporary file
 * that is synced and renamed over the old one, so a crash leaves the old
 * file or the new one, never half of one.
 *
 * `parseHeldView` is pure and returns a result: the file is input like any
 * other (a disk fault, an older format, a state directory copied from another
 * node), so every problem is named and the agent starts without it.
 */
import fs from "node:fs";
import path from "node:path";
import { err, ok, type Result } from "@switchyard/lib/errors";
import { Resource, ResourceBatch } from "@switchyard/proto/assignment";

const MAGIC = Buffer.from("SYHV1\n");
export const HELD_VIEW_FILE = "held-view.bin";

export type HeldViewHeader = {
  node: string;
  cluster: string;
  viewVersion: string;
  savedAt: string;
  count: number;
};

export type HeldView = { header: HeldViewHeader; resources: Resource[] };

/**
 * Each resource's encoding, kept while the resource object lives: resources
 * are immutable once decoded (a changed one is a new object), so a write
 * encodes only what changed since the last one. Owned here, used only by
 * `encodeHeldView`.
 */
const encodedResources = new WeakMap<Resource, Uint8Array>();

function encodedResource(r: Resource): Uint8Array {
  let b = encodedResources.get(r);
  if (!b) {
    b = Resource.encode(r).finish();
    encodedResources.set(r, b);
  }
  return b;
}

/** A protobuf varint. */
function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** `ResourceBatch.resources` is field 4, length-delimited: tag 0x22. */
const RESOURCES_TAG = Buffer.from([0x22]);

export function encodeHeldView(view: HeldView): Buffer {
  const head = Buffer.from(JSON.stringify(view.header));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(head.length);
  // a ResourceBatch, built from each resource's cached encoding (byte for byte ResourceBatch.encode)
  const parts: Uint8Array[] = [MAGIC, len, head];
  for (const r of view.resources) {
    const b = encodedResource(r);
    parts.push(RESOURCES_TAG, varint(b.length), b);
  }
  return Buffer.concat(parts);
}

/** Pure: the bytes of a held-view file → the view, or what is wrong with it. */
export function parseHeldView(bytes: Buffer, node: string): Result<HeldView> {
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC))
    return err("not a held-view file (wrong magic; written by another version?)");
  const headLen = bytes.readUInt32BE(MAGIC.length);
  const headEnd = MAGIC.length + 4 + headLen;
  if (headEnd > bytes.length) return err(`header of ${headLen} bytes runs past the end of the file`);
  let header: HeldViewHeader;
  try {
    header = JSON.parse(bytes.subarray(MAGIC.length + 4, headEnd).toString("utf8")) as HeldViewHeader;
  } catch (e) {
    return err(`header is not JSON: ${(e as Error).message}`);
  }
  if (
    typeof header !== "object" ||
    header === null ||
    typeof header.node !== "string" ||
    typeof header.cluster !== "string" ||
    typeof header.viewVersion !== "string" ||
    typeof header.savedAt !== "string" ||
    !Number.isInteger(header.count)
  )
    return err("header lacks node, cluster, viewVersion, savedAt or count");
  if (header.node !== node)
    return err(
      `written by node "${header.node}", this agent is node "${node}" (state directory of another node?)`,
    );
  let resources: Resource[];
  try {
    resources = ResourceBatch.decode(bytes.subarray(headEnd)).resources;
  } catch (e) {
    return err(`resources cannot be decoded: ${(e as Error).message}`);
  }
  if (resources.length !== header.count)
    return err(`holds ${resources.length} resources, its header says ${header.count} (truncated?)`);
  return ok({ header, resources });
}

/** Reads the held view from `stateDir`; `undefined` when there is none. */
export function readHeldView(stateDir: string, node: string): Result<HeldView> | undefined {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(path.join(stateDir, HELD_VIEW_FILE));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return err(`cannot be read: ${(e as Error).message}`);
  }
  return parseHeldView(bytes, node);
}

/** Writes the held view atomically (temporary file, fsync, rename). */
export function writeHeldView(stateDir: string, view: HeldView): void {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, HELD_VIEW_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w", 0o600);
  try {
    fs.writeSync(fd, encodeHeldView(view));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/**
 * The same, with the writing and syncing off the event loop (only the
 * encoding runs on it). `stillWanted` is asked before the rename: a newer
 * write (at stop) may have happened meanwhile, and this older one must not
 * replace it.
 */
export async function writeHeldViewAsync(
  stateDir: string,
  view: HeldView,
  stillWanted: () => boolean = () => true,
): Promise<void> {
  await fs.promises.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, HELD_VIEW_FILE);
  // its own temporary name: a synchronous write at stop may run while this one is under way
  const tmp = `${file}.${process.pid}.tmp`;
  const bytes = encodeHeldView(view);
  const fh = await fs.promises.open(`${tmp}.async`, "w", 0o600);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } finally {
    await fh.close();
  }
  if (stillWanted()) await fs.promises.rename(`${tmp}.async`, file);
  else await fs.promises.rm(`${tmp}.async`, { force: true });
}

/**
 * Keeps the held view on disk after views are applied: the first at once,
 * then at most one write per `intervalMs` (default 10 s; a burst of deltas
 * costs one write), written off the event loop, and once more,
 * synchronously, at stop. The file saves
 * a resume, nothing more: one older than the maps only makes the hub send a
 * little more on the next start (its version no longer matches, so the
 * agent lists what it holds), so writing it often would cost the node CPU
 * for nothing. A failed write is logged and retried with the next view; it
 * never stops the agent.
 */
export class HeldViewKeeper {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  /** a view was applied since the last write began */
  private due = false;
  /** a write has begun in this run */
  private started = false;
  private readonly stateDir: string;
  /** the view to keep, or undefined when what is held is not a complete view now (the file stays as it is) */
  private readonly snapshot: () => HeldView | undefined;
  /** bumped by every write begun: an older write finishing later does not replace a newer one */
  private generation = 0;
  private readonly onError: (message: string) => void;
  private readonly intervalMs: number;
  constructor(
    stateDir: string,
    snapshot: () => HeldView | undefined,
    onError: (message: string) => void,
    intervalMs = 10_000,
  ) {
    this.stateDir = stateDir;
    this.snapshot = snapshot;
    this.onError = onError;
    this.intervalMs = intervalMs;
  }

  schedule(): void {
    this.due = true;
    if (this.timer || this.writing) return;
    // the first view of a run at once (a crash soon after start still resumes), later ones at the interval
    this.timer = setTimeout(() => this.writeNow(), this.started ? this.intervalMs : 0);
    this.timer.unref();
  }

  private writeNow(): void {
    this.timer = undefined;
    const view = this.snapshot();
    // a change still arriving: the next applied view schedules again
    if (!view) return;
    this.started = true;
    this.due = false;
    const gen = ++this.generation;
    this.writing = writeHeldViewAsync(this.stateDir, view, () => gen === this.generation)
      .catch((e: unknown) => this.onError((e as Error).message))
      .finally(() => {
        this.writing = undefined;
        if (this.due) this.schedule();
      });
  }

  /**
   * At stop: writes now (synchronously) if a view was applied since the last
   * write began, or a write is still under way (the process ends before it
   * would finish; the later generation keeps it from replacing this one).
   */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.due && !this.writing) return;
    const view = this.snapshot();
    if (!view) return;
    this.due = false;
    this.generation++;
    try {
      writeHeldView(this.stateDir, view);
    } catch (e) {
      this.onError((e as Error).message);
    }
  }
}
