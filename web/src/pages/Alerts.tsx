import { useState } from "react";
import { AlertHistoryView } from "../components/AlertHistoryView";
import { useSession, useStoreVersion } from "../context";
import { can } from "../lib/roles";
import type { Alert } from "../lib/types";
import { formatTime } from "../format";

// ITU-T X.733, most severe first, as the Alert schema's AlertSeverity
const SEVERITY_ORDER = ["critical", "major", "minor", "warning", "indeterminate"];

export function sortAlerts(alerts: Alert[]): Alert[] {
  const rank = (s: string) => {
    const i = SEVERITY_ORDER.indexOf(s.toLowerCase());
    return i < 0 ? SEVERITY_ORDER.length : i;
  };
  return [...alerts].sort((a, b) => rank(a.severity) - rank(b.severity) || b.start_ts - a.start_ts);
}

export function Alerts() {
  const { api, store, me } = useSession();
  useStoreVersion(store);
  const [message, setMessage] = useState("");
  const mayAct = can(me.role, "alerts:act");
  const [history, setHistory] = useState(false);
  const alerts = sortAlerts(history ? [...store.alerts.values()] : store.openAlerts());

  async function act(alert: Alert, action: "acknowledge" | "clear") {
    const path = `/api/v1/alerts/${encodeURIComponent(alert.device_id)}/${encodeURIComponent(alert.type)}/${action}`;
    try {
      await api.post(path, { alert_id: alert.alert_id });
      setMessage(`${action} sent for ${alert.device_id} ${alert.type}`);
    } catch (e) {
      setMessage(e instanceof Error ? e.message : String(e));
    }
  }

  return (
    <section aria-labelledby="alerts-title">
      <h1 id="alerts-title">{history ? "Alerts, latest state of each" : "Open alerts"}</h1>
      <label>
        <input type="checkbox" checked={history} onChange={(e) => setHistory(e.target.checked)} /> Include resolved
        (history)
      </label>
      <p className="muted" aria-live="polite">
        {message}
      </p>
      {alerts.length === 0 ? (
        <p>No alerts.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Severity</th>
                <th>Device</th>
                <th>Type</th>
                <th>Status</th>
                <th>Since</th>
                <th>Message</th>
                <th>History</th>
                {mayAct && <th>Actions</th>}
              </tr>
            </thead>
            <tbody>
              {alerts.map((a) => (
                <tr key={`${a.device_id}/${a.type}`} data-alert={`${a.device_id}/${a.type}`}>
                  <td>
                    <span className={`sev sev-${a.severity.toLowerCase()}`}>{a.severity}</span>
                  </td>
                  <td>
                    <a href={`#/device/${encodeURIComponent(a.device_id)}`}>{a.device_id}</a>
                  </td>
                  <td>{a.type}</td>
                  <td>
                    {a.status}
                    {a.details?.acked_by && ` by ${a.details.acked_by}`}
                    {a.details?.cleared_by && `, cleared by ${a.details.cleared_by}`}
                  </td>
                  <td>{formatTime(a.start_ts)}</td>
                  <td>{a.message}</td>
                  <td>
                    <AlertHistoryView alert={a} />
                  </td>
                  {mayAct && (
                    <td>
                      {a.status === "FIRING" && <button onClick={() => void act(a, "acknowledge")}>Acknowledge</button>}
                      {a.status !== "RESOLVED" && <button onClick={() => void act(a, "clear")}>Clear</button>}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
