"""Who is calling: a user (by access token) or a machine (by API key), their role and tenants."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sentio_iot.api.errors import Forbidden
from sentio_iot.api.roles import ALL_TENANTS, Role


@dataclass(frozen=True)
class Principal:
    name: str  # user name, or "key:<key_id>" for an API key
    role: Role
    tenants: tuple[str, ...]
    kind: str = "user"  # user or api_key
    expires_at: float | None = None  # access token's exp (s since the epoch); None: key

    def sees(self, tenant: str) -> bool:
        return ALL_TENANTS in self.tenants or tenant in self.tenants

    def require(self, role: Role, action: str) -> None:
        if not self.role.allows(role):
            raise Forbidden(
                f"{action} needs role {role.value} or above; {self.name} has {self.role.value}"
            )


def tenant_of(labels: Mapping[str, str] | None, default: str) -> str:
    """A record's tenant: its ``tenant`` label, else the deployment's tenant."""
    return (labels or {}).get("tenant") or default
