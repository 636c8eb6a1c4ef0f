"""Access tokens: short-lived EdDSA JWTs naming the user, their role and their tenants.

Verification accepts only EdDSA (``alg: none`` and HMAC confusion are refused), only a
``kid`` this API holds, and requires ``exp``, ``nbf``, ``iat``, ``iss``, ``aud``, ``sub``;
each failure becomes a 401 whose reason says which check failed (never the token).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from sentio_iot.api.claims import verified_claims
from sentio_iot.api.errors import Unauthenticated
from sentio_iot.api.keys import KeyRing
from sentio_iot.api.principal import Principal
from sentio_iot.api.roles import Role
from sentio_iot.settings.api import TokenSettings

ALGORITHM = "EdDSA"
REQUIRED = ["exp", "nbf", "iat", "iss", "aud", "sub"]


class AccessTokens:
    def __init__(self, keys: KeyRing, settings: TokenSettings) -> None:
        self.keys = keys
        self.settings = settings

    def issue(self, name: str, role: Role, tenants: tuple[str, ...]) -> tuple[str, int]:
        """(token, lifetime in s)."""
        key = self.keys.ensure()
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "aud": self.settings.audience,
            "sub": name,
            "role": role.value,
            "tenants": list(tenants),
            "iat": now,
            "nbf": now,
            "exp": now + self.settings.access_ttl_s,
            "jti": uuid.uuid4().hex,
            "typ": "access",
        }
        token = jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})
        return token, self.settings.access_ttl_s

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not a JWT") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"token algorithm {header.get('alg')!r} refused; only EdDSA")
        kid = header.get("kid")
        public = self.keys.public(kid) if isinstance(kid, str) else None
        if public is None:
            self.keys.reload()  # a key added by another process (rotation)
            public = self.keys.public(kid) if isinstance(kid, str) else None
        if public is None:
            raise Unauthenticated("the token's kid names no key of this API")
        claims = verified_claims(
            token,
            public,
            algorithms=[ALGORITHM],
            audience=self.settings.audience,
            issuer=self.settings.issuer,
            leeway=self.settings.leeway_s,
            options={"require": REQUIRED},
        )
        return _principal(claims)


def _principal(claims: dict[str, Any]) -> Principal:
    if claims.get("typ") != "access":
        raise Unauthenticated("not an access token")
    try:
        role = Role(claims["role"])
        tenants = tuple(str(t) for t in claims["tenants"])
    except (KeyError, ValueError, TypeError):
        raise Unauthenticated("the token's role or tenants claim is not valid") from None
    return Principal(str(claims["sub"]), role, tenants, "user", float(claims["exp"]))
