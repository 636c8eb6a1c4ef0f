// Anomaly markers on a chart.

/** For each marker, the series' value at the nearest sample (null elsewhere): uPlot needs
 * every series on the same x values. ``xs`` ascending, seconds; markers' ts in µs. */
export function markerSeries(xs: ArrayLike<number>, markers: { ts: number; value: number }[]): (number | null)[] {
  const out: (number | null)[] = new Array<number | null>(xs.length).fill(null);
  for (const marker of markers) {
    const x = marker.ts / 1e6;
    let lo = 0;
    let hi = xs.length - 1;
    if (hi < 0 || x < xs[0] - 1 || x > xs[hi] + 1) continue; // outside the chart
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    const nearest = lo > 0 && x - xs[lo - 1] < xs[lo] - x ? lo - 1 : lo;
    out[nearest] = marker.value;
  }
  return out;
}
