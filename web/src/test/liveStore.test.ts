import { describe, expect, it } from "vitest";
import { LiveStore, SPARK_POINTS } from "../lib/liveStore";
import type { LiveKind, LiveUpdate } from "../lib/types";
import { device } from "./devices";

// A store whose notifications run at once (no animation frame) and are counted.
function store(): { live: LiveStore; flushes: () => number } {
  const queued: (() => void)[] = [];
  const live = new LiveStore("default", (flush) => queued.push(flush), 0);
  let count = 0;
  live.subscribe(() => (count += 1));
  return {
    live,
    flushes: () => {
      queued.splice(0).forEach((f) => f());
      return count;
    },
  };
}

let seq = 0;
function update(kind: LiveKind, data: Record<string, unknown>): LiveUpdate {
  seq += 1;
  return { type: "update", kind, cursor: `e.${seq}`, data };
}

function reading(id: string, ts: number, value: number, labels: Record<string, string> = {}) {
  return update("readings", { device_id: id, ts, metrics: [{ name: "pressure", value, unit: "bar" }], labels });
}

describe("live store", () => {
  it("applies a reading to a known device: last value, last seen, sparkline, cursor", () => {
    const { live } = store();
    live.loadDevices([device("press-1", { status: "UNKNOWN" })]);
    const before = live.devices.get("press-1");
    live.apply(reading("press-1", 5_000_000, 2.5));
    const after = live.devices.get("press-1")!;
    expect(after).not.toBe(before); // a new object: React re-renders the row
    expect(after.last_values.pressure).toEqual({ value: 2.5, text: undefined, unit: "bar", quality: "GOOD", ts: 5_000_000 });
    expect(after.last_seen_ts).toBe(5_000_000);
    expect(after.status).toBe("ONLINE");
    expect(live.spark.get("press-1")).toEqual([2.5]);
    expect(live.cursor).toBe(`e.${seq}`);
  });

  it("keeps the newer value when an older reading arrives late", () => {
    const { live } = store();
    live.apply(reading("press-1", 2_000, 9));
    live.apply(reading("press-1", 1_000, 1));
    expect(live.devices.get("press-1")!.last_values.pressure.value).toBe(9);
    expect(live.devices.get("press-1")!.last_seen_ts).toBe(2_000);
  });

  it("makes a device it has not seen from the reading's labels", () => {
    const { live } = store();
    live.apply(reading("new-1", 1, 3, { site: "east", kind: "pump", tenant: "acme" }));
    expect(live.devices.get("new-1")).toMatchObject({ site: "east", type: "pump", tenant: "acme", status: "ONLINE" });
  });

  it("sets status from device events and RUL from predictions", () => {
    const { live } = store();
    live.loadDevices([device("press-1")]);
    live.apply(update("device_events", { device_id: "press-1", ts: 1, kind: "DISCONNECTED", source: "modbus" }));
    expect(live.devices.get("press-1")!.status).toBe("OFFLINE");
    live.apply(update("device_events", { device_id: "press-1", ts: 2, kind: "CONNECTED", source: "modbus" }));
    expect(live.devices.get("press-1")!.status).toBe("ONLINE");
    live.apply(update("rul", { device_id: "press-1", ts: 3, rul: 41.5, rul_unit: "cycles" }));
    expect(live.devices.get("press-1")!.rul!.rul).toBe(41.5);
  });

  it("counts open alerts per device as alerts fire, are acknowledged and resolve", () => {
    const { live } = store();
    live.loadDevices([device("press-1")]);
    const alert = { device_id: "press-1", type: "anomaly", severity: "warning", alert_id: "a1", start_ts: 1 };
    live.apply(update("alerts", { ...alert, status: "FIRING" }));
    live.apply(update("alerts", { ...alert, type: "offline", status: "FIRING" }));
    expect(live.devices.get("press-1")!.open_alerts).toBe(2);
    live.apply(update("alerts", { ...alert, status: "ACKNOWLEDGED", details: { acked_by: "olga" } }));
    expect(live.devices.get("press-1")!.open_alerts).toBe(2);
    expect(live.openAlerts().find((a) => a.type === "anomaly")!.details!.acked_by).toBe("olga");
    live.apply(update("alerts", { ...alert, status: "RESOLVED" }));
    expect(live.devices.get("press-1")!.open_alerts).toBe(1);
    expect(live.openAlerts().map((a) => a.type)).toEqual(["offline"]);
  });

  it("tells listeners once per frame however many updates arrive, and bounds the sparkline", () => {
    const { live, flushes } = store();
    for (let i = 0; i < 1000; i += 1) live.apply(reading(`d-${i % 10}`, i, i));
    expect(flushes()).toBe(1);
    expect(live.version).toBe(1);
    expect(live.devices.size).toBe(10);
    expect(live.spark.get("d-3")).toHaveLength(SPARK_POINTS);
    expect(live.spark.get("d-3")!.at(-1)).toBe(993);
    live.apply(reading("d-0", 5000, 1));
    expect(flushes()).toBe(2);
  });
});

describe("live store pacing", () => {
  it("redraws no more often than its minimum interval", async () => {
    let count = 0;
    const live = new LiveStore("default", (flush) => flush(), 50);
    live.subscribe(() => (count += 1));
    live.apply(reading("d-1", 1, 1)); // the first change draws at once
    expect(count).toBe(1);
    for (let i = 2; i < 100; i += 1) live.apply(reading("d-1", i, i));
    expect(count).toBe(1); // within 50 ms of the last draw: waits
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(count).toBe(2); // then one draw for all 98
    expect(live.devices.get("d-1")!.last_values.pressure.value).toBe(99);
  });
});

describe("live store anomalies", () => {
  it("keeps the newest anomalies first, bounded", () => {
    const { live } = store();
    const anomaly = (ts: number) => ({ device_id: "p", metric: "pressure", ts, value: 1, score: 9, threshold: 5, detector: "z" });
    live.loadAnomalies([anomaly(1), anomaly(3), anomaly(2)]);
    expect(live.anomalies.map((a) => a.ts)).toEqual([3, 2, 1]);
    live.apply(update("anomalies", anomaly(4)));
    expect(live.anomalies.map((a) => a.ts)).toEqual([4, 3, 2, 1]);
    for (let i = 5; i < 1000; i += 1) live.apply(update("anomalies", anomaly(i)));
    expect(live.anomalies).toHaveLength(500);
    expect(live.anomalies[0].ts).toBe(999);
  });
});

describe("live store pipeline health", () => {
  it("takes each pushed measurement; a REST load never replaces a pushed one", () => {
    const { live, flushes } = store();
    const health = (records: number) => ({
      views_ready: true,
      view_records: records,
      workers: [{ name: "sink-victoriametrics", healthy: true, rate_per_s: 12.5 }],
      lag: { "sentio-sink-victoriametrics": 3 },
    });
    expect(live.pipeline).toBeNull();
    live.apply(update("pipeline", health(10)));
    expect(live.pipeline?.view_records).toBe(10);
    live.loadPipeline(health(5)); // the REST answer arrived after the push: older
    expect(live.pipeline?.view_records).toBe(10);
    live.apply(update("pipeline", health(20)));
    expect(live.pipeline).toEqual(health(20));
    expect(live.devices.size).toBe(0); // no device for the pipeline
    expect(flushes()).toBe(1); // one redraw for all of it
  });
});
