"""/api/v1/auth: log in, refresh (rotating), log out, who am I; the JWKS of the signing keys."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from sentio_iot.api.auth import Caller, Svc
from sentio_iot.api.errors import Unauthenticated
from sentio_iot.api.payloads import Login, Me, Problem, RefreshRequest, Tokens

log = logging.getLogger(__name__)
REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Not authenticated, with the reason."},
    403: {"model": Problem, "description": "Not allowed, with the reason."},
}
router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _tokens(svc: Svc, name: str, refresh: str) -> Tokens:
    user = svc.users.get(name)
    if user is None:
        raise Unauthenticated("the user no longer exists")
    access, ttl = svc.access.issue(user.name, user.role, user.tenants)
    return Tokens(access_token=access, expires_in=ttl, refresh_token=refresh)


@router.post(
    "/login",
    response_model=Tokens,
    responses={**REFUSALS, 429: {"model": Problem, "description": "Too many attempts."}},
)
async def login(body: Login, request: Request, svc: Svc) -> Tokens:
    """Trade a user name and password for an access token and a refresh token."""
    address = request.client.host if request.client else "unknown"
    svc.limiter.attempt(body.username, address)
    user = await run_in_threadpool(svc.users.verify, body.username, body.password)
    if user is None:
        log.info("login refused user=%s address=%s", body.username, address)
        raise Unauthenticated("wrong user name or password")
    log.info("login user=%s address=%s", user.name, address)
    refresh = await run_in_threadpool(svc.refresh.issue, user.name)
    return _tokens(svc, user.name, refresh.get_secret_value())


@router.post("/refresh", response_model=Tokens, responses=REFUSALS)
async def refresh(body: RefreshRequest, svc: Svc) -> Tokens:
    """A new access token and a new refresh token; the one sent is spent (reuse revokes all)."""
    name, new = await run_in_threadpool(svc.refresh.rotate, body.refresh_token)
    return _tokens(svc, name, new.get_secret_value())


@router.post("/logout", status_code=204, responses=REFUSALS)
async def logout(body: RefreshRequest, svc: Svc) -> None:
    """Revoke the refresh token and every token rotated from the same login."""
    await run_in_threadpool(svc.refresh.revoke, body.refresh_token)


@router.get("/me", response_model=Me, responses=REFUSALS)
async def me(who: Caller) -> Me:
    """Who the credentials belong to: name, role, tenants."""
    return Me(name=who.name, role=who.role.value, tenants=list(who.tenants), kind=who.kind)  # type: ignore[arg-type]


jwks_router = APIRouter(tags=["auth"])


@jwks_router.get("/api/v1/auth/jwks.json")
async def jwks(svc: Svc) -> dict[str, Any]:
    """The public keys that verify this API's tokens (RFC 7517), one per kid."""
    return svc.keys.jwks()
