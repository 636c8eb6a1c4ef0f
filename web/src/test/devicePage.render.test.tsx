import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { SessionContext, type Session } from "../context";
import { ApiClient } from "../lib/api";
import { LiveStore } from "../lib/liveStore";
import type { Anomaly, Series } from "../lib/types";
import { DevicePage } from "../pages/DevicePage";
import { device } from "./devices";

// jsdom draws nothing: a 2D context that accepts every call lets uPlot build its DOM here
// (what it draws is checked in Chromium by tests/integration/test_web_dashboard.py)
const canvas = (): unknown =>
  new Proxy({} as Record<string | symbol, unknown>, {
    get: (target, key) => (key in target ? target[key] : key === "measureText" ? () => ({ width: 10 }) : () => undefined),
  });
vi.spyOn(HTMLCanvasElement.prototype, "getContext").mockImplementation(canvas as never);
vi.stubGlobal("Path2D", function Path2D() {
  return canvas();
});

const value = (v: number, unit: string) => ({ value: v, text: null, unit, quality: "GOOD", ts: 1 });

function renderDevice(get: (path: string, params?: Record<string, string | number | undefined>) => unknown) {
  const api = new ApiClient("", sessionStorage);
  const spy = vi.spyOn(api, "get").mockImplementation(((path: string, params?: Record<string, string | number>) =>
    Promise.resolve(get(path, params))) as never);
  const store = new LiveStore("default", (flush) => flush(), 0);
  store.loadDevices([
    device("press-1", {
      last_values: { temperature: value(60, "°C"), pressure: value(5, "bar"), vibration: value(0.2, "mm/s") },
    } as never),
  ]);
  const session: Session = { api, store, me: { name: "u", role: "viewer", tenants: ["acme"], kind: "user" }, live: "live" };
  render(
    <SessionContext.Provider value={session}>
      <DevicePage deviceId="press-1" />
    </SessionContext.Provider>,
  );
  return spy;
}

const anomaly: Anomaly = { device_id: "press-1", metric: "pressure", ts: 1, value: 9, score: 9, threshold: 4, detector: "zscore" };

describe("device page", () => {
  it("charts every metric over one shared range, each with its own anomalies", async () => {
    const spy = renderDevice((path, params) => {
      if (path === "/api/v1/anomalies") return { items: [anomaly], next_cursor: null };
      if (path.endsWith("/events")) return [];
      const metric = String(params?.metric);
      const series: Series = {
        metric,
        source: "raw",
        step_s: Number(params?.step),
        unit: null,
        points: metric === "rul" ? [] : [{ ts: 1, value: 1 }, { ts: 2_000_000, value: 2 }],
      } as never;
      return series;
    });
    const figures = await screen.findAllByRole("figure");
    expect(figures.map((f) => f.getAttribute("data-metric"))).toEqual(["pressure", "temperature", "vibration"]);
    for (const figure of figures) {
      await waitFor(() => expect(within(figure).getByTestId("series-info").textContent).toBe("2 points from raw, step 2s"));
    }
    const charts = screen.getAllByRole("img");
    expect(charts.map((c) => c.getAttribute("aria-label"))).toEqual([
      "pressure chart (bar), 2 points, 1 anomaly",
      "temperature chart (°C), 2 points, 0 anomalies",
      "vibration chart (mm/s), 2 points, 0 anomalies",
    ]);
    const seriesCalls = () =>
      spy.mock.calls.filter(([path, params]) => path.endsWith("/series") && params?.metric !== "rul").map(([, p]) => p);
    // the 1 h default: every chart asked for the same window
    const windows = new Set(seriesCalls().map((p) => `${p?.from}-${p?.to}-${p?.step}`));
    expect(seriesCalls()).toHaveLength(3);
    expect(windows.size).toBe(1);
    // one range button reloads every chart, again on one window
    fireEvent.click(screen.getByRole("button", { name: "15 min" }));
    await waitFor(() => expect(seriesCalls()).toHaveLength(6));
    const later = seriesCalls().slice(3);
    expect(new Set(later.map((p) => `${p?.from}-${p?.to}-${p?.step}`)).size).toBe(1);
    expect(Number(later[0]?.to) - Number(later[0]?.from)).toBe(900);
    expect(screen.getByRole("button", { name: "15 min" }).getAttribute("aria-pressed")).toBe("true");
  });
});

describe("device page off screen", () => {
  it("loads a metric's chart only when it nears the screen", async () => {
    const observed = new Map<Element, IntersectionObserverCallback>();
    class Observer {
      constructor(private callback: IntersectionObserverCallback) {}
      observe(element: Element) {
        observed.set(element, this.callback);
      }
      disconnect() {}
    }
    vi.stubGlobal("IntersectionObserver", Observer);
    try {
      const spy = renderDevice((path, params) =>
        path === "/api/v1/anomalies"
          ? { items: [], next_cursor: null }
          : path.endsWith("/events")
            ? []
            : { metric: params?.metric, source: "raw", step_s: 2, unit: null, points: [{ ts: 1, value: 1 }] },
      );
      const asked = () => spy.mock.calls.filter(([p, q]) => p.endsWith("/series") && q?.metric !== "rul").map(([, q]) => q?.metric);
      const figures = await screen.findAllByRole("figure");
      expect(figures.map((f) => within(f).getByText(/loads when scrolled into view/) !== null)).toEqual([true, true, true]);
      expect(asked()).toEqual([]);
      // temperature scrolls into view: only its chart loads
      const temperature = figures[1];
      act(() => observed.get(temperature)?.([{ isIntersecting: true } as IntersectionObserverEntry], {} as IntersectionObserver));
      await waitFor(() => expect(within(temperature).getByTestId("series-info").textContent).toBe("1 points from raw, step 2s"));
      expect(asked()).toEqual(["temperature"]);
      expect(within(figures[0]).queryByTestId("series-info")).toBeNull();
    } finally {
      vi.unstubAllGlobals();
      vi.stubGlobal("Path2D", function Path2D() {
        return canvas();
      });
    }
  });
});
