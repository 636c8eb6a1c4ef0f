import { act, render, screen, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { SessionContext, type Session } from "../context";
import { ApiClient } from "../lib/api";
import { LiveStore } from "../lib/liveStore";
import type { Anomaly } from "../lib/types";
import { Anomalies } from "../pages/Anomalies";

// jsdom draws nothing: a 2D context that accepts every call lets uPlot build its DOM here
const canvas = (): unknown =>
  new Proxy({} as Record<string | symbol, unknown>, {
    get: (target, key) => (key in target ? target[key] : key === "measureText" ? () => ({ width: 10 }) : () => undefined),
  });
vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockImplementation(canvas as never);
vi.stubGlobal("Path2D", function Path2D() {
  return canvas();
});

const S = 1_000_000;
const anomaly = (device_id: string, ts: number, score: number): Anomaly => ({
  device_id,
  metric: "pressure",
  ts,
  value: 9.75,
  score,
  threshold: 4,
  detector: "zscore",
});

function renderAnomalies(anomalies: Anomaly[]) {
  const store = new LiveStore("default", (flush) => flush(), 0);
  store.loadAnomalies(anomalies);
  const session: Session = {
    api: new ApiClient("", sessionStorage),
    store,
    me: { name: "u", role: "viewer", tenants: ["acme"], kind: "user" },
    live: "live",
  };
  render(
    <SessionContext.Provider value={session}>
      <Anomalies />
    </SessionContext.Provider>,
  );
  return store;
}

describe("anomalies page", () => {
  it("draws the fleet's anomalies on a timeline above the list, and follows live ones", () => {
    const store = renderAnomalies([anomaly("press-1", 1_700_000_000 * S, 9), anomaly("press-2", 1_700_000_030 * S, 7)]);
    expect(screen.getByRole("img").getAttribute("aria-label")).toBe("Anomaly timeline: 2 anomalies on 2 devices");
    const items = screen.getAllByRole("listitem").filter((li) => li.textContent?.includes("zscore") && li.querySelector("li") === null);
    expect(items.map((li) => li.textContent?.split(" · ").at(-1))).toEqual(["major", "critical"]); // newest first
    expect(within(items[0]).getByRole("link", { name: "press-2" }).getAttribute("href")).toBe("#/device/press-2");
    act(() => store.apply({ type: "update", kind: "anomalies", cursor: "c1", data: anomaly("press-3", 1_700_000_060 * S, 5) } as never));
    expect(screen.getByRole("img").getAttribute("aria-label")).toBe("Anomaly timeline: 3 anomalies on 3 devices");
  });

  it("draws no chart without anomalies", () => {
    renderAnomalies([]);
    expect(screen.getByText("No anomalies.")).toBeTruthy();
    expect(screen.queryByRole("img")).toBeNull();
  });
});
