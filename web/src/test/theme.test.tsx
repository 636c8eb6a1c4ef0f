import { render, screen, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { useTheme } from "../lib/theme";

function Shown() {
  return <p>theme {useTheme() || "none"}</p>;
}

describe("charts follow the theme", () => {
  it("re-render when the switch changes <html data-theme>", async () => {
    document.documentElement.dataset.theme = "light";
    render(<Shown />);
    expect(screen.getByText("theme light")).toBeTruthy();
    document.documentElement.dataset.theme = "dark";
    await waitFor(() => expect(screen.getByText("theme dark")).toBeTruthy());
    delete document.documentElement.dataset.theme;
    await waitFor(() => expect(screen.getByText("theme none")).toBeTruthy());
  });
});
