"""FastAPI dependencies that say who is calling and refuse with 401/403 and a reason.

``Authorization: Bearer <access JWT>`` for people, ``Authorization: Bearer sk_...`` for API
keys. Neither the header nor the token is ever logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sentio_iot.api.api_keys import looks_like_key
from sentio_iot.api.errors import Unauthenticated
from sentio_iot.api.oidc import token_issuer
from sentio_iot.api.principal import Principal
from sentio_iot.api.roles import Role
from sentio_iot.api.services import Services

bearer = HTTPBearer(auto_error=False, description="An access token (JWT) or an API key (sk_...).")


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def authenticate(svc: Services, token: str) -> Principal:
    """An API key, a token of an external OIDC issuer (when configured), or our own token.
    May fetch the issuer's JWKS: call it off the event loop."""
    if looks_like_key(token):
        return svc.api_keys.verify(token)
    if svc.oidc is not None and token_issuer(token) == svc.oidc.issuer:
        return svc.oidc.verify(token)
    return svc.access.verify(token)


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthenticated("no credentials: send 'Authorization: Bearer <token>'")
    if credentials.scheme.lower() != "bearer":
        raise Unauthenticated("only Bearer credentials are accepted")
    return authenticate(services(request), credentials.credentials)


def needs(role: Role, action: str) -> Callable[[Principal], Principal]:
    def check(who: Annotated[Principal, Depends(caller)]) -> Principal:
        who.require(role, action)
        return who

    return check


Caller = Annotated[Principal, Depends(caller)]
Svc = Annotated[Services, Depends(services)]
Operator = Annotated[Principal, Depends(needs(Role.OPERATOR, "acknowledging or clearing alerts"))]
Admin = Annotated[Principal, Depends(needs(Role.ADMIN, "managing users, keys and models"))]
