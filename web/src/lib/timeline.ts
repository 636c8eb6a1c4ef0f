// The anomalies timeline: time on x, one row per device on y, a marker per anomaly coloured
// by severity (how far the score went past the detector's threshold).
import type { Anomaly } from "./types";

export type Severity = "critical" | "major" | "minor";
export const SEVERITIES: Severity[] = ["critical", "major", "minor"];

/** critical at twice the threshold or more, major from 1.5 times, minor below. */
export function severity(anomaly: Pick<Anomaly, "score" | "threshold">): Severity {
  const threshold = Math.abs(anomaly.threshold);
  const ratio = threshold > 0 ? Math.abs(anomaly.score) / threshold : Infinity;
  if (ratio >= 2) return "critical";
  if (ratio >= 1.5) return "major";
  return "minor";
}

export interface Timeline {
  /** device ids, one per row (row 0 at the bottom), alphabetical */
  devices: string[];
  /** the anomalies, oldest first, as uPlot draws them */
  anomalies: Anomaly[];
  /** uPlot's data: x in seconds, then one series per severity (row index, null elsewhere) */
  data: [number[], ...(number | null)[][]];
}

/** uPlot needs every series on the same, ascending x: each anomaly gets its own x, and a y (its
 * device's row) only in its severity's series. */
export function buildTimeline(anomalies: Anomaly[]): Timeline {
  const sorted = [...anomalies].sort((a, b) => a.ts - b.ts);
  const devices = [...new Set(sorted.map((a) => a.device_id))].sort();
  const row = new Map(devices.map((d, i) => [d, i]));
  const xs = sorted.map((a) => a.ts / 1e6);
  const series = SEVERITIES.map((s) => sorted.map((a) => (severity(a) === s ? (row.get(a.device_id) ?? null) : null)));
  return { devices, anomalies: sorted, data: [xs, ...series] };
}

/** The index of the marker nearest to a click at (x, y), within ``radius`` px; -1 when none. */
export function nearestMarker(markers: { x: number; y: number }[], x: number, y: number, radius = 10): number {
  let best = -1;
  let bestDistance = radius * radius;
  markers.forEach((m, i) => {
    const d = (m.x - x) ** 2 + (m.y - y) ** 2;
    if (d <= bestDistance) {
      best = i;
      bestDistance = d;
    }
  });
  return best;
}

/** The rows that get a label on the y axis: every row while they are at least ``minGap`` px
 * apart, else every k-th (the chart stays readable with hundreds of devices; every marker is
 * still drawn, and the list below names them all). */
export function rowTicks(rows: number, plotHeight: number, minGap = 14): number[] {
  if (rows <= 0) return [];
  const every = Math.max(1, Math.ceil((rows * minGap) / Math.max(plotHeight, minGap)));
  const ticks: number[] = [];
  for (let i = 0; i < rows; i += every) ticks.push(i);
  return ticks;
}
