import { describe, expect, it } from "vitest";
import { buildTimeline, nearestMarker, rowTicks, severity } from "../lib/timeline";
import type { Anomaly } from "../lib/types";

const anomaly = (device_id: string, ts: number, score: number): Anomaly => ({
  device_id,
  metric: "pressure",
  ts,
  value: 1,
  score,
  threshold: 4,
  detector: "zscore",
});

describe("anomalies timeline", () => {
  it("grades severity by how far the score passed the threshold", () => {
    expect(severity({ score: 8, threshold: 4 })).toBe("critical");
    expect(severity({ score: 6, threshold: 4 })).toBe("major");
    expect(severity({ score: 5.9, threshold: 4 })).toBe("minor");
    expect(severity({ score: -9, threshold: 4 })).toBe("critical"); // a drop counts as much as a rise
    expect(severity({ score: 1, threshold: 0 })).toBe("critical");
  });

  it("gives each anomaly an x in seconds, its device's row in its severity's series only", () => {
    const t = buildTimeline([
      anomaly("press-2", 3_000_000, 5), // minor
      anomaly("press-1", 1_000_000, 9), // critical
      anomaly("press-2", 2_000_000, 6.5), // major
    ]);
    expect(t.devices).toEqual(["press-1", "press-2"]);
    expect(t.anomalies.map((a) => a.ts)).toEqual([1_000_000, 2_000_000, 3_000_000]);
    expect(t.data).toEqual([
      [1, 2, 3],
      [0, null, null], // critical
      [null, 1, null], // major
      [null, null, 1], // minor
    ]);
  });

  it("keeps anomalies at the same time on different devices apart", () => {
    const t = buildTimeline([anomaly("a", 1_000_000, 9), anomaly("b", 1_000_000, 9)]);
    expect(t.data[0]).toEqual([1, 1]);
    expect(t.data[1]).toEqual([0, 1]);
    expect(buildTimeline([]).data).toEqual([[], [], [], []]);
  });

  it("finds the marker a click hit, the nearest within the radius", () => {
    const markers = [
      { x: 10, y: 10 },
      { x: 30, y: 10 },
    ];
    expect(nearestMarker(markers, 12, 11)).toBe(0);
    expect(nearestMarker(markers, 26, 10)).toBe(1);
    expect(nearestMarker(markers, 20, 40)).toBe(-1);
    expect(nearestMarker([], 0, 0)).toBe(-1);
  });
});

describe("timeline row labels", () => {
  it("labels every row while they fit, else every k-th from the first", () => {
    expect(rowTicks(3, 100)).toEqual([0, 1, 2]);
    expect(rowTicks(0, 100)).toEqual([]);
    expect(rowTicks(100, 140)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]); // 14 px apart
    expect(rowTicks(5, 0)).toEqual([0]);
  });
});
