import type { Role } from "./types";

// Mirrors sentio_iot/api/roles.py: viewers read, operators also act on alerts, admins
// also manage users, keys and models. The API refuses anyway; the UI hides what it would refuse.
export type Action = "alerts:act" | "users:manage" | "models:manage";

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const NEEDS: Record<Action, Role> = {
  "alerts:act": "operator",
  "users:manage": "admin",
  "models:manage": "admin",
};

export function can(role: Role | undefined, action: Action): boolean {
  if (role === undefined || !(role in RANK)) return false;
  return RANK[role] >= RANK[NEEDS[action]];
}
