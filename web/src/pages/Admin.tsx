import { useCallback, useEffect, useState, type FormEvent } from "react";
import { useSession } from "../context";
import type { Role } from "../lib/types";

interface User {
  name: string;
  role: Role;
  tenants: string[];
  created_ts: number;
}

interface ModelVersion {
  name: string;
  version: number;
  current: boolean;
  shipped: boolean;
  rul_unit: string | null;
  rmse: number | null;
  created: string | null;
}

function useList<T>(path: string): [T[] | null, string, () => void] {
  const { api } = useSession();
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState("");
  const load = useCallback(() => {
    api
      .get<T[]>(path)
      .then((list) => (setItems(list), setError("")))
      .catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)));
  }, [api, path]);
  useEffect(load, [load]);
  return [items, error, load];
}

export function Users() {
  const { api, me } = useSession();
  const [users, error, reload] = useList<User>("/api/v1/users");
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [tenants, setTenants] = useState("");
  const [message, setMessage] = useState("");

  async function add(event: FormEvent) {
    event.preventDefault();
    try {
      const created = await api.post<{ password: string | null }>("/api/v1/users", {
        name,
        role,
        tenants: tenants.split(",").map((t) => t.trim()).filter(Boolean),
      });
      setMessage(`${name} added; password (shown once): ${created.password ?? "as given"}`);
      setName("");
      reload();
    } catch (e) {
      setMessage(e instanceof Error ? e.message : String(e));
    }
  }

  async function remove(user: string) {
    try {
      await api.request<void>("DELETE", `/api/v1/users/${encodeURIComponent(user)}`);
      setMessage(`${user} removed`);
      reload();
    } catch (e) {
      setMessage(e instanceof Error ? e.message : String(e));
    }
  }

  return (
    <section aria-labelledby="users-title">
      <h1 id="users-title">Users</h1>
      {error && <p role="alert">{error}</p>}
      <p className="muted" aria-live="polite">
        {message}
      </p>
      <form className="filters" onSubmit={(e) => void add(e)} aria-label="Add a user">
        <input aria-label="Name" placeholder="name" value={name} onChange={(e) => setName(e.target.value)} required />
        <select aria-label="Role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
          <option>viewer</option>
          <option>operator</option>
          <option>admin</option>
        </select>
        <input
          aria-label="Tenants"
          placeholder="tenants, comma-separated, or *"
          value={tenants}
          onChange={(e) => setTenants(e.target.value)}
          required
        />
        <button type="submit">Add user</button>
      </form>
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Role</th>
            <th>Tenants</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {(users ?? []).map((u) => (
            <tr key={u.name} data-user={u.name}>
              <td>{u.name}</td>
              <td>{u.role}</td>
              <td>{u.tenants.join(", ")}</td>
              <td>{u.name !== me.name && <button onClick={() => void remove(u.name)}>Remove</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function Models() {
  const { api } = useSession();
  const [models, error, reload] = useList<ModelVersion>("/api/v1/models");
  const [message, setMessage] = useState("");

  async function act(path: string, done: string) {
    try {
      await api.post(path);
      setMessage(done);
      reload();
    } catch (e) {
      setMessage(e instanceof Error ? e.message : String(e));
    }
  }

  return (
    <section aria-labelledby="models-title">
      <h1 id="models-title">Models</h1>
      {error && <p role="alert">{error}</p>}
      <p className="muted" aria-live="polite">
        {message}
      </p>
      <table>
        <thead>
          <tr>
            <th>Model</th>
            <th>Version</th>
            <th>Serving</th>
            <th>RMSE</th>
            <th>Created</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {(models ?? []).map((m) => (
            <tr key={`${m.name}/${m.version}`} data-model={`${m.name}/${m.version}`}>
              <td>{m.name}</td>
              <td>
                {m.version}
                {m.shipped && " (shipped)"}
              </td>
              <td>{m.current ? "serving" : ""}</td>
              <td>{m.rmse === null ? "–" : `${m.rmse.toFixed(2)} ${m.rul_unit ?? ""}`}</td>
              <td>{m.created ?? "–"}</td>
              <td>
                {m.current ? (
                  <button onClick={() => void act(`/api/v1/models/${encodeURIComponent(m.name)}/rollback`, `${m.name} rolled back`)}>
                    Roll back
                  </button>
                ) : (
                  <button
                    onClick={() =>
                      void act(
                        `/api/v1/models/${encodeURIComponent(m.name)}/${m.version}/promote`,
                        `${m.name} v${m.version} promoted (stream workers pick it up on restart)`,
                      )
                    }
                  >
                    Promote
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
