import type { LastValue } from "./lib/types";

export function formatValue(value: LastValue | undefined): string {
  if (value === undefined) return "–";
  if (value.value === null) return value.text ?? "–";
  const rounded = Math.abs(value.value) >= 100 ? value.value.toFixed(1) : value.value.toPrecision(4);
  return value.unit ? `${Number(rounded)} ${value.unit}` : String(Number(rounded));
}

export function formatTime(us: number | null | undefined): string {
  if (!us) return "–";
  return new Date(us / 1000).toLocaleString();
}

/** "1 anomaly", "2 anomalies": a count with its noun in the right number. */
export function counted(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
