import { useEffect, useMemo, useRef, useState } from "react";
import { Chart } from "../components/Chart";
import { useSession, useStoreVersion } from "../context";
import type { ApiClient } from "../lib/api";
import { RANGES, rulQuery, seriesQuery } from "../lib/range";
import { anomaliesByMetric, deviceMetrics, shouldLoad } from "../lib/smallMultiples";
import type { Anomaly, LoggedEvent, Page, Series } from "../lib/types";
import { counted, formatTime, formatValue } from "../format";

const NO_MARKS: Anomaly[] = [];

/** True once the element has come on screen (or near it); stays true. */
function useSeen<T extends Element>(): [React.RefObject<T>, boolean] {
  const ref = useRef<T>(null);
  const observable = typeof IntersectionObserver !== "undefined";
  const [seen, setSeen] = useState(!observable);
  useEffect(() => {
    const element = ref.current;
    if (seen || element === null || !observable) return;
    const observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => shouldLoad(e, true))) setSeen(true);
      },
      { rootMargin: "200px" },
    );
    observer.observe(element);
    return () => observer.disconnect();
  }, [seen, observable]);
  return [ref, seen];
}

/** One metric's chart over the page's range, loaded when it comes near the screen. */
export function MetricChart({
  api,
  deviceId,
  metric,
  query,
  unit,
  marks,
}: {
  api: ApiClient;
  deviceId: string;
  metric: string;
  query: { from: number; to: number; step: number };
  unit?: string | null;
  marks: Anomaly[];
}) {
  const [ref, seen] = useSeen<HTMLElement>();
  const [series, setSeries] = useState<Series | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    if (!seen) return;
    let current = true;
    setError("");
    api
      .get<Series>(`/api/v1/devices/${encodeURIComponent(deviceId)}/series`, { metric, ...query })
      .then((s) => current && setSeries(s))
      .catch((e: unknown) => current && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      current = false;
    };
  }, [api, deviceId, metric, query, seen]);
  const id = `metric-${metric.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  return (
    <figure ref={ref} className="metric-chart" data-metric={metric} aria-labelledby={id}>
      <figcaption>
        <h3 id={id}>{metric}</h3>
        {series && series.metric === metric ? (
          <span className="muted" data-testid="series-info">
            {series.points.length} points from {series.source}, step {series.step_s}s
          </span>
        ) : (
          <span className="muted">{seen ? "loading…" : "loads when scrolled into view"}</span>
        )}
      </figcaption>
      {error && <p role="alert">{error}</p>}
      {series && series.metric === metric && (
        <Chart points={series.points} label={metric} unit={series.unit ?? unit} markers={marks} height={200} />
      )}
    </figure>
  );
}

export function DevicePage({ deviceId }: { deviceId: string }) {
  const { api, store } = useSession();
  useStoreVersion(store);
  const device = store.devices.get(deviceId);
  const metrics = deviceMetrics(device?.last_values);
  const metricsKey = metrics.join("\n");
  const [seconds, setSeconds] = useState(RANGES[1].seconds);
  // one window for every chart of the page, fixed when the range is chosen
  const query = useMemo(() => seriesQuery(seconds, Date.now() / 1000), [seconds]);
  const [marks, setMarks] = useState<Anomaly[]>([]);
  const [rulSeries, setRulSeries] = useState<Series | null>(null);

  useEffect(() => {
    let current = true;
    const path = `/api/v1/devices/${encodeURIComponent(deviceId)}/series`;
    api
      .get<Page<Anomaly>>("/api/v1/anomalies", { device_id: deviceId, from: query.from, to: query.to, limit: 1000 })
      .then((page) => current && setMarks(page.items))
      .catch(() => current && setMarks([]));
    api
      .get<Series>(path, { metric: "rul", ...rulQuery(seconds, query.to) }) // as the VictoriaMetrics sink wrote it
      .then((s) => current && setRulSeries(s))
      .catch(() => current && setRulSeries(null));
    return () => {
      current = false;
    };
  }, [api, deviceId, query, seconds]);
  // recomputed when the metrics change, not on every live update
  const byMetric = useMemo(() => anomaliesByMetric(marks, metrics), [marks, metricsKey]);

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
        <div role="group" aria-label="Range" className="ranges">
          {RANGES.map((r) => (
            <button key={r.label} aria-pressed={r.seconds === seconds} onClick={() => setSeconds(r.seconds)}>
              {r.label}
            </button>
          ))}
        </div>
        <span className="muted">
          {counted(metrics.length, "metric", "metrics")}, {counted(marks.length, "anomaly", "anomalies")} in range
        </span>
      </div>
      <h2>Metrics</h2>
      <div className="small-multiples">
        {metrics.map((m) => (
          <MetricChart
            key={m}
            api={api}
            deviceId={deviceId}
            metric={m}
            query={query}
            unit={device.last_values[m]?.unit}
            marks={byMetric.get(m) ?? NO_MARKS}
          />
        ))}
      </div>
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
