import { useEffect, useState } from "react";
import { useSession } from "../context";
import { describeEntry, historyPath, historyVersion, type AlertHistory } from "../lib/alertHistory";
import type { Alert } from "../lib/types";
import { formatTime } from "../format";

/** The full history of one alert, fetched when opened and again when the alert changes. A
 * disclosure, not a button: every role may read it. */
export function AlertHistoryView({ alert }: { alert: Alert }) {
  const { api } = useSession();
  const [open, setOpen] = useState(false);
  const [history, setHistory] = useState<AlertHistory | null>(null);
  const [error, setError] = useState("");
  const version = historyVersion(alert);
  const path = historyPath(alert);

  useEffect(() => {
    if (!open) return;
    let current = true;
    api
      .get<AlertHistory>(path)
      .then((h) => {
        if (!current) return;
        setHistory(h);
        setError("");
      })
      .catch((e: unknown) => current && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      current = false;
    };
  }, [api, open, path, version]); // version: the history may have changed

  return (
    <details onToggle={(e) => setOpen((e.target as HTMLDetailsElement).open)}>
      <summary>History</summary>
      {error && <p role="alert">{error}</p>}
      {open && history === null && !error && <p className="muted">Loading…</p>}
      {history && (
        <ol className="alert-history" aria-label={`History of ${alert.device_id} ${alert.type}`}>
          {history.entries.map((e) => (
            <li key={`${e.ts}/${e.event}/${e.command_id ?? ""}`} data-event={e.event}>
              <time dateTime={new Date(e.ts / 1000).toISOString()}>{formatTime(e.ts)}</time> {describeEntry(e)}
            </li>
          ))}
        </ol>
      )}
    </details>
  );
}
