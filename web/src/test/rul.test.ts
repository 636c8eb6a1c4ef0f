import { describe, expect, it } from "vitest";
import { projectedEnd, rankByRul } from "../lib/rul";
import type { RulPrediction } from "../lib/types";
import { device } from "./devices";

const prediction = (rul: number, rul_unit: string): RulPrediction => ({
  device_id: "x",
  ts: 1_700_000_000_000_000, // µs
  rul,
  rul_unit,
  model_name: "plant",
  model_version: "1",
});

describe("remaining life", () => {
  it("projects the end date for clock units and not for cycles", () => {
    expect(projectedEnd(prediction(2, "hours"))).toBe(1_700_000_000_000 + 7_200_000);
    expect(projectedEnd(prediction(3, "days"))).toBe(1_700_000_000_000 + 3 * 86_400_000);
    expect(projectedEnd(prediction(-5, "hours"))).toBe(1_700_000_000_000); // overdue: now
    expect(projectedEnd(prediction(40, "cycles"))).toBeNull();
  });

  it("ranks devices with a prediction, shortest remaining life first", () => {
    const ranked = rankByRul([
      device("a", { rul: prediction(30, "hours") }),
      device("b"),
      device("c", { rul: prediction(4, "hours") }),
      device("d", { rul: prediction(30, "hours") }),
    ]);
    expect(ranked.map((d) => d.device_id)).toEqual(["c", "a", "d"]);
  });
});
