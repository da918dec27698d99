/**
 * NAT event subjects, shared by the agent (which publishes on them), the
 * hub (which grants each agent its own and keeps their history) and the
 * follow CLI (which filters on them):
 *
 *     switchyard.nat.<cluster>.<node>.<namespace>.<service>
 */

/** The subject root every event is published under (an agent's --subject-prefix defaults to it). */
export const EVENT_SUBJECT_ROOT = "switchyard.nat";

/** The JetStream stream the hub keeps the event history in (hub: events/history.ts). */
export const HISTORY_STREAM = "SWITCHYARD_EVENTS";

/** NATS subject tokens may not hold '.', '*', '>' or spaces; Kubernetes names only hold '.' of those. */
export function subjectToken(s: string): string {
  const t = s.replace(/\./g, "_").replace(/[\s*>]/g, "-");
  return t === "" ? "_" : t;
}

/** Every subject one agent publishes on: `<root>.<cluster>.<node>.>`. */
export function agentEventSubjects(cluster: string, node: string, root = EVENT_SUBJECT_ROOT): string {
  return `${root}.${subjectToken(cluster)}.${subjectToken(node)}.>`;
}

/**
 * The subject a subscriber filters on: each part given narrows it, a part
 * left out is a wildcard (`switchyard.nat.prod.*.default.>` …).
 */
export function computeEventFilter(
  f: {
    cluster?: string | undefined;
    node?: string | undefined;
    namespace?: string | undefined;
    service?: string | undefined;
  },
  root = EVENT_SUBJECT_ROOT,
): string {
  const parts = [f.cluster, f.node, f.namespace, f.service].map((p) =>
    p === undefined ? "*" : subjectToken(p),
  );
  // trailing wildcards fold into '>'
  while (parts.length > 0 && parts[parts.length - 1] === "*") parts.pop();
  return parts.length === 0
    ? `${root}.>`
    : parts.length === 4
      ? `${root}.${parts.join(".")}`
      : `${root}.${parts.join(".")}.>`;
}
