import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { describe, expect, it, vi } from "vitest";
import { SessionContext, type Session } from "../context";
import { describeEntry, historyVersion, type AlertHistory } from "../lib/alertHistory";
import { ApiClient } from "../lib/api";
import { LiveStore } from "../lib/liveStore";
import type { Alert, Role } from "../lib/types";
import { Alerts } from "../pages/Alerts";
import { device } from "./devices";

const S = 1_000_000;
const T0 = 1_700_000_000 * S;
const SILENCE = "silenced in Alertmanager (silence 4f2a): night shift";

const firing: Alert = {
  alert_id: "a1",
  device_id: "press-1",
  type: "anomaly",
  severity: "MAJOR",
  status: "FIRING",
  start_ts: T0,
  message: "too hot",
};

function history(alert: Alert, ...more: AlertHistory["entries"]): AlertHistory {
  return { alert, entries: [{ ts: T0, event: "FIRING", user: "", comment: "", alert_id: "a1" }, ...more] };
}

describe("alert history lines", () => {
  it("say what happened, by whom, with the note", () => {
    expect(describeEntry({ ts: T0, event: "FIRING" })).toBe("fired");
    expect(describeEntry({ ts: T0, event: "ACK", user: "olga", comment: "on my way" })).toBe(
      "acknowledged by olga: on my way",
    );
    expect(describeEntry({ ts: T0, event: "ACK", user: "sam", comment: SILENCE })).toBe(`acknowledged by sam: ${SILENCE}`);
    expect(describeEntry({ ts: T0, event: "CLEAR", user: "ada", comment: "" })).toBe("cleared by ada");
    expect(describeEntry({ ts: T0, event: "RESOLVED", user: "" })).toBe("resolved");
  });

  it("changes version when a command changes the alert", () => {
    const acked = { ...firing, status: "ACKNOWLEDGED", ack_ts: T0 + S, details: { acked_by: "olga" } };
    const again = { ...acked, ack_ts: T0 + 2 * S, details: { acked_by: "sam" } };
    const versions = [firing, acked, again].map(historyVersion);
    expect(new Set(versions).size).toBe(3);
    expect(historyVersion({ ...firing, message: "hotter" })).toBe(versions[0]); // text alone: no
  });
});

function renderAlerts(role: Role, get: ReturnType<typeof vi.fn>) {
  const api = new ApiClient("", sessionStorage);
  vi.spyOn(api, "get").mockImplementation(get as never);
  const store = new LiveStore("default", (flush) => flush(), 0);
  store.loadDevices([device("press-1")]);
  store.loadAlerts([firing]);
  const session: Session = { api, store, me: { name: "u", role, tenants: ["acme"], kind: "user" }, live: "live" };
  render(
    <SessionContext.Provider value={session}>
      <Alerts />
    </SessionContext.Provider>,
  );
  return store;
}

function openHistory(row: HTMLElement): void {
  const details = row.querySelector("details")!;
  fireEvent.click(within(row).getByText("History"));
  if (!details.open) details.open = true; // jsdom: a click on the summary may not toggle it
  fireEvent(details, new Event("toggle"));
}

describe("alerts page history", () => {
  it("shows a viewer the full history, oldest first, fetched when opened, with no buttons", async () => {
    const get = vi.fn().mockResolvedValue(
      history(
        firing,
        { ts: T0 + S, event: "ACK", user: "olga", comment: "on my way" },
        { ts: T0 + 2 * S, event: "ACK", user: "sam", comment: SILENCE },
        { ts: T0 + 3 * S, event: "CLEAR", user: "ada", comment: "valve replaced" },
        { ts: T0 + 3 * S, event: "RESOLVED", user: "ada", comment: "" },
      ),
    );
    renderAlerts("viewer", get);
    expect(get).not.toHaveBeenCalled(); // nothing fetched until someone looks
    const row = screen.getAllByRole("row")[1];
    openHistory(row);
    const list = await within(row).findByRole("list", { name: "History of press-1 anomaly" });
    expect(get).toHaveBeenCalledWith("/api/v1/alerts/press-1/anomaly/history");
    const items = within(list).getAllByRole("listitem");
    expect(items.map((li) => li.getAttribute("data-event"))).toEqual(["FIRING", "ACK", "ACK", "CLEAR", "RESOLVED"]);
    expect(items[1].textContent).toContain("acknowledged by olga: on my way");
    expect(items[2].textContent).toContain(`acknowledged by sam: ${SILENCE}`);
    expect(items[4].textContent).toContain("resolved by ada");
    expect(screen.queryAllByRole("button")).toEqual([]);
  });

  it("fetches an open history again when the alert changes live", async () => {
    const acked: Alert = { ...firing, status: "ACKNOWLEDGED", ack_ts: T0 + S, details: { acked_by: "olga" } };
    const get = vi
      .fn()
      .mockResolvedValueOnce(history(firing))
      .mockResolvedValueOnce(history(acked, { ts: T0 + S, event: "ACK", user: "olga", comment: "" }));
    const store = renderAlerts("operator", get);
    const row = screen.getAllByRole("row")[1];
    openHistory(row);
    const list = await within(row).findByRole("list");
    expect(within(list).getAllByRole("listitem")).toHaveLength(1);
    act(() => store.apply({ type: "update", kind: "alerts", cursor: "e.2", data: { ...acked } }));
    await waitFor(() => expect(get).toHaveBeenCalledTimes(2));
    const updated = screen.getAllByRole("row")[1];
    await waitFor(() =>
      expect(within(updated).getAllByRole("listitem").map((li) => li.textContent)).toHaveLength(2),
    );
    expect(within(updated).getAllByRole("listitem")[1].textContent).toContain("acknowledged by olga");
  });

  it("says why when the history cannot be read", async () => {
    renderAlerts("viewer", vi.fn().mockRejectedValue(new Error("history not available")));
    const row = screen.getAllByRole("row")[1];
    openHistory(row);
    expect((await within(row).findByRole("alert")).textContent).toBe("history not available");
  });
});
