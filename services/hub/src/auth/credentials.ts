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
 *
 * Signing-key rotation (`switchyard-hub signing-key rotate`): a new key
 * becomes current for every replica (shared state); every open stream whose
 * credential was signed with another key gets a fresh one within a second
 * (the rotation check); credentials of the previous key stay valid until
 * they would expire anyway (one credential lifetime), or not at all with
 * `--retire-now` (a leaked key: those agents are cut off and must join
 * again with a join token).
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
  /** the hub signing key it was signed with */
  keyId: string;
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

/** The current key: `signing-key` in the shared state (private, PKCS#8 PEM). */
type StoredKey = { pem: string; id: string };
/** A key that was current before a rotation: `signing-key-previous/<id>`, public only. */
export type PreviousKey = { id: string; publicPem: string; retiredAt: string; validUntil: string };

export type Rotation = { keyId: string; previousKeyId: string; previousValidUntil: string };

function newKey(): StoredKey {
  const { privateKey } = generateKeyPairSync("ed25519");
  return {
    pem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    id: randomBytes(4).toString("hex"),
  };
}

export function isCredential(bearer: string): boolean {
  return bearer.startsWith(PREFIX);
}

export class CredentialAuthority {
  private readonly state: HubState;
  readonly ttlMs: number;
  /** parsed keys by PEM (the shared state holds PEM text; parsing it per stream would be waste) */
  private readonly parsed = new Map<string, { key: KeyObject; pub: KeyObject }>();

  private constructor(state: HubState, ttlMs: number) {
    this.state = state;
    this.ttlMs = ttlMs;
  }

  /** Loads the shared signing key, creating it if this is the first hub (replicas race safely). */
  static async open(state: HubState, ttlMs: number): Promise<CredentialAuthority> {
    if (!state.get<StoredKey>("signing-key")) {
      await state.create("signing-key", newKey());
      if (!state.get<StoredKey>("signing-key"))
        throw new Error("the shared state holds no signing key and none could be created");
    }
    return new CredentialAuthority(state, ttlMs);
  }

  /** The key a PEM holds (private or public) and its public half. */
  private parse(pem: string): { key: KeyObject; pub: KeyObject } {
    let k = this.parsed.get(pem);
    if (!k) {
      const key = pem.includes("PRIVATE KEY") ? createPrivateKey(pem) : createPublicKey(pem);
      k = { key, pub: key.type === "private" ? createPublicKey(key) : key };
      this.parsed.set(pem, k);
    }
    return k;
  }

  /** The current signing key (read from the shared state each time: another replica may have rotated it). */
  private current(): { id: string; key: KeyObject; pub: KeyObject } {
    const k = this.state.get<StoredKey>("signing-key");
    if (!k) throw new Error("the shared state lost the hub signing key");
    return { id: k.id, ...this.parse(k.pem) };
  }

  get keyId(): string {
    return this.current().id;
  }

  /** The public key a credential signed with key `id` is checked against, or why there is none. */
  private verifyingKey(id: string, now: Date): Result<KeyObject> {
    const cur = this.current();
    if (id === cur.id) return ok(cur.pub);
    const prev = this.state.get<PreviousKey>(`signing-key-previous/${id}`);
    if (!prev) return err(`agent credential was signed with hub key ${id}, which these hubs do not have`);
    if (new Date(prev.validUntil).getTime() <= now.getTime())
      return err(`agent credential was signed with hub key ${id}, retired at ${prev.retiredAt}`);
    return ok(this.parse(prev.publicPem).pub);
  }

