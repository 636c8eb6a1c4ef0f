import { useEffect, useMemo, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { counted } from "../format";
import { useTheme } from "../lib/theme";
import { buildTimeline, nearestMarker, rowTicks, SEVERITIES, type Severity } from "../lib/timeline";
import type { Anomaly } from "../lib/types";

export const SEVERITY_COLOUR: Record<Severity, string> = { critical: "--bad", major: "--warn", minor: "--accent" };

/** The fleet's anomalies on one uPlot chart: time on x, a row per device, a marker per anomaly
 * coloured by severity; a click on a marker opens its device. */
export function AnomalyTimeline({ anomalies, onOpen }: { anomalies: Anomaly[]; onOpen: (deviceId: string) => void }) {
  const host = useRef<HTMLDivElement>(null);
  const open = useRef(onOpen);
  open.current = onOpen;
  const theme = useTheme(); // the markers' colours are the theme's
  const timeline = useMemo(() => buildTimeline(anomalies), [anomalies]); // redrawn only when they change
  useEffect(() => {
    const element = host.current;
    if (element === null || timeline.anomalies.length === 0) return;
    const style = getComputedStyle(element);
    const colour = (s: Severity) => style.getPropertyValue(SEVERITY_COLOUR[s]).trim() || "#888";
    const axis = style.getPropertyValue("--fg").trim() || "#888";
    const rows = timeline.devices.length;
    const height = Math.min(600, 80 + rows * 28);
    const xs = timeline.data[0];
    const span = Math.max(60, xs[xs.length - 1] - xs[0]);
    const markers = (u: uPlot) =>
      timeline.anomalies.map((a, i) => {
        const s = SEVERITIES.findIndex((_, k) => timeline.data[k + 1][i] !== null);
        const y = timeline.data[s + 1][i];
        if (y === null) return null;
        return { x: u.valToPos(xs[i], "x"), y: u.valToPos(y, "y"), device: a.device_id, severity: SEVERITIES[s] };
      });
    const plot = new uPlot(
      {
        width: Math.max(element.clientWidth, 280),
        height,
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { show: false } },
        scales: {
          x: { time: true, range: () => [xs[0] - span * 0.03, xs[xs.length - 1] + span * 0.03] },
          y: { range: () => [-0.5, rows - 0.5] },
        },
        series: [
          {},
          ...SEVERITIES.map((s) => ({
            label: s,
            stroke: colour(s),
            paths: () => null,
            points: { show: true, size: 11, fill: colour(s), stroke: colour(s) },
          })),
        ],
        axes: [
          { stroke: axis },
          {
            stroke: axis,
            size: Math.min(160, 16 + 7 * Math.max(...timeline.devices.map((d) => d.length))),
            splits: (u) => rowTicks(rows, u.bbox.height / devicePixelRatio),
            values: (_u, splits) => splits.map((i) => timeline.devices[i] ?? ""),
          },
        ],
        hooks: {
          draw: [
            (u) => {
              // where each marker is, in CSS pixels over the plot: for the click and the tests
              const at = markers(u).filter((m) => m !== null);
              u.root.dataset.drawn = String(at.length);
              u.root.dataset.markers = at.map((m) => `${m.x.toFixed(1)},${m.y.toFixed(1)},${m.severity},${m.device}`).join(" ");
            },
          ],
        },
      },
      timeline.data as uPlot.AlignedData,
      element,
    );
    const click = (event: MouseEvent) => {
      const box = plot.over.getBoundingClientRect();
      const at = markers(plot).filter((m) => m !== null);
      const hit = nearestMarker(at, event.clientX - box.left, event.clientY - box.top, 10);
      if (hit >= 0) open.current(at[hit].device);
    };
    plot.over.addEventListener("click", click);
    const resize = () => plot.setSize({ width: Math.max(element.clientWidth, 280), height });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.over.removeEventListener("click", click);
      plot.destroy();
    };
  }, [timeline, theme]);
  if (timeline.anomalies.length === 0) return null;
  return (
    <div
      ref={host}
      className="anomaly-timeline"
      role="img"
      aria-label={`Anomaly timeline: ${counted(timeline.anomalies.length, "anomaly", "anomalies")} on ${counted(timeline.devices.length, "device", "devices")}`}
    />
  );
}
