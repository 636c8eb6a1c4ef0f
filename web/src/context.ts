import { createContext, useContext, useSyncExternalStore } from "react";
import type { ApiClient } from "./lib/api";
import type { LiveState } from "./lib/liveSocket";
import type { LiveStore } from "./lib/liveStore";
import type { Me } from "./lib/types";

export interface Session {
  api: ApiClient;
  store: LiveStore;
  me: Me;
  live: LiveState;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (session === null) throw new Error("useSession outside a signed-in page");
  return session;
}

/** Re-render when the live store changes (at most once per frame). */
export function useStoreVersion(store: LiveStore): number {
  return useSyncExternalStore(store.subscribe, store.getVersion);
}
