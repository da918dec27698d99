/**
 * Boundary for the policy kinds (docs/policies.md): a LocalRedirectPolicy
 * or BalancingPolicy object (from the API or from YAML) → the hub's model,
 * every rule checked here (a directory cluster has no API server to run
 * the CRDs' schemas). An error names the policy and says what to fix.
 */
import { err, ok, type Result } from "@switchyard/lib/errors";
import { ipFamily } from "@switchyard/lib/ip";
import type {
  BalancingMode,
  BalancingPolicy,
  LabelSelector,
  LocalRedirectPolicy,
  PolicyPort,
  Protocol,
} from "../model/types.ts";
import type { Parsed } from "./kube-objects.ts";
import {
  arr,
  describeObject,
  isObj,
  meta,
  parseProtocol,
  type Raw,
  str,
  validPort,
} from "./object-fields.ts";

/** The API group and version of the policy CRDs (deploy/crds/). */
export const POLICY_API = { group: "switchyard.io", version: "v1alpha1" } as const;

const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const MAX_QOS = 0xffff_ffff;
/** at most this many addresses in a BalancingPolicy addressEndpoint */
const MAX_ADDRESSES = 256;

/** A label selector at `at` (e.g. "spec.backend.selector"); an error says which part is wrong. */
export function parseLabelSelector(v: unknown, at: string): Result<LabelSelector> {
  if (!isObj(v)) return err(`${at} is not an object with matchLabels and/or matchExpressions`);
  const matchLabels: Record<string, string> = {};
  if (v["matchLabels"] !== undefined) {
    if (!isObj(v["matchLabels"])) return err(`${at}.matchLabels is not a map of label to value`);
    for (const [k, val] of Object.entries(v["matchLabels"])) {
      if (k === "") return err(`${at}.matchLabels has an empty label name`);
      if (typeof val !== "string") return err(`${at}.matchLabels["${k}"] is not a string; quote it`);
      matchLabels[k] = val;
    }
  }
  const matchExpressions: LabelSelector["matchExpressions"] = [];
  if (v["matchExpressions"] !== undefined && !Array.isArray(v["matchExpressions"]))
    return err(`${at}.matchExpressions is not a list`);
  for (const [i, e] of arr(v["matchExpressions"]).entries()) {
    const eat = `${at}.matchExpressions[${i}]`;
    if (!isObj(e)) return err(`${eat} is not an object`);
    const key = str(e["key"]);
    if (!key) return err(`${eat} has no key`);
    const op = e["operator"];
    if (op !== "In" && op !== "NotIn" && op !== "Exists" && op !== "DoesNotExist")
      return err(`${eat}.operator "${String(op)}" is not In, NotIn, Exists or DoesNotExist`);
    const values = arr(e["values"]);
    if (!values.every((x) => typeof x === "string"))
      return err(`${eat}.values holds a value that is not a string`);
    if ((op === "In" || op === "NotIn") && values.length === 0)
      return err(`${eat}: operator ${op} needs at least one value`);
    if ((op === "Exists" || op === "DoesNotExist") && values.length > 0)
      return err(`${eat}: operator ${op} takes no values`);
    matchExpressions.push({ key, operator: op, values: values as string[] });
  }
  return ok({ matchLabels, matchExpressions });
}

function selectorIsEmpty(s: LabelSelector): boolean {
  return Object.keys(s.matchLabels).length === 0 && s.matchExpressions.length === 0;
}

/** The identity of a policy object, even of one that does not parse (for its status). */
export function policyIdentity(
  o: unknown,
): { namespace: string; name: string; uid: string; generation: number } | undefined {
  if (!isObj(o) || !isObj(o["metadata"])) return undefined;
  const md = o["metadata"];
  const name = str(md["name"]);
  if (!name) return undefined;
  const g = md["generation"];
  return {
    namespace: str(md["namespace"]) ?? "default",
    name,
    uid: str(md["uid"]) ?? "",
    generation: typeof g === "number" && Number.isInteger(g) && g >= 0 ? g : 0,
  };
}

