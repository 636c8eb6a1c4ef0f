// Records keep the Avro contract's field names; times are µs since the epoch (docs/api.md).

export type Role = "viewer" | "operator" | "admin";
export type DeviceStatus = "ONLINE" | "OFFLINE" | "UNKNOWN";

export interface LastValue {
  value: number | null;
  text?: string | null;
  unit?: string | null;
  quality?: string;
  ts: number;
}

export interface RulPrediction {
  device_id: string;
  ts: number;
  rul: number;
  rul_unit?: string;
  lower?: number | null;
  upper?: number | null;
  model_name: string;
  model_version: string;
}

export interface Device {
  device_id: string;
  tenant: string;
  site: string;
  type: string | null;
  status: DeviceStatus;
  labels: Record<string, string>;
  last_seen_ts: number | null;
  last_values: Record<string, LastValue>;
  rul: RulPrediction | null;
  open_alerts: number;
}

export interface DeviceEvent {
  device_id: string;
  ts: number;
  kind: string;
  message?: string;
  source: string;
  labels?: Record<string, string>;
}

export interface DeviceDetail extends Device {
  alerts: Alert[];
  last_event: DeviceEvent | null;
}

export interface Alert {
  alert_id: string;
  device_id: string;
  type: string;
  severity: string;
  status: string; // FIRING, ACKNOWLEDGED, RESOLVED
  start_ts: number;
  end_ts?: number | null;
  ack_ts?: number | null;
  count?: number;
  message?: string;
  details?: Record<string, string>;
  labels?: Record<string, string>;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface Point {
  ts: number;
  value: number;
}

export interface Series {
  device_id: string;
  metric: string;
  source: "raw" | "raw_averaged" | "rollup_1m" | "rollup_1h";
  start_ts: number;
  end_ts: number;
  step_s: number;
  unit?: string | null; // the series' unit label where it has one (RUL: cycles or hours)
  points: Point[];
}

export interface Me {
  name: string;
  role: Role;
  tenants: string[];
  kind: "user" | "api_key";
}

export interface ReadingMetric {
  name: string;
  value: number | null;
  text?: string | null;
  unit?: string | null;
  quality?: string;
}

export interface Reading {
  device_id: string;
  ts: number;
  metrics: ReadingMetric[];
  labels?: Record<string, string>;
}

export type LiveKind = "readings" | "anomalies" | "alerts" | "rul" | "device_events" | "pipeline";

/** GET /api/v1/health/pipeline, and the data of a live "pipeline" update. */
export interface PipelineHealth {
  views_ready: boolean;
  view_records: number;
  workers: { name: string; healthy: boolean; rate_per_s: number | null }[];
  lag: Record<string, number>;
}

export interface LiveUpdate {
  type: "update";
  kind: LiveKind;
  cursor: string;
  data: Record<string, unknown>;
}

export interface Anomaly {
  device_id: string;
  metric: string;
  ts: number;
  value: number;
  score: number;
  threshold: number;
  expected?: number | null;
  detector: string;
  labels?: Record<string, string>;
}

export interface LoggedEvent {
  device_id: string;
  ts: number;
  kind: string;
  level: string;
  message: string;
}
