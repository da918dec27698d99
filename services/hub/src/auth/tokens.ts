/**
 * Join tokens: "<id>.<secret>" (like kubeadm's), stored hashed with a TTL
 * and the cluster they admit agents to. The store is a file under the hub's
 * state dir, re-read when it changes, so `switchyard-hub token create` works
 * against a running hub.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { err, ok, type Result } from "@switchyard/lib/errors";

export type TokenRecord = {
  id: string;
  secretSha256: string;
  cluster: string;
  createdAt: string;
  expiresAt: string | undefined;
  description: string;
  /** node names this token admits: a glob ("*" = any; "edge-*" = names starting with edge-) */
  nodePattern?: string;
  /** how many distinct nodes may join with it (0 or absent = no limit) */
  maxNodes?: number;
  /** nodes that joined with it */
  nodes?: string[];
  /** how its agents reach backends: pod IPs, or node IP + NodePort (edge nodes, hosts) */
  reach?: "pod" | "nodeport";
};

export type TokenGrant = { id: string; cluster: string; reach: "pod" | "nodeport" };

const TOKEN_RE = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

function randomString(n: number): string {
  const bytes = randomBytes(n);
  let s = "";
  for (const b of bytes) s += ALPHABET[b % ALPHABET.length];
  return s;
}

function sha256(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

export { parseDuration } from "@switchyard/lib/duration";

export class TokenStore {
  private readonly file: string;
  private cache: { mtimeMs: number; records: TokenRecord[] } | undefined;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, "tokens.json");
  }

  private load(): TokenRecord[] {
    let st: fs.Stats;
    try {
      st = fs.statSync(this.file);
    } catch {
      return [];
    }
    if (this.cache && this.cache.mtimeMs === st.mtimeMs) return this.cache.records;
    const parsed = JSON.parse(fs.readFileSync(this.file, "utf8")) as { tokens?: TokenRecord[] };
    const records = parsed.tokens ?? [];
    this.cache = { mtimeMs: st.mtimeMs, records };
    return records;
  }

  private save(records: TokenRecord[]): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify({ tokens: records }, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, this.file);
    this.cache = undefined;
  }

  create(
    cluster: string,
    opts: {
      ttlMs?: number;
      description?: string;
      now?: Date;
      nodePattern?: string;
      maxNodes?: number;
      reach?: "pod" | "nodeport";
    } = {},
  ): { token: string; record: TokenRecord } {
    const now = opts.now ?? new Date();
    const id = randomString(6);
    const secret = randomString(16);
    const record: TokenRecord = {
      id,
      secretSha256: sha256(secret),
      cluster,
      createdAt: now.toISOString(),
      expiresAt: opts.ttlMs ? new Date(now.getTime() + opts.ttlMs).toISOString() : undefined,
      description: opts.description ?? "",
      nodePattern: opts.nodePattern ?? "*",
      maxNodes: opts.maxNodes ?? 0,
      nodes: [],
      reach: opts.reach ?? "pod",
    };
    this.save([...this.load(), record]);
    return { token: `${id}.${secret}`, record };
  }

  list(): TokenRecord[] {
    return [...this.load()];
  }

  revoke(id: string): boolean {
    const records = this.load();
    const next = records.filter((r) => r.id !== id);
    if (next.length === records.length) return false;
    this.save(next);
    return true;
  }

  /** Is the token behind a grant still valid (not revoked, not expired)? Checked again while streams run. */
  stillValid(id: string, now: Date = new Date()): Result<true> {
    const rec = this.load().find((r) => r.id === id);
    if (!rec) return err(`join token ${id} was revoked`);
    if (rec.expiresAt && new Date(rec.expiresAt).getTime() <= now.getTime())
      return err(`join token ${id} expired at ${rec.expiresAt}`);
    return ok(true);
  }

  /** Admits a node under a token's scope (name pattern, node limit) and records it. */
  admitNode(id: string, node: string): Result<true> {
    const records = this.load();
    const rec = records.find((r) => r.id === id);
    if (!rec) return err(`join token ${id} was revoked`);
    const pattern = rec.nodePattern ?? "*";
    if (!globMatch(pattern, node))
      return err(`join token ${id} admits nodes named "${pattern}", not "${node}"`);
    const nodes = rec.nodes ?? [];
    if (nodes.includes(node)) return ok(true);
    if (rec.maxNodes && nodes.length >= rec.maxNodes) {
      return err(
        `join token ${id} has already admitted its ${rec.maxNodes} node(s); create another token for "${node}"`,
      );
    }
    this.save(records.map((r) => (r.id === id ? { ...r, nodes: [...nodes, node] } : r)));
    return ok(true);
  }

  /** Checks a presented token. Reasons are safe to show the agent. */
  verify(token: string, now: Date = new Date()): Result<TokenGrant> {
    const m = TOKEN_RE.exec(token);
    if (!m)
      return err("join token is malformed: expected <6 chars>.<16 chars> from `switchyard-hub token create`");
    const rec = this.load().find((r) => r.id === m[1]);
    if (!rec)
      return err(
        `join token ${m[1]} is unknown or revoked; create a new one with \`switchyard-hub token create\``,
      );
    const a = Buffer.from(sha256(m[2]!), "hex");
    const b = Buffer.from(rec.secretSha256, "hex");
    if (a.length !== b.length || !timingSafeEqual(a, b)) return err(`join token ${m[1]} has a wrong secret`);
    if (rec.expiresAt && new Date(rec.expiresAt).getTime() <= now.getTime()) {
      return err(`join token ${m[1]} expired at ${rec.expiresAt}; create a new one`);
    }
    return ok({ id: rec.id, cluster: rec.cluster, reach: rec.reach ?? "pod" });
  }
}

/** "*" matches any run of characters; everything else is literal. */
export function globMatch(pattern: string, name: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
  return re.test(name);
}
