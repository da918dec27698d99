/**
 * One error family for every adapter, with a stable machine-readable code.
 * Messages say what was wrong, name the object, and what to do.
 */
export type SwitchyardErrorCode =
  | "invalid_argument"
  | "invalid_object"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "unavailable"
  | "bpf"
  | "capacity"
  | "internal";

export class SwitchyardError extends Error {
  readonly code: SwitchyardErrorCode;
  override readonly cause?: unknown;
  constructor(code: SwitchyardErrorCode, message: string, cause?: unknown) {
    super(message);
    this.name = "SwitchyardError";
    this.code = code;
    if (cause !== undefined) this.cause = cause;
  }
}

/** Parsers return a result instead of throwing. */
export type Result<T, E = string> = { ok: true; value: T } | { ok: false; error: E };

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function err<E>(error: E): { ok: false; error: E } {
  return { ok: false, error };
}
