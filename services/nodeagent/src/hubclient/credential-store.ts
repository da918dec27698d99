/**
 * The agent's own credential, issued by the hub after it joined with a join
 * token and rotated by the hub before it expires. Kept in the agent's state
 * directory (mode 0600) for this node name only, so a restarted agent
 * reconnects without its join token (which may have expired meanwhile).
 */
import fs from "node:fs";
import path from "node:path";

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
    let s: Stored;
    try {
      s = JSON.parse(fs.readFileSync(this.file, "utf8")) as Stored;
    } catch {
      return undefined;
    }
    if (s.node !== this.node || typeof s.token !== "string") return undefined;
    if (!(new Date(s.expiresAt).getTime() > this.now())) return undefined;
    return { token: s.token, expiresAt: s.expiresAt };
  }

  save(token: string, expiresAt: string): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const body: Stored = { node: this.node, token, expiresAt };
    fs.writeFileSync(tmp, `${JSON.stringify(body)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, this.file);
  }

  clear(): void {
    fs.rmSync(this.file, { force: true });
  }
}
