"""Tokens from an external OpenID Connect issuer, verified by the keys of its JWKS URL.

Off unless ``api.oidc.issuer`` is set. A token whose (unverified) ``iss`` names that issuer is
verified with the issuer's published keys (fetched, cached, refetched for a new kid), only
with the asymmetric algorithms configured, and must carry ``exp``, ``iat``, ``sub`` and the
configured audience. Its role and tenants come from two claims the issuer is set up to add
(``sentio_role``, ``sentio_tenants`` by default); without a role claim the token is refused
unless a default role is configured.
"""

from __future__ import annotations

from typing import Any

import jwt

from sentio_iot.api.claims import verified_claims
from sentio_iot.api.errors import Unauthenticated
from sentio_iot.api.principal import Principal
from sentio_iot.api.roles import Role
from sentio_iot.settings.api import OidcSettings

REQUIRED = ["exp", "iat", "sub", "iss"]


class OidcVerifier:
    def __init__(self, settings: OidcSettings) -> None:
        assert settings.issuer is not None and settings.jwks_url is not None
        self.settings = settings
        self.issuer = settings.issuer
        self.jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300, timeout=10)

    def verify(self, token: str) -> Principal:
        settings = self.settings
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError:
            raise Unauthenticated("the issuer's JWKS cannot be fetched now") from None
        except jwt.PyJWKClientError:
            raise Unauthenticated("the token's kid names no key of its issuer") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not a JWT") from None
        claims = verified_claims(
            token,
            key.key,
            algorithms=list(settings.algorithms),
            audience=settings.audience,
            issuer=self.issuer,
            leeway=settings.leeway_s,
            options={"require": REQUIRED, "verify_aud": settings.audience is not None},
        )
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        settings = self.settings
        raw_role = claims.get(settings.role_claim, settings.default_role)
        try:
            role = Role(str(raw_role))
        except ValueError:
            raise Unauthenticated(
                f"the token's {settings.role_claim} claim is missing or not a role"
            ) from None
        raw = claims.get(settings.tenants_claim)
        tenants = raw if isinstance(raw, list) else str(raw or "").split(",")
        scope = tuple(sorted({str(t).strip() for t in tenants if str(t).strip()}))
        if not scope:
            raise Unauthenticated(f"the token's {settings.tenants_claim} claim names no tenant")
        name = str(claims.get("preferred_username") or claims["sub"])
        return Principal(name, role, scope, "user", float(claims["exp"]))


def token_issuer(token: str) -> str | None:
    """The ``iss`` a token claims, unverified (only to choose who verifies it)."""
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    return issuer if isinstance(issuer, str) else None
