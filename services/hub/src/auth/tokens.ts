/**
 * Join tokens: "<id>.<secret>" (like kubeadm's), stored hashed with a TTL,
 * the cluster they admit agents to and their scope, in the hub's shared
 * state (a file, or JetStream KV shared by hub replicas).
 *
 * An unknown (or revoked) id and a wrong secret get the same answer, after
 * the same work (a hash and a constant-time compare), so the answer does not
 * tell anyone guessing which ids exist; the hub's log says which it was.
 * Every token admits a bounded number of distinct node names (its
 * --max-nodes, else DEFAULT_TOKEN_MAX_NODES): each new name is a write to
 * the shared state, and a token holder must not make the hub write it for
 * every name it invents.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { err, ok, type Result } from "@switchyard/lib/errors";
import type { HubState } from "../state/hub-state.ts";
import { type Refusal, refusal, TOKEN_NOT_ACCEPTED } from "./refusal.ts";

export type TokenRecord = {
  id: string;
  secretSha256: string;
  cluster: string;
  createdAt: string;
  expiresAt: string | undefined;
  description: string;
  /** node names this token admits: a glob ("*" = any; "edge-*" = names starting with edge-) */
  nodePattern?: string;
  /** how many distinct nodes may join with it (0 or absent = DEFAULT_TOKEN_MAX_NODES; filled in when read) */
  maxNodes?: number;
  /** nodes that joined with it (kept as their own keys; filled in when read) */
  nodes?: string[];
  /** how its agents reach backends: pod IPs, or node IP + NodePort (edge nodes, hosts) */
  reach?: "pod" | "nodeport";
};

export type TokenGrant = { id: string; cluster: string; reach: "pod" | "nodeport" };

const TOKEN_RE = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
/** distinct nodes a token admits when it was created without --max-nodes */
export const DEFAULT_TOKEN_MAX_NODES = 1000;
/** the most --max-nodes may say */
export const MAX_TOKEN_MAX_NODES = 1_000_000;
/** compared against when the id is unknown: the same work as for a wrong secret */
const NO_SECRET = Buffer.alloc(32);

/** The token id a bearer names, if it looks like a join token: the per-id failure limit counts it. */
export function tokenIdOf(bearer: string): string | undefined {
  return /^([a-z0-9]{6})\./.exec(bearer)?.[1];
}
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

/** Checks what a new token admits (CLI and admin API alike); the reason names the field. */
export function checkTokenScope(scope: {
  nodePattern: string;
  reach: string;
  maxNodes?: number;
}): string | undefined {
  if (
    scope.maxNodes !== undefined &&
    (!Number.isInteger(scope.maxNodes) || scope.maxNodes < 0 || scope.maxNodes > MAX_TOKEN_MAX_NODES)
  )
    return `max nodes "${scope.maxNodes}" must be a whole number from 1 to ${MAX_TOKEN_MAX_NODES} (0 = the default, ${DEFAULT_TOKEN_MAX_NODES})`;
  if (!/^[a-z0-9.*-]+$/.test(scope.nodePattern))
    return `node pattern "${scope.nodePattern}" may hold lowercase letters, digits, '-', '.' and '*'`;
  if (scope.reach !== "pod" && scope.reach !== "nodeport")
    return `reach "${scope.reach}" must be pod or nodeport`;
  return undefined;
}

/**
 * Join tokens in the hub's shared state ("token/<id>", and
 * "tokennode/<id>/<node>" for each node a token admitted).
 */
export class TokenStore {
  private readonly state: HubState;
  /** node limit of tokens created without one */
  readonly defaultMaxNodes: number;

  constructor(state: HubState, opts: { defaultMaxNodes?: number } = {}) {
    this.state = state;
    this.defaultMaxNodes = opts.defaultMaxNodes ?? DEFAULT_TOKEN_MAX_NODES;
  }

  private maxNodesOf(r: TokenRecord): number {
    return r.maxNodes && r.maxNodes > 0 ? r.maxNodes : this.defaultMaxNodes;
  }

  private record(id: string): TokenRecord | undefined {
    const r = this.state.get<TokenRecord>(`token/${id}`);
    return r ? { ...r, maxNodes: this.maxNodesOf(r), nodes: this.nodesOf(id) } : undefined;
  }

  private nodesOf(id: string): string[] {
    return this.state.list<unknown>(`tokennode/${id}/`).map(([k]) => k.slice(`tokennode/${id}/`.length));
  }

