/**
 * The demo echoes an edit of its YAML: what a person changed, in words
 * ("endpoint removed: demo/web 198.18.0.12"), before the hub and agent
 * follow it. Pure: objects in, lines out.
 */
type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === "object" && v !== null && !Array.isArray(v);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === "string" || typeof v === "number" ? String(v) : "");

/** what the demo tells apart: each endpoint address, each Service and its ports, by a readable key */
export function summarizeObjects(objects: unknown[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const o of objects) {
    if (!isObj(o)) continue;
    const md = isObj(o["metadata"]) ? o["metadata"] : {};
    const ns = str(md["namespace"]) || "default";
    const name = str(md["name"]);
    if (o["kind"] === "Service") {
      const spec = isObj(o["spec"]) ? o["spec"] : {};
      const ports = arr(spec["ports"])
        .filter(isObj)
        .map(
          (p) =>
            `${str(p["port"])}/${str(p["protocol"]) || "TCP"} → ${str(p["targetPort"]) || str(p["port"])}`,
        );
      out.set(
        `service ${ns}/${name}`,
        `${str(spec["clusterIP"]) || "(no ClusterIP)"} ports ${ports.join(", ")}`,
      );
    }
    if (o["kind"] === "EndpointSlice") {
      const labels = isObj(md["labels"]) ? md["labels"] : {};
      const svc = str(labels["kubernetes.io/service-name"]) || name;
      const ports = arr(o["ports"])
        .filter(isObj)
        .map((p) => str(p["port"]))
        .join(",");
      for (const e of arr(o["endpoints"]).filter(isObj)) {
        const cond = isObj(e["conditions"]) ? e["conditions"] : {};
        const state = cond["ready"] === false ? "not ready" : "ready";
        for (const a of arr(e["addresses"]))
          out.set(`endpoint ${ns}/${svc} ${str(a)}`, `port ${ports}, ${state}`);
      }
    }
  }
  return out;
}

/** The lines that say what changed between two summaries ("endpoint removed: demo/web 198.18.0.12"). */
export function describeEdit(before: Map<string, string>, after: Map<string, string>): string[] {
  const lines: string[] = [];
  const what = (key: string) => {
    const [kind, ...rest] = key.split(" ");
    return { kind: kind ?? "", rest: rest.join(" ") };
  };
  for (const [k, v] of before) {
    const w = what(k);
    if (!after.has(k)) lines.push(`${w.kind} removed: ${w.rest}`);
    else if (after.get(k) !== v) lines.push(`${w.kind} changed: ${w.rest}: ${v} → ${after.get(k)}`);
  }
  for (const [k, v] of after) if (!before.has(k)) lines.push(`${what(k).kind} added: ${what(k).rest} (${v})`);
  return lines;
}
