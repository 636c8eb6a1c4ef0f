import type { Alert } from "./types";

// An alert's history as GET /api/v1/alerts/{device}/{type}/history answers it: every
// acknowledge and clear the API's views hold (an Alertmanager silence is an ACK by its
// author) and when the latest occurrence started and ended, oldest first.

export interface AlertHistoryEntry {
  ts: number; // µs since the epoch
  event: "FIRING" | "ACK" | "CLEAR" | "RESOLVED";
  user?: string;
  comment?: string;
  alert_id?: string | null;
  command_id?: string | null;
}

export interface AlertHistory {
  alert: Alert;
  entries: AlertHistoryEntry[];
}

const VERBS: Record<AlertHistoryEntry["event"], string> = {
  FIRING: "fired",
  ACK: "acknowledged",
  CLEAR: "cleared",
  RESOLVED: "resolved",
};

/** One line of the history: what happened, by whom, and the note. */
export function describeEntry(entry: AlertHistoryEntry): string {
  const who = entry.user ? ` by ${entry.user}` : "";
  const note = entry.comment ? `: ${entry.comment}` : "";
  return `${VERBS[entry.event] ?? entry.event.toLowerCase()}${who}${note}`;
}

/** The path of an alert's history. */
export function historyPath(alert: Pick<Alert, "device_id" | "type">): string {
  return `/api/v1/alerts/${encodeURIComponent(alert.device_id)}/${encodeURIComponent(alert.type)}/history`;
}

/** What changes when the history may have: a new command moves the status, the users or the
 * end (a second acknowledgement changes ack_ts), so the open history is fetched again. */
export function historyVersion(alert: Alert): string {
  const d = alert.details ?? {};
  return [alert.alert_id, alert.status, alert.ack_ts ?? "", alert.end_ts ?? "", d.acked_by ?? "", d.cleared_by ?? ""].join("|");
}
