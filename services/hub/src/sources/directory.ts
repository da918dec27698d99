/**
 * A cluster made of a directory of Kubernetes YAML (the embedded default and
 * handy for hosts without a cluster). Files are watched: an edit, a new file
 * or a removed file is applied live. A file that does not parse is reported
 * and the objects it held before stay as they were.
 */
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "@switchyard/lib/log";
import { parseAllDocuments } from "yaml";
import type { KubeKind } from "../model/types.ts";
import { KINDS } from "./kube-objects.ts";
import type { ClusterSource, WorldWriter } from "./source.ts";

type Entry = { kind: KubeKind; namespace: string; name: string; json: string; raw: unknown };

function isYaml(f: string): boolean {
  return f.endsWith(".yaml") || f.endsWith(".yml");
}

/** Splits one YAML file into supported objects (List kinds are flattened). */
export function readObjects(text: string): { objects: unknown[]; error?: string } {
  const docs = parseAllDocuments(text);
  const objects: unknown[] = [];
  for (const d of Array.isArray(docs) ? docs : [docs]) {
    if (d.errors.length > 0) return { objects: [], error: d.errors.map((e) => e.message).join("; ") };
    const v = d.toJS() as unknown;
    if (v === null || v === undefined) continue;
    const o = v as Record<string, unknown>;
    if (typeof o["kind"] === "string" && o["kind"].endsWith("List") && Array.isArray(o["items"]))
      objects.push(...o["items"]);
    else objects.push(v);
  }
  return { objects };
}

export class DirectorySource implements ClusterSource {
  readonly cluster: string;
  private readonly dir: string;
  private readonly writer: WorldWriter;
  private readonly log: Logger;
  private readonly byFile = new Map<string, Map<string, Entry>>();
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(dir: string, writer: WorldWriter, log: Logger) {
    this.dir = dir;
    this.writer = writer;
    this.cluster = writer.cluster;
    this.log = log;
  }

  async start(): Promise<boolean> {
    if (!fs.existsSync(this.dir) || !fs.statSync(this.dir).isDirectory()) {
      throw new Error(`cluster ${this.cluster}: directory ${this.dir} does not exist`);
    }
    this.watcher = fs.watch(this.dir, () => this.schedule());
    this.watcher.on("error", (e) => this.log.error({ err: e, dir: this.dir }, "directory watch failed"));
    this.rescan();
    for (const kind of KINDS) this.writer.listed(kind);
    return true;
  }

  async stop(): Promise<void> {
    this.watcher?.close();
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.rescan(), 30);
  }

  /** Reads every file and applies the differences. */
  rescan(): void {
    const seen = new Set<string>();
    for (const f of fs.readdirSync(this.dir).filter(isYaml).sort()) {
      const file = path.join(this.dir, f);
      seen.add(file);
      let text: string;
      try {
        text = fs.readFileSync(file, "utf8");
      } catch {
        continue; // removed between readdir and read
      }
      const parsed = readObjects(text);
      if (parsed.error) {
        this.log.error(
          { file, reason: parsed.error },
          "file not applied: invalid YAML; previous objects kept",
        );
        continue;
      }
      const next = new Map<string, Entry>();
      for (const raw of parsed.objects) {
        const o = raw as Record<string, unknown>;
        const kind = o["kind"] as KubeKind;
        if (!KINDS.includes(kind)) continue;
        const md = (o["metadata"] ?? {}) as Record<string, unknown>;
        const namespace =
          kind === "Node" ? "" : typeof md["namespace"] === "string" ? md["namespace"] : "default";
        const name = typeof md["name"] === "string" ? md["name"] : "";
        next.set(`${kind}/${namespace}/${name}`, { kind, namespace, name, json: JSON.stringify(o), raw: o });
      }
      this.applyFile(file, next);
    }
    for (const file of [...this.byFile.keys()]) if (!seen.has(file)) this.applyFile(file, new Map());
  }

  private applyFile(file: string, next: Map<string, Entry>): void {
    const prev = this.byFile.get(file) ?? new Map<string, Entry>();
    const kept = new Map<string, Entry>();
    for (const [k, e] of next) {
      const old = prev.get(k);
      if (old && old.json === e.json) {
        kept.set(k, old);
        continue;
      }
      if (this.writer.upsert(e.raw, file)) kept.set(k, e);
      // refused: the previous version stays in the world; the file's text is the refused one, so that
      // putting the previous text back is applied again (and clears the rejection)
      else if (old) kept.set(k, { ...old, json: e.json });
      // refused with nothing before it: remembered, so that its leaving the file is told (a refused
      // policy is listed until then)
      else kept.set(k, e);
    }
    for (const [k, e] of prev) {
      if (!next.has(k)) this.writer.remove(e.kind, e.namespace, e.name);
    }
    if (kept.size === 0) this.byFile.delete(file);
    else this.byFile.set(file, kept);
  }
}