  /**
   * Makes a new key current. The previous one still verifies the credentials
   * it signed until they expire (one credential lifetime), or no longer at
   * all with `retireNow`. Open streams get credentials of the new key within
   * a second (needsRotation).
   */
  async rotate(opts: { retireNow?: boolean } = {}, now: Date = new Date()): Promise<Rotation> {
    const old = this.state.get<StoredKey>("signing-key");
    if (!old) throw new Error("the shared state holds no signing key to rotate");
    const validUntil = new Date(opts.retireNow ? now.getTime() : now.getTime() + this.ttlMs).toISOString();
    const previous: PreviousKey = {
      id: old.id,
      publicPem: createPublicKey(createPrivateKey(old.pem))
        .export({ type: "spki", format: "pem" })
        .toString(),
      retiredAt: now.toISOString(),
      validUntil,
    };
    // the old key is recorded before the new one takes over: no moment where its credentials are unknown
    await this.state.put(`signing-key-previous/${old.id}`, previous);
    const fresh = newKey();
    await this.state.put("signing-key", fresh);
    // keys whose credentials have all expired are forgotten
    for (const [k, p] of this.state.list<PreviousKey>("signing-key-previous/"))
      if (new Date(p.validUntil).getTime() + this.ttlMs < now.getTime()) await this.state.delete(k);
    return { keyId: fresh.id, previousKeyId: old.id, previousValidUntil: validUntil };
  }

  /** Signs a credential for an admitted agent and records it (for `switchyard-hub agents`). */
  async issue(
    who: { cluster: string; node: string; reach: "pod" | "nodeport"; tokenId: string },
    now: Date = new Date(),
  ): Promise<IssuedCredential> {
    const iat = now.getTime();
    const key = this.current();
    const payload: Payload = {
      c: who.cluster,
      n: who.node,
      r: who.reach,
      t: who.tokenId,
      iat,
      exp: iat + this.ttlMs,
      k: key.id,
      j: randomBytes(6).toString("hex"),
    };
    const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
    const sig = sign(null, Buffer.from(body), key.key).toString("base64url");
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
      identity: { ...who, issuedAt: iat, expiresAt: payload.exp, keyId: key.id },
    };
  }

  /** Checks a presented credential. Reasons are safe to show the agent. */
  verify(token: string, now: Date = new Date()): Result<AgentIdentity> {
    if (!isCredential(token)) return err("not an agent credential");
    const parts = token.slice(PREFIX.length).split(".");
    if (parts.length !== 2) return err("agent credential is malformed");
    const [body, sig] = parts as [string, string];
    // the payload names the key to check the signature with; nothing in it is trusted before that
    let p: Payload;
    try {
      p = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Payload;
    } catch {
      return err("agent credential is malformed");
    }
    if (typeof p !== "object" || p === null || typeof p.k !== "string")
      return err("agent credential is malformed");
    const key = this.verifyingKey(p.k, now);
    let good = false;
    try {
      good = key.ok && verify(null, Buffer.from(body), key.value, Buffer.from(sig, "base64url"));
    } catch {
      good = false;
    }
    if (!key.ok) return err(`${key.error}; join again with a join token`);
    if (!good)
      return err(
        "agent credential has a bad signature (not issued by these hubs); join again with a join token",
      );
    const id: AgentIdentity = {
      cluster: p.c,
      node: p.n,
      reach: p.r,
      tokenId: p.t,
      issuedAt: p.iat,
      expiresAt: p.exp,
      keyId: p.k,
    };
    const still = this.stillValid(id, now);
    if (!still.ok) return err(`${still.error}; join again with a join token`);
    return ok(id);
  }

  /** Re-checked while a stream runs: expiry and revocations (the signature was checked at connect). */
  stillValid(id: AgentIdentity, now: Date = new Date()): Result<true> {
    const who = `${id.cluster}/${id.node}`;
    if (id.expiresAt <= now.getTime()) return err(`agent credential of ${who} expired`);
    const key = this.verifyingKey(id.keyId, now);
    if (!key.ok) return err(key.error);
    const revoked = this.state.get<{ at: string }>(`revoked/${id.cluster}/${id.node}`);
    if (revoked && new Date(revoked.at).getTime() >= id.issuedAt)
      return err(`agent ${who} was revoked at ${revoked.at}`);
    if (this.state.get(`token/${id.tokenId}`) === undefined)
      return err(`the join token ${id.tokenId} that admitted agent ${who} was revoked`);
    return ok(true);
  }

  /** Time to send a fresh credential: less than a third of its lifetime left, or signed with a key no longer current. */
  needsRotation(id: AgentIdentity, now: Date = new Date()): boolean {
    return id.expiresAt - now.getTime() < (id.expiresAt - id.issuedAt) / 3 || id.keyId !== this.current().id;
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
