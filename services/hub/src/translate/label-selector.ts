/**
 * Pure: Kubernetes label selectors (matchLabels and matchExpressions), as
 * policies select Pods and Nodes.
 */
import type { LabelSelector } from "../model/types.ts";

/** Whether labels satisfy a label selector (matchLabels and matchExpressions, all of them). */
export function selectorMatches(sel: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  for (const k in sel.matchLabels) if (labels[k] !== sel.matchLabels[k]) return false;
  for (const e of sel.matchExpressions) {
    const has = Object.hasOwn(labels, e.key);
    switch (e.operator) {
      case "In":
        if (!has || !e.values.includes(labels[e.key]!)) return false;
        break;
      case "NotIn":
        if (has && e.values.includes(labels[e.key]!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}