type Bad = (msg: string) => Result<never>;
type NeedName = { name: string; protocol: Protocol | undefined };
type ToPorts = LocalRedirectPolicy["backend"]["toPorts"];

function identity(o: Raw, kind: string, cluster: string) {
  const m = meta(o, true);
  if (!m.ok) return err(`${describeObject(o)} ${m.error}`);
  const what = `${kind} ${m.value.namespace}/${m.value.name} in cluster ${cluster}`;
  const bad: Bad = (msg: string) => err(`${what}: ${msg}`);
  if (o["apiVersion"] !== undefined && o["apiVersion"] !== `${POLICY_API.group}/${POLICY_API.version}`)
    return bad(`apiVersion "${String(o["apiVersion"])}" is not ${POLICY_API.group}/${POLICY_API.version}`);
  const md = o["metadata"] as Raw;
  const g = md["generation"];
  const created = md["creationTimestamp"];
  return ok({
    bad,
    base: {
      cluster,
      namespace: m.value.namespace,
      name: m.value.name,
      uid: str(md["uid"]) ?? "",
      generation: typeof g === "number" && Number.isInteger(g) && g >= 0 ? g : 0,
      // a Date from client-node's model classes, a string from JSON and YAML
      createdAt: created instanceof Date ? created.toISOString() : (str(created) ?? ""),
    },
  });
}

/** spec.frontend (both kinds); an address's fallbackService only where allowed (LocalRedirectPolicy). */
function parseFrontend(
  fe: unknown,
  bad: Bad,
  allowFallback: boolean,
): Result<{ frontend: LocalRedirectPolicy["frontend"]; needNames: NeedName[] }> {
  if (!isObj(fe)) return bad("has no spec.frontend; give frontend.service or frontend.address");
  const hasService = fe["service"] !== undefined && fe["service"] !== null;
  const hasAddress = fe["address"] !== undefined && fe["address"] !== null;
  if (hasService && hasAddress) return bad("frontend has both service and address; give exactly one");
  if (!hasService && !hasAddress) return bad("frontend has neither service nor address; give exactly one");
  /** the frontend's port names that need a toPorts entry, with their protocol when known */
  const needNames: NeedName[] = [];
  if (hasService) {
    const s = fe["service"];
    if (!isObj(s)) return bad("frontend.service is not an object with name and ports");
    const name = str(s["name"]);
    if (!name || !DNS_LABEL.test(name))
      return bad(
        `frontend.service.name "${String(s["name"] ?? "")}" is not a Service name of this namespace`,
      );
    if (s["ports"] !== undefined && !Array.isArray(s["ports"]))
      return bad("frontend.service.ports is not a list of port names or numbers");
    const ports: Array<{ name: string } | { port: number }> = [];
    const seen = new Set<string>();
    for (const [i, p] of arr(s["ports"]).entries()) {
      let key: string;
      if (typeof p === "number") {
        if (!validPort(p)) return bad(`frontend.service.ports[${i}] ${p} is not a port number 1-65535`);
        ports.push({ port: p });
        key = String(p);
      } else if (typeof p === "string" && p !== "") {
        ports.push({ name: p });
        needNames.push({ name: p, protocol: undefined });
        key = p;
      } else return bad(`frontend.service.ports[${i}] is not a port name or number`);
      if (seen.has(key)) return bad(`frontend.service.ports names ${key} twice`);
      seen.add(key);
    }
    return ok({ frontend: { kind: "service", service: name, ports }, needNames });
  }
  const a = fe["address"];
  if (!isObj(a)) return bad("frontend.address is not an object with ip and ports");
  const ip = str(a["ip"]);
  if (!ip || !ipFamily(ip)) return bad(`frontend.address.ip "${String(a["ip"] ?? "")}" is not an IP address`);
  const ports = parsePolicyPorts(a["ports"], "frontend.address.ports");
  if (!ports.ok) return bad(ports.error);
  if (ports.value.length === 0) return bad("frontend.address.ports is empty; give at least one port");
  for (const p of ports.value) needNames.push({ name: p.name, protocol: p.protocol });
  const fb = a["fallbackService"];
  if (fb !== undefined && fb !== null && fb !== "") {
    if (!allowFallback)
      return bad(
        "frontend.address.fallbackService is a LocalRedirectPolicy field; a BalancingPolicy has none (remove it)",
      );
    if (typeof fb !== "string" || !DNS_LABEL.test(fb))
      return bad(`frontend.address.fallbackService "${String(fb)}" is not a Service name of this namespace`);
  }
  return ok({
    frontend: {
      kind: "address",
      ip,
      ports: ports.value,
      fallbackService: typeof fb === "string" && fb !== "" ? fb : undefined,
    },
    needNames,
  });
}

