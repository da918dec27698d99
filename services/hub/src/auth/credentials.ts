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
 *
 * The private key is kept sealed in the shared state (signing-key.ts); a
 * key stored in clear by an earlier hub is sealed when a hub opens it.
 *
 * Refusals: a malformed, forged or tampered credential, or one of a key
 * these hubs never had, gets one answer (telling them apart helps only
 * someone forging); what is said about a genuine credential (expired,
 * revoked, its key retired) is said only after its signature checked out.
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
import { CREDENTIAL_NOT_ACCEPTED, type Refusal, type RefusalReason, refusal } from "./refusal.ts";
import { type ClearKey, isSealed, type Kek, openKey, type SealedKey, sealKey } from "./signing-key.ts";

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

/** The current key: `signing-key` in the shared state (private, PKCS#8 PEM, sealed; in clear from older hubs). */
type StoredKey = SealedKey | ClearKey;
/** A key that was current before a rotation: `signing-key-previous/<id>`, public only. */
export type PreviousKey = { id: string; publicPem: string; retiredAt: string; validUntil: string };

export type Rotation = { keyId: string; previousKeyId: string; previousValidUntil: string };

function newKey(kek: Kek): SealedKey {
  const { privateKey } = generateKeyPairSync("ed25519");
  return sealKey(
    randomBytes(4).toString("hex"),
    privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    kek,
  );
}

export function isCredential(bearer: string): boolean {
  return bearer.startsWith(PREFIX);
}

export class CredentialAuthority {
  private readonly state: HubState;
  readonly ttlMs: number;
  private readonly kek: Kek;
  /** how open found the key: made now, as it was, or sealed now (it was in clear) */
  opened: "created" | "loaded" | "sealed" = "loaded";
  /** parsed keys by their stored text (parsing or unsealing it per stream would be waste) */
  private readonly parsed = new Map<string, { key: KeyObject; pub: KeyObject }>();

  private constructor(state: HubState, ttlMs: number, kek: Kek) {
    this.state = state;
    this.ttlMs = ttlMs;
    this.kek = kek;
  }

  /**
   * Loads the shared signing key, creating it if this is the first hub
   * (replicas race safely), and seals one an older hub stored in clear.
   * Throws when the key cannot be opened with this KEK.
   */
  static async open(state: HubState, ttlMs: number, kek: Kek): Promise<CredentialAuthority> {
    const ca = new CredentialAuthority(state, ttlMs, kek);
    const stored = state.get<StoredKey>("signing-key");
    if (!stored) {
      await state.create("signing-key", newKey(kek));
      if (!state.get<StoredKey>("signing-key"))
        throw new Error("the shared state holds no signing key and none could be created");
      ca.opened = "created";
    } else if (!isSealed(stored)) {
      await state.put("signing-key", sealKey(stored.id, stored.pem, kek));
      // the bucket's history must not keep the clear text
      await state.forgetHistory?.("signing-key");
      ca.opened = "sealed";
    }
    ca.current();
    return ca;
  }

  /** The key stored text holds (a sealed or clear private key, or a public key) and its public half. */
  private parse(text: string, open: () => string = () => text): { key: KeyObject; pub: KeyObject } {
    let k = this.parsed.get(text);
    if (!k) {
      const pem = open();
      const key = pem.includes("PRIVATE KEY") ? createPrivateKey(pem) : createPublicKey(pem);
      k = { key, pub: key.type === "private" ? createPublicKey(key) : key };
      this.parsed.set(text, k);
    }
    return k;
  }

  /** The current signing key (read from the shared state each time: another replica may have rotated it). */
  private current(): { id: string; key: KeyObject; pub: KeyObject } {
    const k = this.state.get<StoredKey>("signing-key");
    if (!k) throw new Error("the shared state lost the hub signing key");
    if (!isSealed(k)) return { id: k.id, ...this.parse(k.pem) };
    return {
      id: k.id,
      ...this.parse(k.sealed, () => {
        const pem = openKey(k, this.kek);
        if (!pem.ok) throw new Error(pem.error);
        return pem.value;
      }),
    };
  }

  get keyId(): string {
    return this.current().id;
  }

  /** The public key of hub key `id` (current, or previous while remembered, retired or not). */
  private publicKey(id: string): { pub: KeyObject; previous?: PreviousKey } | undefined {
    const cur = this.current();
    if (id === cur.id) return { pub: cur.pub };
    const prev = this.state.get<PreviousKey>(`signing-key-previous/${id}`);
    return prev ? { pub: this.parse(prev.publicPem).pub, previous: prev } : undefined;
  }

