/**
 * The NAT event on the wire: one JSON object per NATS message (the
 * NatEvent, with the publisher's `seq`). `decodeNatEvent` is the one reader
 * of it (the follow CLI, tests); it checks every field it relies on, so a
 * message that is not an event is named as such instead of shown half.
 */
import { err, ok, type Result } from "@switchyard/lib/errors";
import type { NatEvent } from "./nat-event.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeNatEvent(event: NatEvent): Uint8Array {
  return enc.encode(JSON.stringify(event));
}

const STRINGS = [
  "time",
  "cluster",
  "node",
  "service",
  "cgroupId",
  "natType",
  "natMode",
  "protocol",
  "hook",
  "originalDestIp",
  "natIp",
  "failureCode",
] as const;
const NUMBERS = ["svcId", "pid", "originalDestPort", "natPort"] as const;
const BOOLEANS = ["isIpv4", "isSuccess"] as const;

export function decodeNatEvent(data: Uint8Array | string): Result<NatEvent> {
  let v: unknown;
  try {
    v = JSON.parse(typeof data === "string" ? data : dec.decode(data));
  } catch (e) {
    return err(`not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return err("not a JSON object");
  const o = v as Record<string, unknown>;
  for (const k of STRINGS) if (typeof o[k] !== "string") return err(`field ${k} is not a string`);
  for (const k of NUMBERS) if (typeof o[k] !== "number") return err(`field ${k} is not a number`);
  for (const k of BOOLEANS) if (typeof o[k] !== "boolean") return err(`field ${k} is not true or false`);
  if (o["protocol"] !== "tcp" && o["protocol"] !== "udp") return err("field protocol is not tcp or udp");
  if (o["fallback"] !== undefined && typeof o["fallback"] !== "string")
    return err("field fallback is not a string");
  for (const k of ["datagrams", "seq"])
    if (o[k] !== undefined && typeof o[k] !== "number") return err(`field ${k} is not a number`);
  return ok(o as unknown as NatEvent);
}
