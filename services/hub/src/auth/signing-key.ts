/**
 * The agent-credential signing key at rest. The shared state (the state
 * file, or the JetStream KV bucket replicas share) holds it only sealed:
 * AES-256-GCM under a key derived (HKDF-SHA256) from a key-encryption key
 * (KEK) that is not in the shared state: `--signing-key-kek-file FILE` or
 * the environment variable SWITCHYARD_HUB_KEK (32 random bytes, base64 or
 * hex: `openssl rand -base64 32`). Every replica is given the same KEK.
 *
 * A hub on a state file with no KEK given keeps one of its own beside the
 * file (STATE-DIR/signing-key.kek, 0600), so a copy of state.json alone does
 * not give the key away; on JetStream KV a KEK must be given (replicas
 * could not share one they each made up).
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { err, ok, type Result } from "@switchyard/lib/errors";

export const KEK_ENV = "SWITCHYARD_HUB_KEK";
export const KEK_FILE_NAME = "signing-key.kek";
const MAKE_ONE = "make one with `openssl rand -base64 32`";

/** A key-encryption key, with a fingerprint the sealed key names (so a wrong KEK is reported as such). */
export type Kek = { key: Buffer; fingerprint: string; source: string };

/** The signing key as the shared state holds it. */
export type SealedKey = { id: string; alg: "aes-256-gcm"; kek: string; sealed: string };

/** What hubs before the KEK stored: the PEM in clear (migrated on start). */
export type ClearKey = { id: string; pem: string };

export function isSealed(k: SealedKey | ClearKey): k is SealedKey {
  return "sealed" in k;
}

/** 32 bytes as base64 (44 characters) or hex (64); `source` names the file or variable in errors. */
export function parseKek(text: string, source: string): Result<Kek> {
  const t = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(t)) key = Buffer.from(t, "hex");
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t))
    key = Buffer.from(t, t.includes("-") || t.includes("_") ? "base64url" : "base64");
  if (key?.length !== 32)
    return err(`${source}: a key-encryption key is 32 random bytes in base64 or hex; ${MAKE_ONE}`);
  const fingerprint = createHash("sha256")
    .update("switchyard-hub kek")
    .update(key)
    .digest("hex")
    .slice(0, 12);
  return ok({ key, fingerprint, source });
}

function aeadKey(kek: Kek): Buffer {
  return Buffer.from(hkdfSync("sha256", kek.key, Buffer.alloc(0), "switchyard-hub signing-key v1", 32));
}

/** Seals a PEM private key under the KEK; the key id is bound to it (a blob cannot be moved to another id). */
export function sealKey(id: string, pem: string, kek: Kek): SealedKey {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", aeadKey(kek), iv);
  c.setAAD(Buffer.from(`signing-key/${id}`));
  const data = Buffer.concat([c.update(pem, "utf8"), c.final()]);
  const sealed = [iv, data, c.getAuthTag()].map((b) => b.toString("base64url")).join(".");
  return { id, alg: "aes-256-gcm", kek: kek.fingerprint, sealed };
}

/** The PEM inside a sealed key, or why it cannot be opened with this KEK. */
export function openKey(k: SealedKey, kek: Kek): Result<string> {
  if (k.kek !== kek.fingerprint)
    return err(
      `the hub signing key ${k.id} in the shared state is sealed with key-encryption key ${k.kek}, but this hub has ${kek.fingerprint} (${kek.source}): give every hub the same --signing-key-kek-file or ${KEK_ENV}`,
    );
  const parts = k.sealed.split(".");
  if (k.alg !== "aes-256-gcm" || parts.length !== 3)
    return err(`the hub signing key ${k.id} in the shared state is not a sealed key this hub can read`);
  const [iv, data, tag] = parts.map((p) => Buffer.from(p, "base64url")) as [Buffer, Buffer, Buffer];
  try {
    const d = createDecipheriv("aes-256-gcm", aeadKey(kek), iv);
    d.setAAD(Buffer.from(`signing-key/${k.id}`));
    d.setAuthTag(tag);
    return ok(Buffer.concat([d.update(data), d.final()]).toString("utf8"));
  } catch {
    return err(
      `the hub signing key ${k.id} in the shared state does not open with ${kek.source}: it was altered`,
    );
  }
}

/**
 * The KEK this hub (or CLI) uses: the file given, else SWITCHYARD_HUB_KEK,
 * else — on a state file only — STATE-DIR/signing-key.kek, made on first
 * use. `notes` are for the log (a file others can read, a KEK just made).
 */
export function loadKek(opts: {
  file: string | undefined;
  env: string | undefined;
  stateDir: string;
  /** the state is shared through NATS: a KEK must be given */
  shared: boolean;
}): Result<{ kek: Kek; created: boolean; notes: string[] }> {
  const notes: string[] = [];
  if (opts.file !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(opts.file, "utf8");
    } catch (e) {
      return err(`--signing-key-kek-file ${opts.file}: ${(e as Error).message}`);
    }
    const mode = fs.statSync(opts.file).mode & 0o077;
    if (mode !== 0)
      notes.push(`--signing-key-kek-file ${opts.file} can be read by others than its owner: chmod 600 it`);
    const k = parseKek(text, `--signing-key-kek-file ${opts.file}`);
    return k.ok ? ok({ kek: k.value, created: false, notes }) : k;
  }
  if (opts.env !== undefined && opts.env !== "") {
    const k = parseKek(opts.env, KEK_ENV);
    return k.ok ? ok({ kek: k.value, created: false, notes }) : k;
  }
  if (opts.shared)
    return err(
      `--state-nats: the hub signing key is kept sealed in the shared bucket; give every hub replica (and the CLI) the same key-encryption key with --signing-key-kek-file FILE or ${KEK_ENV} (${MAKE_ONE})`,
    );
  const file = path.join(opts.stateDir, KEK_FILE_NAME);
  let created = false;
  try {
    fs.mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    if (!fs.existsSync(file)) {
      // written whole beside it, then linked in place: a second process never reads half a key
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, `${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
      try {
        fs.linkSync(tmp, file);
        created = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      } finally {
        fs.rmSync(tmp, { force: true });
      }
    }
  } catch (e) {
    return err(`${file}: ${(e as Error).message}`);
  }
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    return err(`${file}: ${(e as Error).message}`);
  }
  const k = parseKek(text, file);
  return k.ok ? ok({ kek: k.value, created, notes }) : k;
}
