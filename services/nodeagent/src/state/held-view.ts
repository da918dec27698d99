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
import { type Resource, ResourceBatch } from "@switchyard/proto/assignment";

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

export function encodeHeldView(view: HeldView): Buffer {
  const head = Buffer.from(JSON.stringify(view.header));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(head.length);
  const body = ResourceBatch.encode({ resources: view.resources }).finish();
  return Buffer.concat([MAGIC, len, head, body]);
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
 * Keeps the held view on disk after views are applied: at most one write per
 * `delayMs` (a burst of deltas costs one write), and once more at stop.
 * A failed write is logged and retried with the next view; it never stops
 * the agent (the maps are what resolve; the file only saves a resume).
 */
export class HeldViewKeeper {
  private timer: NodeJS.Timeout | undefined;
  private readonly stateDir: string;
  private readonly snapshot: () => HeldView;
  private readonly onError: (message: string) => void;
  private readonly delayMs: number;
  constructor(
    stateDir: string,
    snapshot: () => HeldView,
    onError: (message: string) => void,
    delayMs = 1000,
  ) {
    this.stateDir = stateDir;
    this.snapshot = snapshot;
    this.onError = onError;
    this.delayMs = delayMs;
  }

  schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => this.flush(), this.delayMs);
    this.timer.unref();
  }

  /** Writes now if a write is due. */
  flush(): void {
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    try {
      writeHeldView(this.stateDir, this.snapshot());
    } catch (e) {
      this.onError((e as Error).message);
    }
  }
}
