import type { Device } from "./types";

// Devices ranked by predicted remaining life, with the date it runs out where the model's
// unit is a clock unit (cycles have no date without a cycle length).

const UNIT_S: Record<string, number> = {
  s: 1,
  second: 1,
  seconds: 1,
  minutes: 60,
  hours: 3600,
  h: 3600,
  days: 86400,
  d: 86400,
};

/** When the remaining life runs out, ms since the epoch; null for a unit with no clock. */
export function projectedEnd(rul: { ts: number; rul: number; rul_unit?: string }): number | null {
  const unit = UNIT_S[(rul.rul_unit ?? "").toLowerCase()];
  if (unit === undefined) return null;
  return rul.ts / 1000 + Math.max(rul.rul, 0) * unit * 1000;
}

/** Devices with a prediction, shortest remaining life first. */
export function rankByRul(devices: Iterable<Device>): Device[] {
  return [...devices]
    .filter((d) => d.rul !== null)
    .sort((a, b) => a.rul!.rul - b.rul!.rul || a.device_id.localeCompare(b.device_id));
}
