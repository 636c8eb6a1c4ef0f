import { describe, expect, it } from "vitest";
import { facets, filterDevices, NO_FILTER } from "../lib/fleet";
import type { Device } from "../lib/types";
import { device } from "./devices";

const fleet = [
  device("press-1"),
  device("press-2", { site: "south", status: "OFFLINE" }),
  device("pump-1", { type: "pump", labels: { line: "bottling" } }),
  device("pump-2", { type: "pump", site: "south", open_alerts: 2 }),
  device("fan-1", { type: null, status: "UNKNOWN", rul: { rul: 12 } as Device["rul"] }),
];

const ids = (devices: Device[]) => devices.map((d) => d.device_id);

describe("fleet filter", () => {
  it("keeps everything without a filter, open alerts first, then lowest RUL, then id", () => {
    expect(ids(filterDevices(fleet, NO_FILTER))).toEqual(["pump-2", "fan-1", "press-1", "press-2", "pump-1"]);
  });

  it("filters by site, type and status together", () => {
    expect(ids(filterDevices(fleet, { ...NO_FILTER, site: "south" }))).toEqual(["pump-2", "press-2"]);
    expect(ids(filterDevices(fleet, { ...NO_FILTER, type: "pump" }))).toEqual(["pump-2", "pump-1"]);
    expect(ids(filterDevices(fleet, { ...NO_FILTER, status: "OFFLINE" }))).toEqual(["press-2"]);
    expect(ids(filterDevices(fleet, { ...NO_FILTER, site: "south", type: "pump", status: "ONLINE" }))).toEqual([
      "pump-2",
    ]);
  });

  it("searches id, site, type and label values, case-insensitively", () => {
    expect(ids(filterDevices(fleet, { ...NO_FILTER, query: "PRESS" }))).toEqual(["press-1", "press-2"]);
    expect(ids(filterDevices(fleet, { ...NO_FILTER, query: "bottl" }))).toEqual(["pump-1"]);
    expect(ids(filterDevices(fleet, { ...NO_FILTER, query: "south" }))).toEqual(["pump-2", "press-2"]);
    expect(filterDevices(fleet, { ...NO_FILTER, query: "nothing" })).toEqual([]);
  });

  it("offers the distinct sites and types as choices", () => {
    expect(facets(fleet)).toEqual({ sites: ["north", "south"], types: ["press", "pump"] });
  });
});
