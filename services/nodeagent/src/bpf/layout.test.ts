/**
 * The TypeScript layout of every shared struct must match the compiled BPF
 * object's BTF (sizes and member offsets), so the header and user space
 * cannot drift apart.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { decodeSvcStats, EVENTS_DRAIN_MS, EVENTS_RING_BYTES, FLOW_EVENT_MS, LAYOUT } from "./layout.ts";

const OBJECT = path.resolve(import.meta.dirname, "../../../../bpf/build/switchyard.bpf.o");

type BtfType = {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  members?: Array<{ name: string; bits_offset: number; type_id: number }>;
  type_id?: number;
  nr_elems?: number;
};

function btfStructs(): Map<string, BtfType> {
  const bpftool = ["/usr/sbin/bpftool", "bpftool"].find((b) => {
    try {
      execFileSync(b, ["version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });
  assert.ok(bpftool, "bpftool is needed to read the object's BTF (npm run setup installs it)");
  const json = JSON.parse(
    execFileSync(bpftool, ["-j", "btf", "dump", "file", OBJECT], { encoding: "utf8" }),
  ) as { types: BtfType[] };
  const out = new Map<string, BtfType>();
  for (const t of json.types) if (t.kind === "STRUCT" && t.name) out.set(t.name, t);
  return out;
}

describe("shared struct layout", () => {
  const structs = btfStructs();
  for (const [name, layout] of Object.entries(LAYOUT)) {
    it(`${name} matches the BTF of the compiled object`, () => {
      const t = structs.get(name);
      assert.ok(t, `struct ${name} is not in the object's BTF`);
      assert.equal(t.size, layout.size, `sizeof(${name})`);
      const btfMembers = new Map(t.members!.map((m) => [m.name, m.bits_offset / 8]));
      assert.deepEqual(
        [...btfMembers.keys()].sort(),
        Object.keys(layout.fields).sort(),
        `members of ${name}`,
      );
      for (const [field, f] of Object.entries(layout.fields)) {
        assert.equal(btfMembers.get(field), f.offset, `offsetof(${name}, ${field})`);
      }
      // field sizes: each field ends where the next begins (or at the struct's end)
      const sorted = Object.entries(layout.fields).sort((a, b) => a[1].offset - b[1].offset);
      sorted.forEach(([field, f], i) => {
        const end = i + 1 < sorted.length ? sorted[i + 1]![1].offset : layout.size;
        assert.ok(f.offset + f.size <= end, `${name}.${field} overlaps the next field`);
      });
    });
  }
});

describe("constants shared with switchyard.h", () => {
  it("agree on the events ring size and drain period", () => {
    const h = fs.readFileSync(
      path.resolve(import.meta.dirname, "../../../../bpf/include/switchyard.h"),
      "utf8",
    );
    const define = (name: string) => {
      const m = new RegExp(`#define ${name} \\(?([^\\n/]+?)\\)?\\s*(?:/|\\n)`).exec(h);
      assert.ok(m, `${name} is defined`);
      const v = m[1]!.replace(/\s/g, "");
      const shift = /^1<<(\d+)$/.exec(v);
      return shift ? 2 ** Number(shift[1]) : Number(v);
    };
    assert.equal(define("SY_EVENTS_BYTES"), EVENTS_RING_BYTES);
    assert.equal(define("SY_EVENTS_DRAIN_MS"), EVENTS_DRAIN_MS);
    assert.equal(define("SY_FLOW_EVENT_MS"), FLOW_EVENT_MS);
  });
});

describe("sy_svc_stats values", () => {
  it("sum each result over the CPUs, in enum sy_stat order", () => {
    const v = Buffer.alloc(LAYOUT.sy_svc_stats.size * 2);
    v.writeBigUInt64LE(5n, 0); // CPU 0 ok
    v.writeBigUInt64LE(1n, 8); // CPU 0 noBackend
    v.writeBigUInt64LE(7n, 48); // CPU 1 ok
    v.writeBigUInt64LE(2n, 48 + 40); // CPU 1 fallback
    assert.deepEqual(decodeSvcStats(v, 2), {
      ok: 12n,
      noBackend: 1n,
      backendMissing: 0n,
      noLocalBackend: 0n,
      familyMismatch: 0n,
      fallback: 2n,
    });
  });
});
