import assert from "node:assert/strict";
import { createPrivateKey, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { FileState } from "../state/hub-state.ts";
import { CredentialAuthority } from "./credentials.ts";
import { KEK_FILE_NAME, type Kek, loadKek, openKey, parseKek, sealKey } from "./signing-key.ts";
import { TokenStore } from "./tokens.ts";

const dirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "sy-signing-key-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function kek(seed = 1): Kek {
  const k = parseKek(Buffer.alloc(32, seed).toString("base64"), `kek ${seed}`);
  if (!k.ok) throw new Error(k.error);
  return k.value;
}
const pem = () =>
  generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();

describe("signing key at rest", () => {
  it("reads a KEK as base64 or hex, and says how to make one otherwise", () => {
    const raw = randomBytes(32);
    const b64 = parseKek(`${raw.toString("base64")}\n`, "f");
    const hex = parseKek(raw.toString("hex"), "f");
    assert.ok(b64.ok && hex.ok);
    assert.equal(b64.value.fingerprint, hex.value.fingerprint);
    for (const bad of ["", "short", randomBytes(16).toString("base64"), randomBytes(31).toString("hex")]) {
      const r = parseKek(bad, "--signing-key-kek-file /etc/kek");
      assert.ok(!r.ok, bad);
      assert.match(r.error, /^--signing-key-kek-file \/etc\/kek: .*32 random bytes.*openssl rand -base64 32/);
    }
  });

  it("seals a key that opens only with its KEK, under its own id, unaltered", () => {
    const p = pem();
    const s = sealKey("k1", p, kek(1));
    assert.ok(!JSON.stringify(s).includes("PRIVATE KEY"));
    const back = openKey(s, kek(1));
    assert.ok(back.ok);
    assert.equal(back.value, p);
    const wrongKek = openKey(s, kek(2));
    assert.ok(!wrongKek.ok);
    assert.match(
      wrongKek.error,
      /sealed with key-encryption key [0-9a-f]{12}, but this hub has [0-9a-f]{12} \(kek 2\)/,
    );
    const moved = openKey({ ...s, id: "k2" }, kek(1));
    assert.ok(!moved.ok, "a sealed key moved to another id does not open");
    const [iv, data, tag] = s.sealed.split(".") as [string, string, string];
    const flipped = Buffer.from(data, "base64url");
    flipped[0] = flipped[0]! ^ 1;
    const altered = openKey({ ...s, sealed: [iv, flipped.toString("base64url"), tag].join(".") }, kek(1));
    assert.ok(!altered.ok);
    assert.match(altered.error, /was altered/);
  });

  it("seals a key an older hub left in clear on start; its credentials still verify and the file holds no clear key", async () => {
    const dir = tmpDir();
    const state = new FileState(dir);
    const { record } = await new TokenStore(state).create("east");
    const clear = pem();
    await state.put("signing-key", { id: "0ld0ld00", pem: clear });
    await state.close();
    // a credential the older hub signed with it (sya1.<payload>.<Ed25519 signature>)
    const now = Date.now();
    const body = Buffer.from(
      JSON.stringify({
        c: "east",
        n: "n1",
        r: "pod",
        t: record.id,
        iat: now,
        exp: now + 60_000,
        k: "0ld0ld00",
        j: "x",
      }),
    ).toString("base64url");
    const token = `sya1.${body}.${sign(null, Buffer.from(body), createPrivateKey(clear)).toString("base64url")}`;
    const opened = await CredentialAuthority.open(new FileState(dir), 60_000, kek(1));
    assert.equal(opened.opened, "sealed");
    assert.ok(opened.verify(token).ok);
    await new Promise((r) => setTimeout(r, 120));
    const text = fs.readFileSync(path.join(dir, "state.json"), "utf8");
    assert.doesNotMatch(text, /PRIVATE KEY/);
    assert.match(text, /"signing-key": \{"id":"0ld0ld00","alg":"aes-256-gcm"/);
    const again = await CredentialAuthority.open(new FileState(dir), 60_000, kek(1));
    assert.equal(again.opened, "loaded");
    assert.equal(again.keyId, "0ld0ld00", "the same key, sealed");
    assert.ok(again.verify(token).ok, "credentials signed before are still good");
  });

  it("refuses to start with another KEK than the one the key is sealed with", async () => {
    const dir = tmpDir();
    await CredentialAuthority.open(new FileState(dir), 60_000, kek(1));
    await new Promise((r) => setTimeout(r, 120));
    await assert.rejects(
      CredentialAuthority.open(new FileState(dir), 60_000, kek(2)),
      /sealed with key-encryption key [0-9a-f]{12}, but this hub has [0-9a-f]{12} \(kek 2\): give every hub the same --signing-key-kek-file/,
    );
  });

  it("takes the KEK from the file given, else the environment; on NATS it must be given; on a state file it makes one beside it", () => {
    const dir = tmpDir();
    const file = path.join(dir, "kek");
    fs.writeFileSync(file, randomBytes(32).toString("base64"), { mode: 0o644 });
    fs.chmodSync(file, 0o644);
    const fromFile = loadKek({ file, env: kek(3).key.toString("hex"), stateDir: dir, shared: true });
    assert.ok(fromFile.ok);
    assert.notEqual(fromFile.value.kek.fingerprint, kek(3).fingerprint, "the file wins over the environment");
    assert.match(fromFile.value.notes.join("\n"), /can be read by others than its owner: chmod 600/);
    const fromEnv = loadKek({
      file: undefined,
      env: kek(3).key.toString("hex"),
      stateDir: dir,
      shared: true,
    });
    assert.ok(fromEnv.ok);
    assert.equal(fromEnv.value.kek.fingerprint, kek(3).fingerprint);
    const none = loadKek({ file: undefined, env: undefined, stateDir: dir, shared: true });
    assert.ok(!none.ok);
    assert.match(none.error, /--state-nats: .*--signing-key-kek-file FILE or SWITCHYARD_HUB_KEK/);
    const missing = loadKek({ file: path.join(dir, "nope"), env: undefined, stateDir: dir, shared: false });
    assert.ok(!missing.ok);
    assert.match(missing.error, /--signing-key-kek-file .*nope: ENOENT/);
    const stateDir = path.join(dir, "state");
    const made = loadKek({ file: undefined, env: undefined, stateDir, shared: false });
    assert.ok(made.ok);
    assert.equal(made.value.created, true);
    assert.equal(fs.statSync(path.join(stateDir, KEK_FILE_NAME)).mode & 0o777, 0o600);
    const reused = loadKek({ file: undefined, env: undefined, stateDir, shared: false });
    assert.ok(reused.ok);
    assert.equal(reused.value.created, false);
    assert.equal(reused.value.kek.fingerprint, made.value.kek.fingerprint);
  });
});
