/** `switchyard-agent events [on|off] [--sample N]`: shows or changes NAT events at run time, in the pinned settings. */
import { parseArgs } from "node:util";
import { DEFAULT_PIN_DIR, fail } from "./common.ts";

export async function eventsCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { "pin-dir": { type: "string", default: DEFAULT_PIN_DIR }, sample: { type: "string" } },
  });
  const { openPinnedMaps } = await import("../bpf/pinned.ts");
  const maps = openPinnedMaps(values["pin-dir"]);
  const cur = maps.readSettings();
  const [onOff] = positionals;
  if (onOff !== undefined && onOff !== "on" && onOff !== "off") fail(`events: "${onOff}" is not on or off`);
  let sampleOneIn = cur.sampleOneIn || 1;
  if (values.sample !== undefined) {
    sampleOneIn = Number(values.sample);
    if (!Number.isInteger(sampleOneIn) || sampleOneIn < 1)
      fail(`--sample "${values.sample}" must be a whole number ≥ 1`);
  }
  const next = { eventsOn: onOff === undefined ? cur.eventsOn : onOff === "on", sampleOneIn };
  if (onOff !== undefined || values.sample !== undefined) maps.writeSettings(next);
  process.stdout.write(`events ${next.eventsOn ? "on" : "off"}, sampling one in ${next.sampleOneIn}\n`);
}
