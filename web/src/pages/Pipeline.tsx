import { useEffect, useState } from "react";
import { useSession } from "../context";

interface PipelineHealth {
  views_ready: boolean;
  view_records: number;
  workers: { name: string; healthy: boolean; rate_per_s: number | null }[];
  lag: Record<string, number>;
}

const EVERY_MS = 5000; // the API measures every 5 s

export function Pipeline() {
  const { api } = useSession();
  const [health, setHealth] = useState<PipelineHealth | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let current = true;
    const load = () =>
      api
        .get<PipelineHealth>("/api/v1/health/pipeline")
        .then((h) => current && (setHealth(h), setError("")))
        .catch((e: unknown) => current && setError(e instanceof Error ? e.message : String(e)));
    void load();
    const timer = setInterval(() => void load(), EVERY_MS);
    return () => {
      current = false;
      clearInterval(timer);
    };
  }, [api]);

  return (
    <section aria-labelledby="pipeline-title">
      <h1 id="pipeline-title">Pipeline</h1>
      {error && <p role="alert">{error}</p>}
      {health && (
        <>
          <p className="muted">
            Views {health.views_ready ? "ready" : "rebuilding"} · {health.view_records} records read · refreshed every{" "}
            {EVERY_MS / 1000} s
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
