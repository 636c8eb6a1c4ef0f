import { describe, expect, it } from "vitest";
import { markerSeries } from "../lib/markers";
import { MAX_POINTS, RANGES, RUL_POINTS, rulQuery, seriesQuery } from "../lib/range";

describe("range selection", () => {
  it("offers 15 minutes to 30 days", () => {
    expect(RANGES[0].seconds).toBe(900);
    expect(RANGES.at(-1)!.seconds).toBe(30 * 86400);
  });

  it("ends at now and keeps the step to at most MAX_POINTS points", () => {
    expect(seriesQuery(900, 1_000_000.7)).toEqual({ from: 999_100, to: 1_000_000, step: 1 });
    const month = seriesQuery(30 * 86400, 2_000_000_000);
    expect(month.to - month.from).toBe(30 * 86400);
    expect(month.step).toBe(1296);
    expect((month.to - month.from) / month.step).toBeLessThanOrEqual(MAX_POINTS);
  });

  it("clamps a range beyond 30 days and below a minute", () => {
    expect(seriesQuery(90 * 86400, 3_000_000).from).toBe(3_000_000 - 30 * 86400);
    expect(seriesQuery(1, 100).from).toBe(40);
  });
});

describe("the RUL trend's range", () => {
  it("covers the same range as the chart at a coarser step, up to 30 days", () => {
    expect(rulQuery(900, 1_000_000)).toEqual({ from: 999_100, to: 1_000_000, step: 2 });
    const month = rulQuery(30 * 86400, 2_000_000_000);
    expect(month).toEqual({ ...seriesQuery(30 * 86400, 2_000_000_000), step: 5184 });
    for (const r of RANGES) {
      const q = rulQuery(r.seconds, 2_000_000_000);
      expect(q.to - q.from).toBe(r.seconds);
      expect((q.to - q.from) / q.step).toBeLessThanOrEqual(RUL_POINTS);
      expect(q.step).toBeGreaterThanOrEqual(seriesQuery(r.seconds, 2_000_000_000).step);
    }
  });
});

describe("anomaly markers", () => {
  it("puts each anomaly on the nearest sample and drops those outside the chart", () => {
    const xs = [100, 110, 120, 130];
    const at = (s: number, value: number) => ({ ts: s * 1e6, value });
    expect(markerSeries(xs, [at(111, 5), at(129, 7), at(50, 1), at(200, 1)])).toEqual([null, 5, null, 7]);
    expect(markerSeries([], [at(1, 1)])).toEqual([]);
  });
});
