import { useSyncExternalStore } from "react";

// The theme the top bar's switch set (<html data-theme>): charts read their colours from CSS
// variables when drawn, so they redraw when it changes.

function subscribe(changed: () => void): () => void {
  const observer = new MutationObserver(changed);
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ["data-theme"] });
  return () => observer.disconnect();
}

export function useTheme(): string {
  return useSyncExternalStore(subscribe, () => document.documentElement.dataset.theme ?? "");
}