  /** Why credentials of hub key `id` are no longer accepted, if they are not. */
  private keyRetired(id: string, now: Date): string | undefined {
    const k = this.publicKey(id);
    if (!k) return `agent credential was signed with hub key ${id}, which these hubs do not have`;
    if (k.previous && new Date(k.previous.validUntil).getTime() <= now.getTime())
      return `agent credential was signed with hub key ${id}, retired at ${k.previous.retiredAt}`;
    return undefined;
  }

  /**
   * Makes a new key current. The previous one still verifies the credentials
   * it signed until they expire (one credential lifetime), or no longer at
   * all with `retireNow`. Open streams get credentials of the new key within
   * a second (needsRotation).
   */
  async rotate(opts: { retireNow?: boolean } = {}, now: Date = new Date()): Promise<Rotation> {
    if (!this.state.get<StoredKey>("signing-key"))
      throw new Error("the shared state holds no signing key to rotate");
    const old = this.current();
    const validUntil = new Date(opts.retireNow ? now.getTime() : now.getTime() + this.ttlMs).toISOString();
    const previous: PreviousKey = {
      id: old.id,
      publicPem: old.pub.export({ type: "spki", format: "pem" }).toString(),
      retiredAt: now.toISOString(),
      validUntil,
    };
    // the old key is recorded before the new one takes over: no moment where its credentials are unknown
    await this.state.put(`signing-key-previous/${old.id}`, previous);
    const fresh = newKey(this.kek);
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

  /**
   * Checks a presented credential. A malformed, forged or tampered one, or
   * one of a key these hubs never had, gets the same message (the reason
   * and detail are for the hub's log); a genuine one is told why it no
   * longer holds.
   */
  verify(token: string, now: Date = new Date()): Result<AgentIdentity, Refusal> {
    const notAccepted = (reason: RefusalReason, detail: string) =>
      err(refusal(reason, CREDENTIAL_NOT_ACCEPTED, detail));
    if (!isCredential(token)) return notAccepted("credential-malformed", "not an agent credential");
    const parts = token.slice(PREFIX.length).split(".");
    if (parts.length !== 2) return notAccepted("credential-malformed", "agent credential is malformed");
    const [body, sig] = parts as [string, string];
    // the payload names the key to check the signature with; nothing in it is trusted before that
    let p: Payload;
    try {
      p = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Payload;
    } catch {
      return notAccepted("credential-malformed", "agent credential is malformed");
    }
    if (typeof p !== "object" || p === null || typeof p.k !== "string")
      return notAccepted("credential-malformed", "agent credential is malformed");
    const key = this.publicKey(p.k);
    if (!key)
      return notAccepted(
        "credential-unknown-key",
        `agent credential was signed with hub key ${p.k.slice(0, 16)}, which these hubs do not have`,
      );
    let good = false;
    try {
      good = verify(null, Buffer.from(body), key.pub, Buffer.from(sig, "base64url"));
    } catch {
      good = false;
    }
    if (!good)
      return notAccepted(
        "credential-bad-signature",
        "agent credential has a bad signature (forged or altered, not issued by these hubs)",
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
    const still = this.whyNotValid(id, now);
    if (still) return err(refusal(still.reason, `${still.message}; join again with a join token`));
    return ok(id);
  }

  /** Re-checked while a stream runs: expiry and revocations (the signature was checked at connect). */
  stillValid(id: AgentIdentity, now: Date = new Date()): Result<true> {
    const why = this.whyNotValid(id, now);
    return why ? err(why.message) : ok(true);
  }

  private whyNotValid(id: AgentIdentity, now: Date): { reason: RefusalReason; message: string } | undefined {
    const who = `${id.cluster}/${id.node}`;
    if (id.expiresAt <= now.getTime())
      return { reason: "credential-expired", message: `agent credential of ${who} expired` };
    const retired = this.keyRetired(id.keyId, now);
    if (retired) return { reason: "credential-key-retired", message: retired };
    const revoked = this.state.get<{ at: string }>(`revoked/${id.cluster}/${id.node}`);
    if (revoked && new Date(revoked.at).getTime() >= id.issuedAt)
      return { reason: "credential-revoked", message: `agent ${who} was revoked at ${revoked.at}` };
    if (this.state.get(`token/${id.tokenId}`) === undefined)
      return {
        reason: "credential-revoked",
        message: `the join token ${id.tokenId} that admitted agent ${who} was revoked`,
      };
    return undefined;
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