/** backend.toPorts (both kinds): name, port (a number, or a container port name where `named`), protocol; each frontend port paired. */
function parseToPorts(
  v: unknown,
  bad: Bad,
  needNames: readonly NeedName[],
  named: string | undefined,
): Result<ToPorts> {
  if (!Array.isArray(v) || v.length === 0)
    return bad("backend.toPorts is empty; give one entry per frontend port, paired by name");
  const toPorts: ToPorts = [];
  const toNames = new Map<string, Protocol>();
  for (const [i, p] of v.entries()) {
    const at = `backend.toPorts[${i}]`;
    if (!isObj(p)) return bad(`${at} is not an object with name, port and protocol`);
    const name = str(p["name"]);
    if (!name) return bad(`${at} has no name; name it after the frontend port it pairs with`);
    if (toNames.has(name)) return bad(`backend.toPorts names "${name}" twice; names must be unique`);
    const protocol = parseProtocol(p["protocol"]);
    if (!protocol || protocol === "SCTP")
      return bad(`${at}.protocol "${String(p["protocol"])}" is not TCP or UDP`);
    const port = p["port"];
    if (typeof port === "string" && /^[0-9]+$/.test(port)) {
      const n = Number(port);
      if (!validPort(n)) return bad(`${at}.port ${port} is not a port number 1-65535`);
      toPorts.push({ name, port: n, targetName: undefined, protocol });
    } else if (typeof port === "string") {
      if (port.length > 15 || !PORT_NAME.test(port))
        return bad(`${at}.port "${port}" is neither a port number nor a container port name`);
      if (named !== undefined)
        return bad(`${at}.port "${port}" names a container port, which ${named}; give the port number`);
      toPorts.push({ name, port: 0, targetName: port, protocol });
    } else if (validPort(port)) toPorts.push({ name, port, targetName: undefined, protocol });
    else return bad(`${at}.port ${String(port)} is not a port number 1-65535 or a container port name`);
    toNames.set(name, protocol);
  }
  for (const n of needNames) {
    const proto = toNames.get(n.name);
    if (proto === undefined)
      return bad(`frontend port "${n.name}" has no backend.toPorts entry named "${n.name}"; add one`);
    if (n.protocol !== undefined && n.protocol !== proto)
      return bad(`frontend port "${n.name}" is ${n.protocol} but its backend.toPorts entry is ${proto}`);
  }
  return ok(toPorts);
}

/** A pod selector at `at`: present and not empty. */
function parsePodSelector(v: unknown, at: string, bad: Bad): Result<LabelSelector> {
  if (v === undefined) return bad(`${at} is missing; give the pods' labels in ${at}`);
  const selector = parseLabelSelector(v, at);
  if (!selector.ok) return bad(selector.error);
  if (selectorIsEmpty(selector.value))
    return bad(`${at} is empty and would select every pod; give matchLabels or matchExpressions`);
  return selector;
}

function parseNodeSelector(v: unknown, bad: Bad): Result<LabelSelector | undefined> {
  if (v === undefined || v === null) return ok(undefined);
  const ns = parseLabelSelector(v, "nodeSelector");
  return ns.ok ? ns : bad(ns.error);
}

/**
 * A LocalRedirectPolicy, every rule of docs/policies.md checked (the hub
 * checks them itself: a directory cluster has no API server to run the
 * CRD's schema). An error names the policy and says what to fix.
 */
