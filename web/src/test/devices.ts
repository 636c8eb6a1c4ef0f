import type { Device } from "../lib/types";

/** A device as GET /api/v1/devices returns it, with the fields a test cares about changed. */
export function device(id: string, change: Partial<Device> = {}): Device {
  return {
    device_id: id,
    tenant: "acme",
    site: "north",
    type: "press",
    status: "ONLINE",
    labels: {},
    last_seen_ts: 1,
    last_values: {},
    rul: null,
    open_alerts: 0,
    ...change,
  };
}
