/**
 * State that hub replicas share: join tokens, the nodes they admitted,
 * agent revocations and the key that signs agent credentials. Reads are
 * synchronous from an in-memory mirror (the stream handler checks tokens on
 * every stream); writes go to the backend and come back through it.
 *
 * - FileState: one JSON file in --state-dir (the embedded default); the
 *   mirror is re-read when the file changes, so the CLI can write it while
 *   no hub runs. Several processes may write it (hubs on one state
 *   directory, the CLI): a write holds a lock file for the few ms of
 *   read-merge-replace, and changes are applied on top of what another
 *   process wrote meanwhile, so none is lost.
 * - KvState: a NATS JetStream KV bucket; every replica watches it, so a
 *   token created or revoked through one replica holds on all of them.
 *
 * Keys look like "token/<id>", "tokennode/<id>/<node>",
 * "revoked/<cluster>/<node>", "signing-key". Values are JSON.
 */
import fs from "node:fs";
import path from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import type { StateNatsAuth } from "./state-nats.ts";

/** The JetStream KV bucket the hubs share (its stream is KV_<bucket>). */
export const STATE_BUCKET = "switchyard-hub";

export interface HubState {
  /** where the state lives, for logs */
  readonly describe: string;
  get<T>(key: string): T | undefined;
  /** entries whose key starts with prefix */
  list<T>(prefix: string): Array<[string, T]>;
  put(key: string, value: unknown): Promise<void>;
  /** writes only if the key does not exist yet; false when it did */
  create(key: string, value: unknown): Promise<boolean>;
  delete(key: string): Promise<void>;
  /** drops the earlier values of a key a backend keeps as history (the key's value stays) */
  forgetHistory?(key: string): Promise<void>;
  close(): Promise<void>;
}

function listOf<T>(m: ReadonlyMap<string, unknown>, prefix: string): Array<[string, T]> {
  const out: Array<[string, T]> = [];
  for (const [k, v] of m) if (k.startsWith(prefix)) out.push([k, v as T]);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

function readEntries(file: string): Map<string, unknown> {
  const parsed = JSON.parse(fs.readFileSync(file, "utf8")) as { entries?: Record<string, unknown> };
  return new Map(Object.entries(parsed.entries ?? {}));
}

function statOrUndefined(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file);
  } catch {
    return undefined;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * An exclusive lock between processes for a read-merge-replace of the state
 * file (held for a few ms). A lock left by a crashed process is broken after
 * 10 s.
 */
function lockFile(lock: string): () => void {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      fs.closeSync(fs.openSync(lock, "wx", 0o600));
      return () => fs.rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const st = statOrUndefined(lock);
    if (st && Date.now() - st.mtimeMs > 10_000) fs.rmSync(lock, { force: true });
    else if (Date.now() > deadline)
      throw new Error(`the state file is locked (${lock}); remove it if no hub or CLI is writing`);
    else Atomics.wait(sleeper, 0, 0, 2);
  }
}

export class FileState implements HubState {
  readonly describe: string;
  private readonly file: string;
  private mirror = new Map<string, unknown>();
  private seen: { mtimeMs: number; size: number; ino: number } | undefined;
  private checkedThisTurn = false;
  /** writes not yet on disk: the writes of 50 ms become one file write */
  private pending:
    | Array<{
        change: (m: Map<string, unknown>) => boolean;
        resolve: (applied: boolean) => void;
        reject: (e: unknown) => void;
      }>
    | undefined;
  /** each entry's line in the file, kept while its value (stored values are replaced, never mutated) is the same */
  private lines = new Map<string, { value: unknown; line: string }>();

  constructor(stateDir: string) {
    this.file = path.join(stateDir, "state.json");
    this.describe = `file ${this.file}`;
  }

  /**
   * Re-reads the file when someone else changed it (writers replace it).
   * One stat per turn of the event loop: re-checking 1,000 agents' tokens
   * in one turn costs one stat, not 3,000.
   */
  private load(): Map<string, unknown> {
    if (this.pending || this.checkedThisTurn) return this.mirror;
    this.checkedThisTurn = true;
    setImmediate(() => {
      this.checkedThisTurn = false;
    });
    let st: fs.Stats;
    try {
      st = fs.statSync(this.file);
    } catch {
      this.mirror = new Map();
      this.seen = undefined;
      return this.mirror;
    }
    if (!this.isNew(st)) return this.mirror;
    this.mirror = readEntries(this.file);
    this.remember(st);
    return this.mirror;
  }

  /** Whether the file is another than the one we last read or wrote (a writer replaces it). */
  private isNew(st: fs.Stats): boolean {
    const s = this.seen;
    return !(s && s.mtimeMs === st.mtimeMs && s.size === st.size && s.ino === st.ino);
  }

  private remember(st: fs.Stats): void {
    this.seen = { mtimeMs: st.mtimeMs, size: st.size, ino: st.ino };
  }

  /** Applies a change to the mirror now and to the file at the end of this turn. */
  private write(change: (m: Map<string, unknown>) => boolean): Promise<boolean> {
    const m = this.load();
    if (!change(m)) return Promise.resolve(false);
    return new Promise<boolean>((resolve, reject) => {
      if (!this.pending) {
        this.pending = [];
        // 50 ms of writes (a thousand agents joining at once) become one file write
        setTimeout(() => this.flush(), 50);
      }
      this.pending.push({ change, resolve, reject });
    });
  }

