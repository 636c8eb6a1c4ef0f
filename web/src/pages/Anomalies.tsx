import { AnomalyTimeline, SEVERITY_COLOUR } from "../components/AnomalyTimeline";
import { useSession, useStoreVersion } from "../context";
import { SEVERITIES, severity } from "../lib/timeline";
import type { Anomaly } from "../lib/types";
import { formatTime } from "../format";

/** Anomalies grouped by the minute they happened in, newest first. */
export function byMinute(anomalies: Anomaly[]): [number, Anomaly[]][] {
  const groups = new Map<number, Anomaly[]>();
  for (const anomaly of anomalies) {
    const minute = Math.floor(anomaly.ts / 60_000_000) * 60_000_000;
    groups.set(minute, [...(groups.get(minute) ?? []), anomaly]);
  }
  return [...groups.entries()].sort((a, b) => b[0] - a[0]);
}

export function Anomalies() {
  const { store } = useSession();
  useStoreVersion(store);
  const groups = byMinute(store.anomalies);
  return (
    <section aria-labelledby="anomalies-title">
      <h1 id="anomalies-title">Anomalies</h1>
      <p className="muted">Across the fleet, newest first, live (the last {store.anomalies.length}).</p>
      {groups.length === 0 && <p>No anomalies.</p>}
      {groups.length > 0 && (
        <>
          <h2>Timeline</h2>
          <ul className="severity-legend" aria-label="Severity (score against the detector's threshold)">
            {SEVERITIES.map((s) => (
              <li key={s}>
                <span aria-hidden="true" style={{ background: `var(${SEVERITY_COLOUR[s]})` }} />
                {s} {s === "critical" ? "(≥ 2×)" : s === "major" ? "(≥ 1.5×)" : "(< 1.5×)"}
              </li>
            ))}
          </ul>
          <AnomalyTimeline
            anomalies={store.anomalies}
            onOpen={(id) => (window.location.hash = `#/device/${encodeURIComponent(id)}`)}
          />
          <p className="muted">Click a marker to open its device; the list below has every anomaly.</p>
          <h2>By minute</h2>
        </>
      )}
      <ol className="timeline">
        {groups.map(([minute, items]) => (
          <li key={minute}>
            <h3>{formatTime(minute)}</h3>
            <ul>
              {items.map((a) => (
                <li key={`${a.device_id}/${a.metric}/${a.ts}`}>
                  <a href={`#/device/${encodeURIComponent(a.device_id)}`}>{a.device_id}</a> {a.metric} ={" "}
                  {a.value.toPrecision(4)}
                  {a.expected != null && ` (expected ${a.expected.toPrecision(4)})`} · score {a.score.toFixed(2)} /{" "}
                  {a.threshold.toFixed(2)} · {a.detector} · {severity(a)}
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ol>
    </section>
  );
}
