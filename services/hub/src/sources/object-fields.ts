/**
 * Small readers of raw Kubernetes objects, shared by the parsers
 * (kube-objects.ts, policy-objects.ts): each returns what it read or an
 * error, never throws.
 */
import { err, ok, type Result } from "@switchyard/lib/errors";
import type { Protocol } from "../model/types.ts";

export type Raw = Record<string, unknown>;

export function isObj(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
export function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

export function describeObject(o: unknown): string {
  if (!isObj(o)) return "object";
  const kind = str(o["kind"]) ?? "object";
  const md = isObj(o["metadata"]) ? o["metadata"] : {};
  const ns = str(md["namespace"]);
  const name = str(md["name"]) ?? "(no name)";
  return ns ? `${kind} ${ns}/${name}` : `${kind} ${name}`;
}

export function meta(
  o: Raw,
  namespaced: boolean,
): Result<{
  namespace: string;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}> {
  const md = o["metadata"];
  if (!isObj(md)) return err("has no metadata");
  const name = str(md["name"]);
  if (!name) return err("has no metadata.name");
  const namespace = namespaced ? (str(md["namespace"]) ?? "default") : "";
  const labels: Record<string, string> = {};
  if (isObj(md["labels"]))
    for (const [k, v] of Object.entries(md["labels"])) if (typeof v === "string") labels[k] = v;
  const annotations: Record<string, string> = {};
  if (isObj(md["annotations"]))
    for (const [k, v] of Object.entries(md["annotations"])) if (typeof v === "string") annotations[k] = v;
  return ok({ namespace, name, labels, annotations });
}

export function parseProtocol(v: unknown): Protocol | "SCTP" | undefined {
  const p = v === undefined ? "TCP" : v;
  return p === "TCP" || p === "UDP" || p === "SCTP" ? p : undefined;
}

export function validPort(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535;
}
