"""Roles, from least to most allowed: each one may do what the ones before it may."""

from __future__ import annotations

from enum import StrEnum

ALL_TENANTS = "*"


class Role(StrEnum):
    """viewer reads; operator also acknowledges and clears alerts; admin also manages
    models, users and API keys."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


def parse_role(text: str) -> Role:
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise ValueError(
            f"unknown role {text!r}; roles: {', '.join(r.value for r in Role)}"
        ) from None


def parse_tenants(text: str) -> tuple[str, ...]:
    """``"a,b"`` -> ("a", "b"); ``"*"`` means every tenant."""
    tenants = tuple(sorted({t.strip() for t in text.split(",") if t.strip()}))
    if not tenants:
        raise ValueError("tenants must name at least one tenant, or * for all")
    return tenants
