/**
 * The agent's own credential, issued by the hub after it joined with a join
 * token and rotated by the hub before it expires. Kept in the agent's state
 * directory (mode 0600) for this node name only, so a restarted agent
 * reconnects without its join token (which may have expired meanwhile).
 * The NATS user the hub sends with it (when the hubs sign a NATS account)
 * is kept beside it as a standard .creds file (nats.creds, 0600), which the
 * events connection reads at every (re)connect (events/nats-auth.ts).
 * The credential names the agent's cluster (the hub binds it to the join
 * token's cluster), so a restarted agent knows it before any hub answers.
 */
import fs from "node:fs";
import path from "node:path";
import { NATS_CREDS_FILE } from "../events/nats-auth.ts";

type Stored = { node: string; token: string; expiresAt: string };

export class CredentialStore {
  private readonly file: string;
  private readonly node: string;
  private readonly now: () => number;

  constructor(stateDir: string, node: string, now: () => number = Date.now) {
    this.file = path.join(stateDir, "credential.json");
    this.node = node;
    this.now = now;
  }

  /** The stored credential, if it is this node's and not expired. */
  load(): { token: string; expiresAt: string } | undefined {
    const s = this.read();
    if (!s) return undefined;
    if (!(new Date(s.expiresAt).getTime() > this.now())) return undefined;
    return { token: s.token, expiresAt: s.expiresAt };
  }

  /**
   * The cluster the stored credential of this node is bound to, expired or
   * not (it is the same cluster until the node joins again), or undefined.
   */
  cluster(): string | undefined {
    const s = this.read();
    return s && parseCredentialCluster(s.token);
  }

  /** The stored record, if it is this node's. */
  private read(): Stored | undefined {
    let s: Stored | null;
    try {
      s = JSON.parse(fs.readFileSync(this.file, "utf8")) as Stored | null;
    } catch {
      return undefined;
    }
    return s?.node === this.node && typeof s.token === "string" ? s : undefined;
  }

  save(token: string, expiresAt: string, natsCreds = ""): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const body: Stored = { node: this.node, token, expiresAt };
    writeWhole(this.file, `${JSON.stringify(body)}\n`);
    if (natsCreds !== "") writeWhole(path.join(path.dirname(this.file), NATS_CREDS_FILE), natsCreds);
  }

  clear(): void {
    fs.rmSync(this.file, { force: true });
  }
}

/**
 * Pure: the cluster a hub credential (`sya1.<base64url JSON payload>.<sig>`,
 * hub auth/credentials.ts; field `c`) is bound to, or undefined when the
 * token is not one. The signature is the hub's to check: the agent only
 * reads what the hub issued to it.
 */
export function parseCredentialCluster(token: string): string | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== "sya1") return undefined;
  try {
    const p = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as { c?: unknown };
    return typeof p.c === "string" && p.c !== "" ? p.c : undefined;
  } catch {
    return undefined;
  }
}

/** Written beside, then renamed over: a reader never sees half of it. */
function writeWhole(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.renameSync(tmp, file);
}
