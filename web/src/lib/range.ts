// The device chart's ranges: 15 minutes to 30 days; the API picks raw samples or rollups.

export interface RangeChoice {
  label: string;
  seconds: number;
}

export const RANGES: RangeChoice[] = [
  { label: "15 min", seconds: 15 * 60 },
  { label: "1 h", seconds: 3600 },
  { label: "6 h", seconds: 6 * 3600 },
  { label: "24 h", seconds: 86400 },
  { label: "7 d", seconds: 7 * 86400 },
  { label: "30 d", seconds: 30 * 86400 },
];

export const MAX_POINTS = 2000; // what a chart shows well; the step follows from it

/** The series query for a range ending at ``nowS`` (Unix seconds). */
export function seriesQuery(
  seconds: number,
  nowS: number,
): { from: number; to: number; step: number } {
  const span = Math.min(Math.max(seconds, 60), 30 * 86400);
  const to = Math.floor(nowS);
  return { from: to - span, to, step: Math.max(1, Math.ceil(span / MAX_POINTS)) };
}

export const RUL_POINTS = 500; // predictions come a few a minute: a coarser step than the chart's

/** The RUL trend's query: the same range at a coarser step. Beyond the API's raw range the
 * RUL series (which has no rollups) is served as the mean of its samples per step. */
export function rulQuery(seconds: number, nowS: number): { from: number; to: number; step: number } {
  const range = seriesQuery(seconds, nowS);
  return { ...range, step: Math.max(range.step, Math.ceil((range.to - range.from) / RUL_POINTS)) };
}