  private flush(): void {
    const waiters = this.pending ?? [];
    this.pending = undefined;
    let unlock: (() => void) | undefined;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      unlock = lockFile(`${this.file}.lock`);
      // another process wrote since we read: our changes go on top of its file
      const results = waiters.map(() => true);
      const st = statOrUndefined(this.file);
      if (st && this.isNew(st)) {
        this.mirror = readEntries(this.file);
        waiters.forEach((w, i) => {
          results[i] = w.change(this.mirror);
        });
      }
      const tmp = `${this.file}.${process.pid}.tmp`;
      // one entry per line: readable, and far cheaper to write than indented JSON; only changed entries are serialized again
      const lines = new Map<string, { value: unknown; line: string }>();
      for (const [k, v] of this.mirror) {
        const had = this.lines.get(k);
        lines.set(
          k,
          had !== undefined && had.value === v
            ? had
            : { value: v, line: `${JSON.stringify(k)}: ${JSON.stringify(v)}` },
        );
      }
      this.lines = lines;
      const text = Array.from(lines.values(), (l) => l.line).join(",\n");
      fs.writeFileSync(tmp, `{"entries": {\n${text}\n}}\n`, {
        mode: 0o600,
      });
      fs.renameSync(tmp, this.file);
      this.remember(fs.statSync(this.file));
      waiters.forEach((w, i) => {
        w.resolve(results[i]!);
      });
    } catch (e) {
      this.seen = undefined;
      for (const w of waiters) w.reject(e);
    } finally {
      unlock?.();
    }
  }

  get<T>(key: string): T | undefined {
    return this.load().get(key) as T | undefined;
  }

  list<T>(prefix: string): Array<[string, T]> {
    return listOf<T>(this.load(), prefix);
  }

  async put(key: string, value: unknown): Promise<void> {
    await this.write((m) => {
      m.set(key, value);
      return true;
    });
  }

  create(key: string, value: unknown): Promise<boolean> {
    return this.write((m) => {
      if (m.has(key)) return false;
      m.set(key, value);
      return true;
    });
  }

  async delete(key: string): Promise<void> {
    await this.write((m) => m.delete(key));
  }

  async close(): Promise<void> {
    if (this.pending) await new Promise<void>((resolve) => setTimeout(resolve, 60));
  }
}

export class KvState implements HubState {
  readonly describe: string;
  private readonly nc: NatsConnection;
  private readonly kv: KV;
  private readonly mirror = new Map<string, { rev: number; value: unknown }>();
  private readonly values = new Map<string, unknown>();

  private readonly bucket: string;

  private constructor(nc: NatsConnection, kv: KV, describe: string, bucket: string) {
    this.nc = nc;
    this.kv = kv;
    this.describe = describe;
    this.bucket = bucket;
  }

  /**
   * Connects (as the user of `auth.creds`, over `auth.tls`), opens (or
   * creates) the bucket, loads it, and keeps the mirror current.
   */
  static async open(servers: string[], bucket = STATE_BUCKET, auth: StateNatsAuth = {}): Promise<KvState> {
    const nc = await connect({
      servers,
      name: "switchyard-hub",
      maxReconnectAttempts: -1,
      ...(auth.tls ? { tls: auth.tls } : {}),
      ...(auth.creds ? { authenticator: credsAuthenticator(auth.creds) } : {}),
    });
    try {
      const kv = await new Kvm(jetstream(nc)).create(bucket, { history: 5 });
      const s = new KvState(nc, kv, `NATS JetStream KV bucket ${bucket} on ${servers.join(",")}`, bucket);
      // watch first, then load: a change during the load is not lost (revisions decide)
      const w = await kv.watch({ key: ">", include: "updates" });
      (async () => {
        for await (const e of w) s.apply(e.key, e.revision, e.operation === "PUT" ? e.json() : undefined);
      })().catch(() => {});
      const keys = await kv.keys();
      for await (const k of keys) {
        const e = await kv.get(k);
        if (e && e.operation === "PUT") s.apply(k, e.revision, e.json());
      }
      return s;
    } catch (e) {
      await nc.close();
      throw e;
    }
  }

  private apply(key: string, rev: number, value: unknown): void {
    const cur = this.mirror.get(key);
    if (cur && cur.rev >= rev) return;
    this.mirror.set(key, { rev, value });
    if (value === undefined) this.values.delete(key);
    else this.values.set(key, value);
  }

  get<T>(key: string): T | undefined {
    return this.values.get(key) as T | undefined;
  }

  list<T>(prefix: string): Array<[string, T]> {
    return listOf<T>(this.values, prefix);
  }

  async put(key: string, value: unknown): Promise<void> {
    const rev = await this.kv.put(key, JSON.stringify(value));
    this.apply(key, rev, value);
  }

  async create(key: string, value: unknown): Promise<boolean> {
    try {
      const rev = await this.kv.create(key, JSON.stringify(value));
      this.apply(key, rev, value);
      return true;
    } catch (e) {
      if (/wrong last sequence|exists/i.test(String((e as Error).message))) return false;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    await this.kv.delete(key);
    // gone now; the watch brings the delete's own revision, and any later write wins over it
    const cur = this.mirror.get(key);
    this.mirror.set(key, { rev: cur?.rev ?? 0, value: undefined });
    this.values.delete(key);
  }

  /** The bucket keeps a few values per key (history): all but the latest are purged. */
  async forgetHistory(key: string): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    await jsm.streams.purge(`KV_${this.bucket}`, { filter: `$KV.${this.bucket}.${key}`, keep: 1 });
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => {});
  }
}