  async create(
    cluster: string,
    opts: {
      ttlMs?: number;
      description?: string;
      now?: Date;
      nodePattern?: string;
      maxNodes?: number;
      reach?: "pod" | "nodeport";
    } = {},
  ): Promise<{ token: string; record: TokenRecord }> {
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
      reach: opts.reach ?? "pod",
    };
    if (!(await this.state.create(`token/${id}`, record))) return this.create(cluster, opts);
    return { token: `${id}.${secret}`, record: { ...record, nodes: [] } };
  }

  list(): TokenRecord[] {
    return this.state
      .list<TokenRecord>("token/")
      .map(([, r]) => ({ ...r, maxNodes: this.maxNodesOf(r), nodes: this.nodesOf(r.id) }))
      .sort((a, b) =>
        a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : 1,
      );
  }

  get(id: string): TokenRecord | undefined {
    return this.record(id);
  }

  /** When the token was created (cheap: no node list). */
  createdAt(id: string): string | undefined {
    return this.state.get<TokenRecord>(`token/${id}`)?.createdAt;
  }

  exists(id: string): boolean {
    return this.state.get(`token/${id}`) !== undefined;
  }

  async revoke(id: string): Promise<boolean> {
    if (!this.exists(id)) return false;
    await this.state.delete(`token/${id}`);
    for (const [k] of this.state.list(`tokennode/${id}/`)) await this.state.delete(k);
    return true;
  }

  /** Is the token behind a grant still valid (not revoked, not expired)? Checked again while streams run. */
  stillValid(id: string, now: Date = new Date()): Result<true> {
    const rec = this.state.get<TokenRecord>(`token/${id}`);
    if (!rec) return err(`join token ${id} was revoked`);
    if (rec.expiresAt && new Date(rec.expiresAt).getTime() <= now.getTime())
      return err(`join token ${id} expired at ${rec.expiresAt}`);
    return ok(true);
  }

  /** Admits a node under a token's scope (name pattern, node limit) and records it. */
  async admitNode(id: string, node: string): Promise<Result<true>> {
    const rec = this.state.get<TokenRecord>(`token/${id}`);
    if (!rec) return err(`join token ${id} was revoked`);
    const pattern = rec.nodePattern ?? "*";
    if (!globMatch(pattern, node))
      return err(`join token ${id} admits nodes named "${pattern}", not "${node}"`);
    const key = `tokennode/${id}/${node}`;
    if (this.state.get(key) !== undefined) return ok(true);
    const max = this.maxNodesOf(rec);
    const tooMany = () =>
      err(
        `join token ${id} has already admitted its ${max} node(s)${rec.maxNodes ? "" : " (the limit of tokens created without --max-nodes)"}; create another token for "${node}", or one with a larger --max-nodes`,
      );
    if (this.nodesOf(id).length >= max) return tooMany();
    await this.state.create(key, { at: new Date().toISOString() });
    // another replica may have admitted a node at the same moment: the limit still holds
    if (this.nodesOf(id).length > max) {
      await this.state.delete(key);
      return tooMany();
    }
    return ok(true);
  }

  /**
   * Checks a presented token. An unknown id and a wrong secret get the same
   * message (the reason and detail are for the hub's log); an expired token
   * is named as such only to whoever holds its secret.
   */
  verify(token: string, now: Date = new Date()): Result<TokenGrant, Refusal> {
    const m = TOKEN_RE.exec(token);
    if (!m)
      return err(
        refusal(
          "token-malformed",
          "join token is malformed: expected <6 chars>.<16 chars> from `switchyard-hub token create`",
        ),
      );
    const id = m[1]!;
    const rec = this.state.get<TokenRecord>(`token/${id}`);
    const a = Buffer.from(sha256(m[2]!), "hex");
    const b = rec ? Buffer.from(rec.secretSha256, "hex") : NO_SECRET;
    const same = a.length === b.length && timingSafeEqual(a, b);
    if (!rec)
      return err(refusal("token-unknown", TOKEN_NOT_ACCEPTED, `join token ${id} is unknown or revoked`));
    if (!same)
      return err(refusal("token-wrong-secret", TOKEN_NOT_ACCEPTED, `join token ${id} has a wrong secret`));
    if (rec.expiresAt && new Date(rec.expiresAt).getTime() <= now.getTime())
      return err(refusal("token-expired", `join token ${id} expired at ${rec.expiresAt}; create a new one`));
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
