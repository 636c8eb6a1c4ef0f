import type { Alert, Anomaly, Device, DeviceEvent, LiveUpdate, PipelineHealth, Reading, RulPrediction } from "./types";

// The fleet and alerts as the dashboard shows them: loaded from REST, then kept current by
// the WebSocket's updates with the same rules as the API's views (sentio_iot/api/views.py).
// Listeners are told at most once per animation frame and per minIntervalMs, however many
// updates arrive.

const OFFLINE = new Set(["OFFLINE", "DISCONNECTED", "REMOVED"]);
const ONLINE = new Set(["ONLINE", "CONNECTED", "DISCOVERED"]);
const OPEN = new Set(["FIRING", "ACKNOWLEDGED"]);
export const SPARK_POINTS = 60;
export const ANOMALIES_KEPT = 500;

type Listener = () => void;
type Schedule = (flush: () => void) => void;

const nextFrame: Schedule = (flush) =>
  typeof requestAnimationFrame === "function" ? requestAnimationFrame(flush) : setTimeout(flush, 16);

export class LiveStore {
  devices = new Map<string, Device>();
  alerts = new Map<string, Alert>(); // key: device_id/type, as the API's views
  spark = new Map<string, number[]>(); // device_id -> recent values of its first metric
  anomalies: Anomaly[] = []; // newest first, at most ANOMALIES_KEPT
  pipeline: PipelineHealth | null = null; // the latest measurement, pushed every few seconds
  cursor = "";
  version = 0;
  private listeners = new Set<Listener>();
  private pending = false;

  private lastFlush = -Infinity;

  /** ``minIntervalMs``: the fastest the pages redraw; a human reads no faster, and a fleet of
   * a thousand devices re-sorted every frame would eat the frame budget. */
  constructor(
    private defaultSite = "default",
    private schedule: Schedule = nextFrame,
    private minIntervalMs = 250,
  ) {}

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getVersion = (): number => this.version;

  loadDevices(devices: Device[]): void {
    for (const device of devices) this.devices.set(device.device_id, { ...device });
    this.changed();
  }

  loadAlerts(alerts: Alert[]): void {
    for (const alert of alerts) this.alerts.set(alertKey(alert), alert);
    this.recountAlerts();
    this.changed();
  }

  loadPipeline(health: PipelineHealth): void {
    if (this.pipeline === null) this.pipeline = health; // a pushed one is never older
    this.changed();
  }

  loadAnomalies(anomalies: Anomaly[]): void {
    this.anomalies = [...anomalies].sort((a, b) => b.ts - a.ts).slice(0, ANOMALIES_KEPT);
    this.changed();
  }

  apply(update: LiveUpdate): void {
    this.cursor = update.cursor;
    const data = update.data;
    switch (update.kind) {
      case "readings":
        this.reading(data as unknown as Reading);
        break;
      case "device_events":
        this.event(data as unknown as DeviceEvent);
        break;
      case "rul":
        this.device(data as unknown as RulPrediction).rul = data as unknown as RulPrediction;
        break;
      case "alerts": {
        const alert = data as unknown as Alert;
        this.alerts.set(alertKey(alert), alert);
        this.device(alert);
        this.recountAlerts(alert.device_id);
        break;
      }
      case "anomalies":
        this.anomalies = [data as unknown as Anomaly, ...this.anomalies].slice(0, ANOMALIES_KEPT);
        break;
      case "pipeline":
        this.pipeline = data as unknown as PipelineHealth;
        break;
      default:
        return;
    }
    this.changed();
  }

  openAlerts(): Alert[] {
    return [...this.alerts.values()].filter((a) => OPEN.has(a.status));
  }

  private reading(reading: Reading): void {
    const device = this.device(reading);
    const values = { ...device.last_values };
    for (const metric of reading.metrics) {
      const known = values[metric.name];
      if (known !== undefined && known.ts > reading.ts) continue; // late: keep the newer
      values[metric.name] = {
        value: metric.value,
        text: metric.text,
        unit: metric.unit,
        quality: metric.quality ?? "GOOD",
        ts: reading.ts,
      };
    }
    device.last_values = values;
    device.last_seen_ts = Math.max(device.last_seen_ts ?? 0, reading.ts);
    if (device.status === "UNKNOWN") device.status = "ONLINE";
    const first = reading.metrics[0];
    if (first && typeof first.value === "number") {
      const points = [...(this.spark.get(device.device_id) ?? []), first.value];
      this.spark.set(device.device_id, points.slice(-SPARK_POINTS));
    }
  }

  private event(event: DeviceEvent): void {
    const device = this.device(event);
    if (OFFLINE.has(event.kind)) device.status = "OFFLINE";
    else if (ONLINE.has(event.kind)) device.status = "ONLINE";
  }

  /** The device a record is about, copied so React sees a new object; made when new. */
  private device(record: { device_id: string; labels?: Record<string, string> }): Device {
    const known = this.devices.get(record.device_id);
    const labels = record.labels ?? {};
    const device: Device = known
      ? { ...known }
      : {
          device_id: record.device_id,
          tenant: labels.tenant ?? "",
          site: labels.site ?? this.defaultSite,
          type: labels.type ?? labels.kind ?? null,
          status: "UNKNOWN",
          labels: { ...labels },
          last_seen_ts: null,
          last_values: {},
          rul: null,
          open_alerts: 0,
        };
    if (known && Object.keys(labels).length > 0) {
      device.labels = { ...labels };
      device.site = labels.site ?? device.site;
      device.type = labels.type ?? labels.kind ?? device.type;
    }
    this.devices.set(device.device_id, device);
    return device;
  }

  private recountAlerts(only?: string): void {
    const counts = new Map<string, number>();
    for (const alert of this.alerts.values()) {
      if (OPEN.has(alert.status)) counts.set(alert.device_id, (counts.get(alert.device_id) ?? 0) + 1);
    }
    for (const [id, device] of this.devices) {
      if (only !== undefined && id !== only) continue;
      const count = counts.get(id) ?? 0;
      if (device.open_alerts !== count) this.devices.set(id, { ...device, open_alerts: count });
    }
  }

  private changed(): void {
    if (this.pending) return;
    this.pending = true;
    const flush = () => {
      this.pending = false;
      this.lastFlush = performance.now();
      this.version += 1;
      this.listeners.forEach((l) => l());
    };
    const wait = this.lastFlush + this.minIntervalMs - performance.now();
    if (wait > 0) setTimeout(() => this.schedule(flush), wait);
    else this.schedule(flush);
  }
}

export function alertKey(alert: { device_id: string; type: string }): string {
  return `${alert.device_id}/${alert.type}`;
}
