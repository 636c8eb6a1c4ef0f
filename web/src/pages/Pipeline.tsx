import { useEffect, useState } from "react";
import { useSession, useStoreVersion } from "../context";
import type { PipelineHealth } from "../lib/types";
import { formatTime } from "../format";

// Loaded once from REST, then kept current by the WebSocket: the API pushes each new
// measurement (every 5 s) to subscribers of the live kind "pipeline".

export function Pipeline() {
  const { api, store, live } = useSession();
  useStoreVersion(store);
  const [error, setError] = useState("");
  const [updatedAt, setUpdatedAt] = useState<number | null>(null);
  const health = store.pipeline;
  useEffect(() => {
    let current = true;
    api
      .get<PipelineHealth>("/api/v1/health/pipeline")
      .then((h) => current && (store.loadPipeline(h), setError("")))
      .catch((e: unknown) => current && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      current = false;
    };
  }, [api, store]);
  useEffect(() => setUpdatedAt(Date.now() * 1000), [health]);

  return (
    <section aria-labelledby="pipeline-title">
      <h1 id="pipeline-title">Pipeline</h1>
      {error && <p role="alert">{error}</p>}
      {health && (
        <>
          <p className="muted">
            Views {health.views_ready ? "ready" : "rebuilding"} · {health.view_records} records read ·{" "}
            <span data-testid="pipeline-updated">
              {live === "live" ? "live" : "not live"}, updated {formatTime(updatedAt)}
            </span>
          </p>
          <h2>Stages</h2>
          <table>
            <thead>
              <tr>
                <th>Worker</th>
                <th>Health</th>
                <th>Records/s</th>
              </tr>
            </thead>
            <tbody>
              {health.workers.map((w) => (
                <tr key={w.name}>
                  <td>{w.name}</td>
                  <td className={w.healthy ? "status-online" : "status-offline"}>{w.healthy ? "healthy" : "down"}</td>
                  <td>{w.rate_per_s === null ? "–" : w.rate_per_s.toFixed(1)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <h2>Consumer lag</h2>
          <table>
            <thead>
              <tr>
                <th>Group</th>
                <th>Messages behind</th>
              </tr>
            </thead>
            <tbody>
              {Object.entries(health.lag).map(([group, lag]) => (
                <tr key={group}>
                  <td>{group}</td>
                  <td>{lag}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
