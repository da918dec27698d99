/** What the agent's commands share: the default paths and how a command fails. */
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_OBJECT = path.resolve(here, "../../../../bpf/build/switchyard.bpf.o");
export const DEFAULT_PIN_DIR = "/sys/fs/bpf/switchyard";
export const DEFAULT_STATE_DIR = "/var/lib/switchyard-agent";

/** A wrong flag or a refused command: the reason on stderr, exit code 2. */
export function fail(msg: string): never {
  process.stderr.write(`switchyard-agent: ${msg}\n`);
  process.exit(2);
}
