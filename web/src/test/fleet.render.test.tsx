import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { SessionContext, type Session } from "../context";
import { ApiClient } from "../lib/api";
import { LiveStore } from "../lib/liveStore";
import { Fleet } from "../pages/Fleet";
import { device } from "./devices";

describe("fleet rows", () => {
  it("name their RUL and alert cells, for the phone layout where the headers are hidden", () => {
    const store = new LiveStore("default", (flush) => flush(), 0);
    store.loadDevices([device("press-1", { open_alerts: 0, rul: null })]);
    const session: Session = {
      api: new ApiClient("", sessionStorage),
      store,
      me: { name: "u", role: "viewer", tenants: ["acme"], kind: "user" },
      live: "live",
    };
    const { container } = render(
      <SessionContext.Provider value={session}>
        <Fleet />
      </SessionContext.Provider>,
    );
    const row = container.querySelector('tr[data-device="press-1"]')!;
    expect(row.querySelector('[data-cell="rul"]')!.textContent).toBe("RUL –");
    expect(row.querySelector('[data-cell="alerts"]')!.textContent).toBe("Open alerts 0");
    expect(screen.getByRole("columnheader", { name: "RUL" })).toBeDefined();
  });
});
