import type { Me } from "./types";

// The REST client: an access token in memory, the single-use refresh token in
// sessionStorage (a reload keeps the session, a closed tab ends it). A 401 refreshes once.

const REFRESH_KEY = "sentio.refresh";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface Tokens {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

type Listener = () => void;

export class ApiClient {
  private access: string | null = null;
  private refreshing: Promise<boolean> | null = null;
  private listeners = new Set<Listener>();

  constructor(
    readonly base = "",
    private storage: Storage = sessionStorage,
  ) {}

  get accessToken(): string | null {
    return this.access;
  }

  get hasSession(): boolean {
    return this.access !== null || this.storage.getItem(REFRESH_KEY) !== null;
  }

  onSessionChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async login(username: string, password: string): Promise<void> {
    const response = await fetch(`${this.base}/api/v1/auth/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    if (!response.ok) throw await problem(response);
    this.keep((await response.json()) as Tokens);
  }

  async logout(): Promise<void> {
    const refresh = this.storage.getItem(REFRESH_KEY);
    this.forget();
    if (refresh !== null) {
      await fetch(`${this.base}/api/v1/auth/logout`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: refresh }),
      }).catch(() => undefined);
    }
  }

  /** A fresh access token, refreshing when there is none; false: sign in again. */
  refresh(): Promise<boolean> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  me(): Promise<Me> {
    return this.get<Me>("/api/v1/auth/me");
  }

  get<T>(path: string, params?: Record<string, string | number | undefined>): Promise<T> {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params ?? {})) {
      if (value !== undefined && value !== "") query.set(name, String(value));
    }
    const suffix = query.size > 0 ? `?${query.toString()}` : "";
    return this.request<T>("GET", path + suffix);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  async request<T>(method: string, path: string, body?: unknown, retry = true): Promise<T> {
    if (this.access === null && !(await this.refresh())) {
      throw new ApiError(401, "signed out");
    }
    const response = await fetch(this.base + path, {
      method,
      headers: {
        Authorization: `Bearer ${this.access ?? ""}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && retry) {
      this.access = null;
      return this.request<T>(method, path, body, false);
    }
    if (!response.ok) throw await problem(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  private async doRefresh(): Promise<boolean> {
    const refresh = this.storage.getItem(REFRESH_KEY);
    if (refresh === null) return false;
    const response = await fetch(`${this.base}/api/v1/auth/refresh`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: refresh }),
    });
    if (!response.ok) {
      this.forget();
      return false;
    }
    this.keep((await response.json()) as Tokens);
    return true;
  }

  private keep(tokens: Tokens): void {
    this.access = tokens.access_token;
    this.storage.setItem(REFRESH_KEY, tokens.refresh_token);
    this.listeners.forEach((l) => l());
  }

  private forget(): void {
    this.access = null;
    this.storage.removeItem(REFRESH_KEY);
    this.listeners.forEach((l) => l());
  }
}

async function problem(response: Response): Promise<ApiError> {
  let reason = response.statusText;
  try {
    const body = (await response.json()) as { error?: string };
    if (body.error) reason = body.error;
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, reason);
}
