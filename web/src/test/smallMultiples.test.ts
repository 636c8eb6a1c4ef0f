import { describe, expect, it } from "vitest";
import { anomaliesByMetric, deviceMetrics, shouldLoad } from "../lib/smallMultiples";
import type { Anomaly } from "../lib/types";

const anomaly = (metric: string, ts: number): Anomaly => ({
  device_id: "press-1",
  metric,
  ts,
  value: 1,
  score: 5,
  threshold: 4,
  detector: "zscore",
});

describe("device small multiples", () => {
  it("charts every metric the device reported, in a stable order", () => {
    expect(deviceMetrics({ vibration: {}, pressure: {}, temperature: {} })).toEqual([
      "pressure",
      "temperature",
      "vibration",
    ]);
    expect(deviceMetrics(undefined)).toEqual([]);
  });

  it("puts each anomaly on its metric's chart, oldest first, and none on the others", () => {
    const split = anomaliesByMetric(
      [anomaly("pressure", 30), anomaly("temperature", 20), anomaly("pressure", 10), anomaly("gone", 5)],
      ["pressure", "temperature", "vibration"],
    );
    expect([...split.keys()]).toEqual(["pressure", "temperature", "vibration"]);
    expect(split.get("pressure")?.map((a) => a.ts)).toEqual([10, 30]);
    expect(split.get("temperature")?.map((a) => a.ts)).toEqual([20]);
    expect(split.get("vibration")).toEqual([]);
    expect(split.has("gone")).toBe(false); // a metric the device no longer reports has no chart
  });

  it("loads a chart when it nears the screen, or at once without IntersectionObserver", () => {
    expect(shouldLoad(undefined, false)).toBe(true);
    expect(shouldLoad(undefined, true)).toBe(false);
    expect(shouldLoad({ isIntersecting: false }, true)).toBe(false);
    expect(shouldLoad({ isIntersecting: true }, true)).toBe(true);
  });
});
