import { render, screen, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { SessionContext, type Session } from "../context";
import { ApiClient } from "../lib/api";
import { LiveStore } from "../lib/liveStore";
import { can } from "../lib/roles";
import type { Role } from "../lib/types";
import { Alerts } from "../pages/Alerts";
import { device } from "./devices";

describe("roles", () => {
  it("lets operators and admins act on alerts, admins manage users, viewers neither", () => {
    expect([can("viewer", "alerts:act"), can("operator", "alerts:act"), can("admin", "alerts:act")]).toEqual([
      false,
      true,
      true,
    ]);
    expect([can("viewer", "users:manage"), can("operator", "users:manage"), can("admin", "users:manage")]).toEqual([
      false,
      false,
      true,
    ]);
    expect(can(undefined, "alerts:act")).toBe(false);
    expect(can("root" as Role, "alerts:act")).toBe(false);
  });
});

function renderAlerts(role: Role, api = new ApiClient("", sessionStorage)) {
  const store = new LiveStore("default", (flush) => flush(), 0);
  store.loadDevices([device("press-1"), device("press-2")]);
  const base = { device_id: "press-1", severity: "MINOR", start_ts: 1_000_000, message: "too hot" };
  store.loadAlerts([
    { ...base, type: "anomaly", status: "FIRING", alert_id: "a1" },
    { ...base, type: "offline", status: "ACKNOWLEDGED", alert_id: "a2", severity: "CRITICAL", details: { acked_by: "olga" } },
    { ...base, device_id: "press-2", type: "anomaly", status: "RESOLVED", alert_id: "a3" },
  ]);
  const session: Session = { api, store, me: { name: "u", role, tenants: ["acme"], kind: "user" }, live: "live" };
  render(
    <SessionContext.Provider value={session}>
      <Alerts />
    </SessionContext.Provider>,
  );
  return api;
}

describe("alerts page", () => {
  it("shows a viewer the open alerts, most severe first, with no action buttons", () => {
    renderAlerts("viewer");
    const rows = screen.getAllByRole("row").slice(1);
    expect(rows.map((r) => r.getAttribute("data-alert"))).toEqual(["press-1/offline", "press-1/anomaly"]);
    expect(within(rows[0]).getByText("ACKNOWLEDGED by olga")).toBeTruthy();
    expect(screen.queryAllByRole("button")).toEqual([]);
    expect(screen.queryByText("Actions")).toBeNull();
  });

  it("gives an operator acknowledge (only while firing) and clear, and sends them", async () => {
    const api = new ApiClient("", sessionStorage);
    const post = vi.spyOn(api, "post").mockResolvedValue(undefined);
    renderAlerts("operator", api);
    const rows = screen.getAllByRole("row").slice(1);
    expect(within(rows[0]).getAllByRole("button").map((b) => b.textContent)).toEqual(["Clear"]);
    expect(within(rows[1]).getAllByRole("button").map((b) => b.textContent)).toEqual(["Acknowledge", "Clear"]);
    within(rows[1]).getByText("Acknowledge").click();
    await screen.findByText("acknowledge sent for press-1 anomaly");
    expect(post).toHaveBeenCalledWith("/api/v1/alerts/press-1/anomaly/acknowledge", { alert_id: "a1" });
  });
});
