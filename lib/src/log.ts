/**
 * The one pino root logger of a process, built in `main`; components take
 * child loggers (`{component, cluster, node}`). The core never logs.
 */
import { pino } from "pino";

export type Logger = pino.Logger;

export function createRootLogger(
  name: string,
  level: string = process.env["SWITCHYARD_LOG_LEVEL"] ?? "info",
): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}

/** A logger that drops everything: for tests and pure code paths that take a logger port. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
