import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { counted } from "../format";
import { markerSeries } from "../lib/markers";
import { useTheme } from "../lib/theme";
import type { Point } from "../lib/types";

// uPlot draws on a canvas from typed arrays: tens of thousands of points stay interactive.

export function Chart({
  points,
  label,
  unit,
  markers = [],
  height = 280,
}: {
  points: Point[];
  label: string;
  unit?: string | null;
  markers?: { ts: number; value: number }[];
  height?: number;
}) {
  const host = useRef<HTMLDivElement>(null);
  const theme = useTheme(); // the colours are the theme's: redrawn when it changes
  useEffect(() => {
    const element = host.current;
    if (element === null) return;
    const xs = Float64Array.from(points, (p) => p.ts / 1e6);
    const ys = Float64Array.from(points, (p) => p.value);
    const stroke = getComputedStyle(element).getPropertyValue("--accent").trim() || "#2f81f7";
    const axis = getComputedStyle(element).getPropertyValue("--fg").trim() || "#888";
    const bad = getComputedStyle(element).getPropertyValue("--bad").trim() || "#f85149";
    const named = unit ? `${label} (${unit})` : label;
    const plot = new uPlot(
      {
        width: Math.max(element.clientWidth, 280),
        height,
        series: [
          {},
          { label: named, stroke, width: 1.5 },
          { label: "anomaly", stroke: bad, paths: () => null, points: { show: true, size: 10, fill: bad, stroke: bad } },
        ],
        axes: [{ stroke: axis }, { stroke: axis, label: named }], // the y axis names its unit
      },
      [xs as unknown as number[], ys as unknown as number[], markerSeries(xs, markers)],
      element,
    );
    const resize = () => plot.setSize({ width: Math.max(element.clientWidth, 280), height });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.destroy();
    };
  }, [points, label, unit, markers, height, theme]);
  return (
    <div
      ref={host}
      className="chart"
      role="img"
      aria-label={`${label} chart${unit ? ` (${unit})` : ""}, ${counted(points.length, "point", "points")}, ${counted(markers.length, "anomaly", "anomalies")}`}
    />
  );
}

export function Sparkline({ values }: { values: number[] | undefined }) {
  if (!values || values.length < 2) return <span className="muted">–</span>;
  const min = Math.min(...values);
  const span = Math.max(...values) - min || 1;
  const path = values
    .map((v, i) => `${((i / (values.length - 1)) * 80).toFixed(1)},${(20 - ((v - min) / span) * 18 - 1).toFixed(1)}`)
    .join(" ");
  return (
    <svg className="spark" width="80" height="20" aria-hidden="true">
      <polyline points={path} fill="none" stroke="var(--accent)" strokeWidth="1.2" />
    </svg>
  );
}
