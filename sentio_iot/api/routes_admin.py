"""/api/v1/users and /api/v1/api-keys: admins manage who may call the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.concurrency import run_in_threadpool

from sentio_iot.api.api_keys import ApiKey as KeyRecord
from sentio_iot.api.auth import Admin, Svc
from sentio_iot.api.errors import UserError
from sentio_iot.api.payloads import (
    ApiKey,
    CreatedApiKey,
    CreatedUser,
    NewApiKey,
    NewUser,
    Problem,
    User,
)
from sentio_iot.api.roles import Role
from sentio_iot.api.routes_auth import REFUSALS
from sentio_iot.api.users import User as UserRecord
from sentio_iot.api.users import new_password

router = APIRouter(prefix="/api/v1", tags=["admin"], responses=REFUSALS)
Name = Annotated[str, Path(min_length=1, max_length=64)]


def _user(user: UserRecord) -> User:
    return User(
        name=user.name, role=user.role.value, tenants=list(user.tenants), created_ts=user.created_ts
    )


def _key(key: KeyRecord) -> ApiKey:
    return ApiKey(
        key_id=key.key_id,
        name=key.name,
        role=key.role.value,
        tenants=list(key.tenants),
        created_by=key.created_by,
        created_ts=key.created_ts,
        revoked_ts=key.revoked_ts,
    )


@router.get("/users", response_model=list[User])
async def users(who: Admin, svc: Svc) -> list[User]:
    """Every user: name, role, tenants (never a hash)."""
    return [_user(u) for u in svc.users.list()]


@router.post(
    "/users", response_model=CreatedUser, status_code=201, responses={409: {"model": Problem}}
)
async def add_user(body: NewUser, who: Admin, svc: Svc) -> CreatedUser:
    """Add a user; without a password a random one is returned, once."""
    password = body.password or new_password()
    try:
        user = await run_in_threadpool(
            svc.users.add, body.name, password, Role(body.role), tuple(sorted(set(body.tenants)))
        )
    except UserError as exc:
        raise HTTPException(409, str(exc)) from None
    return CreatedUser(
        user=_user(user), password=None if body.password else password.get_secret_value()
    )


@router.delete("/users/{name}", status_code=204, responses={404: {"model": Problem}})
async def remove_user(name: Name, who: Admin, svc: Svc) -> None:
    """Remove a user and revoke their refresh tokens (access tokens expire on their own)."""
    try:
        svc.users.remove(name)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/api-keys", response_model=list[ApiKey])
async def api_keys(who: Admin, svc: Svc) -> list[ApiKey]:
    """Every API key (never its secret)."""
    return [_key(k) for k in svc.api_keys.list()]


@router.post("/api-keys", response_model=CreatedApiKey, status_code=201)
async def add_api_key(body: NewApiKey, who: Admin, svc: Svc) -> CreatedApiKey:
    """A key for a machine, scoped to a role and tenants; its secret is returned once."""
    key, secret = svc.api_keys.create(
        body.name, Role(body.role), tuple(sorted(set(body.tenants))), who.name
    )
    return CreatedApiKey(key=_key(key), secret=secret.get_secret_value())


@router.delete("/api-keys/{key_id}", status_code=204, responses={404: {"model": Problem}})
async def revoke_api_key(key_id: Name, who: Admin, svc: Svc) -> None:
    """Revoke a key: it is refused from the next request on."""
    try:
        svc.api_keys.revoke(key_id)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
