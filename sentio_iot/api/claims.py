"""Verifying a JWT's signature and claims, each PyJWT refusal as one readable reason.

Both kinds of token the API accepts (its own, ``tokens.py``, and an OpenID Connect issuer's,
``oidc.py``) go through :func:`verified_claims`, so a refusal reads the same whoever signed it.
"""

from __future__ import annotations

from typing import Any

import jwt

from sentio_iot.api.errors import Unauthenticated

REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired; refresh it"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (nbf/iat in the future)"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted"),
    (jwt.InvalidSignatureError, "the token's signature does not verify"),
    (jwt.InvalidAudienceError, "the token is for another audience"),
    (jwt.InvalidIssuerError, "the token is from another issuer"),
)


def verified_claims(token: str, key: Any, **checks: Any) -> dict[str, Any]:
    """The claims of ``token`` verified with ``key`` (``checks`` go to ``jwt.decode``)."""
    try:
        claims: dict[str, Any] = jwt.decode(token, key, **checks)
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthenticated(f"the token lacks the {exc.claim} claim") from None
    except jwt.PyJWTError as exc:
        for kind, reason in REASONS:
            if isinstance(exc, kind):
                raise Unauthenticated(reason) from None
        raise Unauthenticated(f"the token is not valid: {type(exc).__name__}") from None
    return claims
