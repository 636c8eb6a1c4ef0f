import { memo, useMemo, useState } from "react";
import { Sparkline } from "../components/Chart";
import { useSession, useStoreVersion } from "../context";
import { facets, filterDevices, NO_FILTER, type FleetFilter } from "../lib/fleet";
import type { Device, DeviceStatus } from "../lib/types";
import { formatTime, formatValue } from "../format";

const SHOWN = 500; // rows rendered at once; the filter narrows the rest

export function Fleet() {
  const { store } = useSession();
  const version = useStoreVersion(store);
  const [filter, setFilter] = useState<FleetFilter>(NO_FILTER);
  const choices = useMemo(() => facets(store.devices.values()), [store, version]);
  const devices = useMemo(() => filterDevices(store.devices.values(), filter), [store, version, filter]);
  const set = (change: Partial<FleetFilter>) => setFilter((f) => ({ ...f, ...change }));

  return (
    <section aria-labelledby="fleet-title">
      <h1 id="fleet-title">Fleet</h1>
      <div className="filters" role="search">
        <input
          type="search"
          aria-label="Search devices"
          placeholder="Search id, site, type, label"
          value={filter.query}
          onChange={(e) => set({ query: e.target.value })}
        />
        <select aria-label="Site" value={filter.site} onChange={(e) => set({ site: e.target.value })}>
          <option value="">All sites</option>
          {choices.sites.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
        <select aria-label="Type" value={filter.type} onChange={(e) => set({ type: e.target.value })}>
          <option value="">All types</option>
          {choices.types.map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
        <select
          aria-label="Status"
          value={filter.status}
          onChange={(e) => set({ status: e.target.value as DeviceStatus | "" })}
        >
          <option value="">Any status</option>
          <option>ONLINE</option>
          <option>OFFLINE</option>
          <option>UNKNOWN</option>
        </select>
        <span className="muted" aria-live="polite">
          {devices.length} of {store.devices.size} devices
        </span>
      </div>
      <div className="table-wrap">
        <table className="fleet">
          <thead>
            <tr>
              <th>Device</th>
              <th>Status</th>
              <th>Site</th>
              <th>Type</th>
              <th>Last values</th>
              <th>Trend</th>
              <th>RUL</th>
              <th>Alerts</th>
              <th>Seen</th>
            </tr>
          </thead>
          <tbody>
            {devices.slice(0, SHOWN).map((d) => (
              <DeviceRow key={d.device_id} device={d} spark={store.spark.get(d.device_id)} />
            ))}
          </tbody>
        </table>
      </div>
      {devices.length > SHOWN && <p className="muted">Showing {SHOWN}; narrow the filter to see the rest.</p>}
    </section>
  );
}

// On a phone the header row is hidden and each cell names itself ("RUL –", "Open alerts 0",
// "Trend –" before a sparkline has two values);
// on a wider screen the column headers do, and the labels are not shown (nor read out).
function Label({ children }: { children: string }) {
  return <span className="cell-label">{children} </span>;
}

// A row re-renders only when its device or sparkline changed (the store copies what changes).
const DeviceRow = memo(function DeviceRow({ device, spark }: { device: Device; spark: number[] | undefined }) {
  return (
    <tr data-device={device.device_id}>
      <td>
        <a href={`#/device/${encodeURIComponent(device.device_id)}`}>{device.device_id}</a>
      </td>
      <td>
        <span className={`status status-${device.status.toLowerCase()}`}>{device.status}</span>
      </td>
      <td>
        <Label>Site</Label>
        {device.site}
      </td>
      <td>
        <Label>Type</Label>
        {device.type ?? "–"}
      </td>
      <td className="values">
        <div>
          {Object.entries(device.last_values).map(([name, value]) => (
            <span key={name} className="value" data-metric={name}>
              {name} <b>{formatValue(value)}</b>
            </span>
          ))}
        </div>
      </td>
      <td>
        <Label>Trend</Label>
        <Sparkline values={spark} />
      </td>
      <td data-cell="rul">
        <Label>RUL</Label>
        {device.rul ? `${device.rul.rul.toFixed(0)} ${device.rul.rul_unit ?? ""}` : "–"}
      </td>
      <td data-cell="alerts">
        <Label>Open alerts</Label>
        {device.open_alerts > 0 ? <span className="badge">{device.open_alerts}</span> : "0"}
      </td>
      <td>
        <Label>Seen</Label>
        {formatTime(device.last_seen_ts)}
      </td>
    </tr>
  );
});
