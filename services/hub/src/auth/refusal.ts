/**
 * Why an agent's authentication was refused: a reason for the hub's log and
 * metrics, and a message safe to show the agent. Where telling refusals
 * apart would help someone guessing (an unknown token id or a wrong secret;
 * a forged, tampered or foreign credential), the message is the same.
 */

export type RefusalReason =
  | "token-malformed"
  | "token-unknown"
  | "token-wrong-secret"
  | "token-expired"
  | "credential-malformed"
  | "credential-unknown-key"
  | "credential-bad-signature"
  | "credential-key-retired"
  | "credential-expired"
  | "credential-revoked"
  | "not-admitted";

export type Refusal = {
  reason: RefusalReason;
  /** what the agent is told */
  message: string;
  /** what only the hub's log says (which token id, which key) */
  detail?: string;
};

/** the one answer for an unknown (or revoked) token id and a wrong secret */
export const TOKEN_NOT_ACCEPTED =
  "join token not accepted (unknown, revoked or wrong secret); create a new one with `switchyard-hub token create`";

/** the one answer for a malformed, forged, tampered or foreign credential */
export const CREDENTIAL_NOT_ACCEPTED = "agent credential not accepted; join again with a join token";

export function refusal(reason: RefusalReason, message: string, detail?: string): Refusal {
  return detail === undefined ? { reason, message } : { reason, message, detail };
}
