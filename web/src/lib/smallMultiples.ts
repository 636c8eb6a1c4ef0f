// The device page's small multiples: one chart per metric, one shared range.
import type { Anomaly } from "./types";

/** The metrics a device has reported, in a stable order (alphabetical). */
export function deviceMetrics(lastValues: Record<string, unknown> | undefined): string[] {
  return Object.keys(lastValues ?? {}).sort();
}

/** The range's anomalies split by metric, each metric's list oldest first; every metric gets a
 * list (empty when it had none), anomalies of metrics the device no longer reports are left out. */
export function anomaliesByMetric(anomalies: Anomaly[], metrics: string[]): Map<string, Anomaly[]> {
  const out = new Map<string, Anomaly[]>(metrics.map((m) => [m, []]));
  for (const anomaly of anomalies) out.get(anomaly.metric)?.push(anomaly);
  for (const list of out.values()) list.sort((a, b) => a.ts - b.ts);
  return out;
}

/** Whether a chart should load now: when it is on screen or near it (``margin`` px), or when
 * the browser cannot tell (no IntersectionObserver: load everything). */
export function shouldLoad(entry: { isIntersecting: boolean } | undefined, observable: boolean): boolean {
  if (!observable) return true;
  return entry?.isIntersecting ?? false;
}
