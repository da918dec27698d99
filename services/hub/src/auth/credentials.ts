/**
 * Per-agent credentials. An agent joins once with a join token; the hub
 * then issues it a credential bound to its cluster and node name, signed
 * with the hubs' shared Ed25519 key:
 *
 *     sya1.<base64url(JSON payload)>.<base64url(signature)>
 *
 * The agent presents it on every later stream (the join token may expire
 * meanwhile, as kubeadm's bootstrap tokens do). The hub sends a fresh one
 * when a third of its lifetime is left (rotation). A credential is refused
 * when it is expired, forged, for another node, when its agent was revoked
 * after it was issued, or when the join token that admitted the agent was
 * revoked (revoking a token removes everything it let in).
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
  verify,
} from "node:crypto";
import { err, ok, type Result } from "@switchyard/lib/errors";
import type { HubState } from "../state/hub-state.ts";

export type AgentIdentity = {
  cluster: string;
  node: string;
  reach: "pod" | "nodeport";
  /** the join token that admitted the agent */
  tokenId: string;
  /** ms since epoch */
  issuedAt: number;
  expiresAt: number;
};

type Payload = {
  c: string;
  n: string;
  r: "pod" | "nodeport";
  t: string;
  iat: number;
  exp: number;
  k: string;
  j: string;
};

export type IssuedCredential = { token: string; identity: AgentIdentity };

export type AgentRecord = {
  cluster: string;
  node: string;
  tokenId: string;
  issuedAt: string;
  expiresAt: string;
};

const PREFIX = "sya1.";

export function isCredential(bearer: string): boolean {
  return bearer.startsWith(PREFIX);
}

export class CredentialAuthority {
  private readonly state: HubState;
  readonly ttlMs: number;
  private readonly key: KeyObject;
  private readonly pub: KeyObject;
  private readonly keyId: string;

  private constructor(state: HubState, ttlMs: number, pem: string, keyId: string) {
    this.state = state;
    this.ttlMs = ttlMs;
    this.key = createPrivateKey(pem);
    this.pub = createPublicKey(this.key);
    this.keyId = keyId;
  }

  /** Loads the shared signing key, creating it if this is the first hub (replicas race safely). */
  static async open(state: HubState, ttlMs: number): Promise<CredentialAuthority> {
    type Stored = { pem: string; id: string };
    let k = state.get<Stored>("signing-key");
    if (!k) {
      const { privateKey } = generateKeyPairSync("ed25519");
      const fresh = {
        pem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
        id: randomBytes(4).toString("hex"),
      };
      if (await state.create("signing-key", fresh)) k = fresh;
      else k = state.get<Stored>("signing-key");
      if (!k) throw new Error("the shared state holds no signing key and none could be created");
    }
    return new CredentialAuthority(state, ttlMs, k.pem, k.id);
  }

  /** Signs a credential for an admitted agent and records it (for `switchyard-hub agents`). */
  async issue(
    who: { cluster: string; node: string; reach: "pod" | "nodeport"; tokenId: string },
    now: Date = new Date(),
  ): Promise<IssuedCredential> {
    const iat = now.getTime();
    const payload: Payload = {
      c: who.cluster,
      n: who.node,
      r: who.reach,
      t: who.tokenId,
      iat,
      exp: iat + this.ttlMs,
      k: this.keyId,
      j: randomBytes(6).toString("hex"),
    };
    const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
    const sig = sign(null, Buffer.from(body), this.key).toString("base64url");
    const record: AgentRecord = {
      cluster: who.cluster,
      node: who.node,
      tokenId: who.tokenId,
      issuedAt: new Date(iat).toISOString(),
      expiresAt: new Date(payload.exp).toISOString(),
    };
    await this.state.put(`agent/${who.cluster}/${who.node}`, record);
    return {
      token: `${PREFIX}${body}.${sig}`,
      identity: { ...who, issuedAt: iat, expiresAt: payload.exp },
    };
  }

  /** Checks a presented credential. Reasons are safe to show the agent. */
  verify(token: string, now: Date = new Date()): Result<AgentIdentity> {
    if (!isCredential(token)) return err("not an agent credential");
    const parts = token.slice(PREFIX.length).split(".");
    if (parts.length !== 2) return err("agent credential is malformed");
    const [body, sig] = parts as [string, string];
    let good = false;
    try {
      good = verify(null, Buffer.from(body), this.pub, Buffer.from(sig, "base64url"));
    } catch {
      good = false;
    }
    if (!good)
      return err(
        "agent credential has a bad signature (not issued by these hubs); join again with a join token",
      );
    let p: Payload;
    try {
      p = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Payload;
    } catch {
      return err("agent credential is malformed");
    }
    const id: AgentIdentity = {
      cluster: p.c,
      node: p.n,
      reach: p.r,
      tokenId: p.t,
      issuedAt: p.iat,
      expiresAt: p.exp,
    };
    const still = this.stillValid(id, now);
    if (!still.ok) return err(`${still.error}; join again with a join token`);
    return ok(id);
  }

  /** Re-checked while a stream runs: expiry and revocations (the signature was checked at connect). */
  stillValid(id: AgentIdentity, now: Date = new Date()): Result<true> {
    const who = `${id.cluster}/${id.node}`;
    if (id.expiresAt <= now.getTime()) return err(`agent credential of ${who} expired`);
    const revoked = this.state.get<{ at: string }>(`revoked/${id.cluster}/${id.node}`);
    if (revoked && new Date(revoked.at).getTime() >= id.issuedAt)
      return err(`agent ${who} was revoked at ${revoked.at}`);
    if (this.state.get(`token/${id.tokenId}`) === undefined)
      return err(`the join token ${id.tokenId} that admitted agent ${who} was revoked`);
    return ok(true);
  }

  /** Time to send a fresh credential: less than a third of its lifetime left. */
  needsRotation(id: AgentIdentity, now: Date = new Date()): boolean {
    return id.expiresAt - now.getTime() < (id.expiresAt - id.issuedAt) / 3;
  }

  /** Every credential of the agent issued until now stops working. */
  async revokeAgent(cluster: string, node: string, now: Date = new Date()): Promise<void> {
    await this.state.put(`revoked/${cluster}/${node}`, { at: now.toISOString() });
  }

  /** When the agent was last revoked (ms since epoch), if ever. */
  revokedAt(cluster: string, node: string): number | undefined {
    const r = this.state.get<{ at: string }>(`revoked/${cluster}/${node}`);
    return r ? new Date(r.at).getTime() : undefined;
  }

  agents(): AgentRecord[] {
    return this.state.list<AgentRecord>("agent/").map(([, r]) => r);
  }
}
