import { useSession, useStoreVersion } from "../context";
import { projectedEnd, rankByRul } from "../lib/rul";
import { formatTime } from "../format";

export function Maintenance() {
  const { store } = useSession();
  useStoreVersion(store);
  const ranked = rankByRul(store.devices.values());
  return (
    <section aria-labelledby="maintenance-title">
      <h1 id="maintenance-title">Maintenance</h1>
      <p className="muted">Devices by predicted remaining useful life, shortest first; live.</p>
      {ranked.length === 0 ? (
        <p>No predictions yet.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Device</th>
                <th>Site</th>
                <th>Remaining life</th>
                <th>Projected end</th>
                <th>Model</th>
                <th>Predicted</th>
              </tr>
            </thead>
            <tbody>
              {ranked.map((d) => {
                const rul = d.rul!;
                const end = projectedEnd(rul);
                const range = rul.lower != null && rul.upper != null ? ` (${rul.lower.toFixed(0)}–${rul.upper.toFixed(0)})` : "";
                return (
                  <tr key={d.device_id} data-rul={d.device_id}>
                    <td>
                      <a href={`#/device/${encodeURIComponent(d.device_id)}`}>{d.device_id}</a>
                    </td>
                    <td>{d.site}</td>
                    <td>
                      {rul.rul.toFixed(1)} {rul.rul_unit ?? ""}
                      {range}
                    </td>
                    <td>{end === null ? "–" : new Date(end).toLocaleString()}</td>
                    <td>
                      {rul.model_name} v{rul.model_version}
                    </td>
                    <td>{formatTime(rul.ts)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
