import type { ApiClient } from "./api";
import type { LiveStore } from "./liveStore";
import type { LiveUpdate } from "./types";

// The WebSocket feed into a LiveStore: token in the first message, one subscription,
// updates in batches; reconnects with the last cursor (the server resends what it missed).

// refusals a retry cannot fix: a bad option, not allowed
const FINAL = new Set([4400, 4403]);

export type LiveState = "connecting" | "live" | "offline";

interface Message {
  type: string;
  items?: LiveUpdate[];
  kind?: string;
  cursor?: string;
  reason?: string;
  resume_cursor?: string;
}

export class LiveSocket {
  state: LiveState = "connecting";
  private ws: WebSocket | null = null;
  private stopped = false;
  private retryMs = 500;

  constructor(
    private api: ApiClient,
    private store: LiveStore,
    private onState: (state: LiveState) => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    if (this.api.accessToken === null && !(await this.api.refresh())) return this.set("offline");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/live`);
    this.ws = ws;
    ws.onopen = () => {
      // the server's default queue (api.live.queue_size) is the most it allows
      ws.send(JSON.stringify({ type: "auth", token: this.api.accessToken, batch: 200 }));
    };
    ws.onmessage = (event: MessageEvent<string>) => this.receive(ws, JSON.parse(event.data) as Message);
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.set("offline");
      if (this.stopped || FINAL.has(event.code)) return;
      const again = async () => {
        if (event.code === 4401) await this.api.refresh(); // the token expired
        void this.start();
      };
      setTimeout(() => void again(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 10_000);
    };
  }

  stop(): void {
    this.stopped = true;
    this.ws?.close();
    this.ws = null;
  }

  private receive(ws: WebSocket, message: Message): void {
    switch (message.type) {
      case "ready":
        ws.send(
          JSON.stringify({
            type: "subscribe",
            id: "dashboard",
            kinds: ["readings", "alerts", "rul", "device_events", "anomalies", "pipeline"],
            cursor: this.store.cursor || undefined,
          }),
        );
        break;
      case "subscribed":
        this.retryMs = 500;
        this.set("live");
        break;
      case "update":
        this.store.apply(message as unknown as LiveUpdate);
        break;
      case "updates":
        for (const update of message.items ?? []) this.store.apply(update);
        break;
      case "overflow":
        // we fell behind: the server dropped what waited for us and now sends the latest
        // state since resume_cursor by itself; keep it in case the socket drops meanwhile
        this.store.cursor = message.resume_cursor ?? "";
        break;
      default:
        break; // heartbeat, error
    }
  }

  private set(state: LiveState): void {
    this.state = state;
    this.onState(state);
  }
}
