import { useEffect, useState } from "react";
import { Chart } from "../components/Chart";
import { useSession, useStoreVersion } from "../context";
import { RANGES, rulQuery, seriesQuery } from "../lib/range";
import type { Anomaly, LoggedEvent, Page, Series } from "../lib/types";
import { formatTime, formatValue } from "../format";

export function DevicePage({ deviceId }: { deviceId: string }) {
  const { api, store } = useSession();
  useStoreVersion(store);
  const device = store.devices.get(deviceId);
  const metrics = Object.keys(device?.last_values ?? {}).sort();
  const [metric, setMetric] = useState("");
  const [seconds, setSeconds] = useState(RANGES[1].seconds);
  const [series, setSeries] = useState<Series | null>(null);
  const [marks, setMarks] = useState<Anomaly[]>([]);
  const [rulSeries, setRulSeries] = useState<Series | null>(null);
  const [error, setError] = useState("");
  const chosen = metric || metrics[0] || "";

  useEffect(() => {
    if (!chosen) return;
    let current = true;
    const query = seriesQuery(seconds, Date.now() / 1000);
    setError("");
    const path = `/api/v1/devices/${encodeURIComponent(deviceId)}/series`;
    api
      .get<Series>(path, { metric: chosen, ...query })
      .then((s) => current && setSeries(s))
      .catch((e: unknown) => current && setError(e instanceof Error ? e.message : String(e)));
    api
      .get<Page<Anomaly>>("/api/v1/anomalies", { device_id: deviceId, from: query.from, to: query.to, limit: 1000 })
      .then((page) => current && setMarks(page.items.filter((a) => a.metric === chosen)))
      .catch(() => current && setMarks([]));
    api
      .get<Series>(path, { metric: "rul", ...rulQuery(seconds, Date.now() / 1000) }) // as the VictoriaMetrics sink wrote it
      .then((s) => current && setRulSeries(s))
      .catch(() => current && setRulSeries(null));
    return () => {
      current = false;
    };
  }, [api, deviceId, chosen, seconds]);

  const [events, setEvents] = useState<LoggedEvent[] | null>(null);
  useEffect(() => {
    let current = true;
    api
      .get<LoggedEvent[]>(`/api/v1/devices/${encodeURIComponent(deviceId)}/events`, { limit: 20 })
      .then((e) => current && setEvents(e))
      .catch(() => current && setEvents(null));
    return () => {
      current = false;
    };
  }, [api, deviceId]);
  const anomalies = store.anomalies.filter((a) => a.device_id === deviceId).slice(0, 20);

  if (device === undefined) return <p>Unknown device {deviceId}.</p>;
  return (
    <section aria-labelledby="device-title">
      <h1 id="device-title">{deviceId}</h1>
      <p>
        <span className={`status status-${device.status.toLowerCase()}`}>{device.status}</span> · site {device.site} ·
        type {device.type ?? "–"} · seen {formatTime(device.last_seen_ts)}
        {device.rul && ` · RUL ${device.rul.rul.toFixed(0)} ${device.rul.rul_unit ?? ""}`}
      </p>
      <div className="filters">
        <select aria-label="Metric" value={chosen} onChange={(e) => setMetric(e.target.value)}>
          {metrics.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
        <div role="group" aria-label="Range" className="ranges">
          {RANGES.map((r) => (
            <button key={r.label} aria-pressed={r.seconds === seconds} onClick={() => setSeconds(r.seconds)}>
              {r.label}
            </button>
          ))}
        </div>
        {series && (
          <span className="muted" data-testid="series-info">
            {series.points.length} points from {series.source}, step {series.step_s}s
          </span>
        )}
      </div>
      {error && <p role="alert">{error}</p>}
      {series && series.metric === chosen && (
        <Chart
          points={series.points}
          label={chosen}
          unit={series.unit ?? device.last_values[chosen]?.unit}
          markers={marks}
        />
      )}
      <h2>Remaining useful life</h2>
      {rulSeries && rulSeries.points.length > 0 ? (
        <>
          <p className="muted" data-testid="rul-info">
            {rulSeries.points.length} points from {rulSeries.source}, step {rulSeries.step_s}s
          </p>
          <Chart points={rulSeries.points} label="RUL" unit={rulSeries.unit ?? device.rul?.rul_unit} />
        </>
      ) : (
        <p className="muted">No RUL predictions in this range.</p>
      )}
      <h2>Recent anomalies</h2>
      {anomalies.length === 0 ? (
        <p className="muted">None in the last {store.anomalies.length} of the fleet.</p>
      ) : (
        <ul>
          {anomalies.map((a) => (
            <li key={`${a.metric}/${a.ts}`}>
              {formatTime(a.ts)} {a.metric} = {a.value.toPrecision(4)} (score {a.score.toFixed(2)}, {a.detector})
            </li>
          ))}
        </ul>
      )}
      <h2>Recent events</h2>
      {events === null || events.length === 0 ? (
        <p className="muted">No events in the last 24 h.</p>
      ) : (
        <ul>
          {events.map((e) => (
            <li key={`${e.ts}/${e.kind}`}>
              {formatTime(e.ts)} {e.kind}: {e.message}
            </li>
          ))}
        </ul>
      )}
      <h2>Last values</h2>
      <ul>
        {metrics.map((m) => (
          <li key={m}>
            {m}: {formatValue(device.last_values[m])}
          </li>
        ))}
      </ul>
    </section>
  );
}