export function parseLocalRedirectPolicy(o: Raw, cluster: string): Result<Parsed> {
  const id = identity(o, "LocalRedirectPolicy", cluster);
  if (!id.ok) return id;
  const { bad, base } = id.value;
  const spec = o["spec"];
  if (!isObj(spec)) return bad("has no spec; give spec.frontend and spec.backend");
  const fe = parseFrontend(spec["frontend"], bad, true);
  if (!fe.ok) return fe;
  const be = spec["backend"];
  if (!isObj(be)) return bad("has no spec.backend; give backend.selector and backend.toPorts");
  if (be["selector"] === undefined)
    return bad("backend has no selector; give the pods' labels in backend.selector");
  const selector = parsePodSelector(be["selector"], "backend.selector", bad);
  if (!selector.ok) return selector;
  const toPorts = parseToPorts(be["toPorts"], bad, fe.value.needNames, undefined);
  if (!toPorts.ok) return toPorts;
  const skip = spec["skipRedirectFromBackend"];
  if (skip !== undefined && typeof skip !== "boolean")
    return bad(`skipRedirectFromBackend "${String(skip)}" is not true or false`);
  let qosPerSecond = 0;
  if (spec["qos"] !== undefined && spec["qos"] !== null) {
    const q = spec["qos"];
    if (!isObj(q)) return bad("qos is not an object with redirectsPerSecond");
    const r = q["redirectsPerSecond"] ?? 0;
    if (typeof r !== "number" || !Number.isInteger(r) || r < 0 || r > MAX_QOS)
      return bad(`qos.redirectsPerSecond ${String(r)} is not a whole number from 0 (no limit) to ${MAX_QOS}`);
    qosPerSecond = r;
  }
  const nodeSelector = parseNodeSelector(spec["nodeSelector"], bad);
  if (!nodeSelector.ok) return nodeSelector;
  const value: LocalRedirectPolicy = {
    ...base,
    frontend: fe.value.frontend,
    backend: { selector: selector.value, toPorts: toPorts.value },
    skipRedirectFromBackend: skip === true,
    qosPerSecond,
    nodeSelector: nodeSelector.value,
  };
  return ok({ object: { kind: "LocalRedirectPolicy", value }, warnings: [] });
}

const MODES: readonly BalancingMode[] = ["podEndpoint", "hostPort", "nodeProxy"];

/**
 * A BalancingPolicy, every rule of docs/policies.md checked: exactly one
 * frontend (service | address) and one backend (serviceEndpoint |
 * addressEndpoint), a redirectMode the hub knows, a named container port
 * only with podEndpoint, 1-256 valid backend addresses.
 */
