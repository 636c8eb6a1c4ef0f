import { useEffect, useMemo, useState } from "react";
import { SessionContext, type Session } from "./context";
import type { ApiClient } from "./lib/api";
import { can } from "./lib/roles";
import { LiveSocket, type LiveState } from "./lib/liveSocket";
import { LiveStore } from "./lib/liveStore";
import type { Alert, Anomaly, Device, Me, Page } from "./lib/types";
import { Models, Users } from "./pages/Admin";
import { Alerts } from "./pages/Alerts";
import { Anomalies } from "./pages/Anomalies";
import { DevicePage } from "./pages/DevicePage";
import { Fleet } from "./pages/Fleet";
import { Maintenance } from "./pages/Maintenance";
import { Pipeline } from "./pages/Pipeline";
import { SignIn } from "./pages/SignIn";

type Theme = "dark" | "light";

const NAV: [string, string][] = [
  ["/fleet", "Fleet"],
  ["/alerts", "Alerts"],
  ["/anomalies", "Anomalies"],
  ["/maintenance", "Maintenance"],
  ["/pipeline", "Pipeline"],
  ["/models", "Models"], // admins only
  ["/users", "Users"], // admins only
];

function useHashRoute(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const changed = () => setHash(location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return hash.replace(/^#/, "") || "/fleet";
}

function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(
    () => (localStorage.getItem("sentio.theme") as Theme | null) ?? (matchMedia?.("(prefers-color-scheme: light)").matches ? "light" : "dark"),
  );
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("sentio.theme", theme);
  }, [theme]);
  return [theme, () => setTheme((t) => (t === "dark" ? "light" : "dark"))];
}

export function App({ api }: { api: ApiClient }) {
  const [me, setMe] = useState<Me | null>(null);
  const [checked, setChecked] = useState(false);
  const [live, setLive] = useState<LiveState>("connecting");
  const [theme, toggleTheme] = useTheme();
  const route = useHashRoute();
  const store = useMemo(() => new LiveStore(), [me]);

  useEffect(() => {
    if (!api.hasSession) {
      setChecked(true);
      return;
    }
    api
      .me()
      .then(setMe)
      .catch(() => setMe(null))
      .finally(() => setChecked(true));
  }, [api]);

  useEffect(() => {
    if (me === null) return;
    const socket = new LiveSocket(api, store, setLive);
    let stopped = false;
    Promise.all([
      api.get<Page<Device>>("/api/v1/devices", { limit: 100000 }),
      api.get<Page<Alert>>("/api/v1/alerts", { state: "all", limit: 10000 }),
      api.get<Page<Anomaly>>("/api/v1/anomalies", { limit: 500 }),
    ])
      .then(([devices, alerts, anomalies]) => {
        if (stopped) return;
        store.loadDevices(devices.items);
        store.loadAlerts(alerts.items);
        store.loadAnomalies(anomalies.items);
        void socket.start();
      })
      .catch(() => setLive("offline"));
    return () => {
      stopped = true;
      socket.stop();
    };
  }, [api, me, store]);

  const themeButton = (
    <button className="theme" onClick={toggleTheme} aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}>
      {theme === "dark" ? "☀ Light" : "☾ Dark"}
    </button>
  );

  if (!checked) return null;
  if (me === null) {
    return (
      <>
        <div className="topbar">{themeButton}</div>
        <SignIn api={api} onSignedIn={() => void api.me().then(setMe)} />
      </>
    );
  }

  const session: Session = { api, store, me, live };
  const device = route.match(/^\/device\/(.+)$/);
  const pages: Record<string, () => JSX.Element> = {
    "/alerts": () => <Alerts />,
    "/anomalies": () => <Anomalies />,
    "/maintenance": () => <Maintenance />,
    "/pipeline": () => <Pipeline />,
  };
  if (can(me.role, "users:manage")) pages["/users"] = () => <Users />;
  if (can(me.role, "models:manage")) pages["/models"] = () => <Models />;
  const nav = NAV.filter(([path]) => path in pages || path === "/fleet");
  const page = device ? <DevicePage deviceId={decodeURIComponent(device[1])} /> : (pages[route] ?? (() => <Fleet />))();
  return (
    <SessionContext.Provider value={session}>
      <header className="topbar">
        <nav aria-label="Main">
          {nav.map(([path, label]) => (
            <a key={path} href={`#${path}`} aria-current={route === path ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span className={`live live-${live}`} data-testid="live-state">
          {live}
        </span>
        <span className="muted">
          {me.name} ({me.role})
        </span>
        {themeButton}
        <button onClick={() => void api.logout().then(() => setMe(null))}>Sign out</button>
      </header>
      <main>{page}</main>
    </SessionContext.Provider>
  );
}
