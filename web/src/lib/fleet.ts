import type { Device, DeviceStatus } from "./types";

export interface FleetFilter {
  query: string; // matched against id, site, type and label values
  site: string; // "" = any
  type: string;
  status: DeviceStatus | "";
}

export const NO_FILTER: FleetFilter = { query: "", site: "", type: "", status: "" };

export function matches(device: Device, filter: FleetFilter): boolean {
  if (filter.site && device.site !== filter.site) return false;
  if (filter.type && (device.type ?? "") !== filter.type) return false;
  if (filter.status && device.status !== filter.status) return false;
  const query = filter.query.trim().toLowerCase();
  if (!query) return true;
  const haystack = [device.device_id, device.site, device.type ?? "", ...Object.values(device.labels)];
  return haystack.some((text) => text.toLowerCase().includes(query));
}

/** Devices passing the filter: open alerts first, then lowest RUL, then by id. */
export function filterDevices(devices: Iterable<Device>, filter: FleetFilter): Device[] {
  const kept: Device[] = [];
  for (const device of devices) if (matches(device, filter)) kept.push(device);
  return kept.sort(
    (a, b) =>
      b.open_alerts - a.open_alerts ||
      (a.rul?.rul ?? Infinity) - (b.rul?.rul ?? Infinity) ||
      a.device_id.localeCompare(b.device_id),
  );
}

/** The distinct sites and types, sorted: the filter's choices. */
export function facets(devices: Iterable<Device>): { sites: string[]; types: string[] } {
  const sites = new Set<string>();
  const types = new Set<string>();
  for (const device of devices) {
    sites.add(device.site);
    if (device.type) types.add(device.type);
  }
  return { sites: [...sites].sort(), types: [...types].sort() };
}