export function parseBalancingPolicy(o: Raw, cluster: string): Result<Parsed> {
  const id = identity(o, "BalancingPolicy", cluster);
  if (!id.ok) return id;
  const { bad, base } = id.value;
  const spec = o["spec"];
  if (!isObj(spec)) return bad("has no spec; give spec.frontend and spec.backend");
  const fe = parseFrontend(spec["frontend"], bad, false);
  if (!fe.ok) return fe;
  const be = spec["backend"];
  if (!isObj(be)) return bad("has no spec.backend; give backend.serviceEndpoint or backend.addressEndpoint");
  const hasPods = be["serviceEndpoint"] !== undefined && be["serviceEndpoint"] !== null;
  const hasAddresses = be["addressEndpoint"] !== undefined && be["addressEndpoint"] !== null;
  if (hasPods && hasAddresses)
    return bad("backend has both serviceEndpoint and addressEndpoint; give exactly one");
  if (!hasPods && !hasAddresses)
    return bad("backend has neither serviceEndpoint nor addressEndpoint; give exactly one");
  let backend: BalancingPolicy["backend"];
  if (hasPods) {
    const se = be["serviceEndpoint"];
    if (!isObj(se))
      return bad("backend.serviceEndpoint is not an object with selector, redirectMode and toPorts");
    const selector = parsePodSelector(se["selector"], "backend.serviceEndpoint.selector", bad);
    if (!selector.ok) return selector;
    const mode = se["redirectMode"] ?? "podEndpoint";
    if (!MODES.includes(mode as BalancingMode))
      return bad(
        `backend.serviceEndpoint.redirectMode "${String(mode)}" is not podEndpoint, hostPort or nodeProxy`,
      );
    const redirectMode = mode as BalancingMode;
    const toPorts = parseToPorts(
      se["toPorts"],
      (m) => bad(m.replace("backend.toPorts", "backend.serviceEndpoint.toPorts")),
      fe.value.needNames,
      redirectMode === "podEndpoint"
        ? undefined
        : `redirectMode ${redirectMode} cannot use (the same port number is used on the ${redirectMode === "hostPort" ? "node address" : "entry address"} and the pod)`,
    );
    if (!toPorts.ok) return toPorts;
    backend = { kind: "serviceEndpoint", selector: selector.value, redirectMode, toPorts: toPorts.value };
  } else {
    const ae = be["addressEndpoint"];
    if (!isObj(ae)) return bad("backend.addressEndpoint is not an object with addresses and toPorts");
    const raw = ae["addresses"];
    if (!Array.isArray(raw) || raw.length === 0)
      return bad("backend.addressEndpoint.addresses is empty; give 1 to 256 IP addresses");
    if (raw.length > MAX_ADDRESSES)
      return bad(
        `backend.addressEndpoint.addresses holds ${raw.length} addresses; at most ${MAX_ADDRESSES} (split the policy)`,
      );
    const addresses: string[] = [];
    for (const [i, a] of raw.entries()) {
      if (typeof a !== "string" || !ipFamily(a))
        return bad(`backend.addressEndpoint.addresses[${i}] "${String(a)}" is not an IPv4 or IPv6 address`);
      if (addresses.includes(a)) return bad(`backend.addressEndpoint.addresses holds ${a} twice`);
      addresses.push(a);
    }
    const toPorts = parseToPorts(
      ae["toPorts"],
      (m) => bad(m.replace("backend.toPorts", "backend.addressEndpoint.toPorts")),
      fe.value.needNames,
      "an addressEndpoint has no pods to look up (give the port number)",
    );
    if (!toPorts.ok) return toPorts;
    backend = { kind: "addressEndpoint", addresses, toPorts: toPorts.value };
  }
  const nodeSelector = parseNodeSelector(spec["nodeSelector"], bad);
  if (!nodeSelector.ok) return nodeSelector;
  const value: BalancingPolicy = {
    ...base,
    frontend: fe.value.frontend,
    backend,
    nodeSelector: nodeSelector.value,
  };
  return ok({ object: { kind: "BalancingPolicy", value }, warnings: [] });
}

/** An address frontend's ports: name (unique), port, protocol; one port+protocol once. */
function parsePolicyPorts(v: unknown, at: string): Result<PolicyPort[]> {
  if (!Array.isArray(v)) return err(`${at} is not a list of {name, port, protocol}`);
  const out: PolicyPort[] = [];
  const names = new Set<string>();
  const numbers = new Set<string>();
  for (const [i, p] of v.entries()) {
    if (!isObj(p)) return err(`${at}[${i}] is not an object with name, port and protocol`);
    const name = str(p["name"]);
    if (!name) return err(`${at}[${i}] has no name; name it (backend.toPorts pairs with it by name)`);
    if (names.has(name)) return err(`${at} names "${name}" twice; names must be unique`);
    if (!validPort(p["port"]))
      return err(`${at}[${i}].port ${String(p["port"])} is not a port number 1-65535`);
    const protocol = parseProtocol(p["protocol"]);
    if (!protocol || protocol === "SCTP")
      return err(`${at}[${i}].protocol "${String(p["protocol"])}" is not TCP or UDP`);
    const key = `${p["port"]}/${protocol}`;
    if (numbers.has(key)) return err(`${at} holds ${key} twice`);
    names.add(name);
    numbers.add(key);
    out.push({ name, port: p["port"], protocol });
  }
  return ok(out);
}
