"""/api/v1/models: the versioned RUL model store; admins promote and roll back.

The stream workers load the current version when they start, as with `sentio models`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from fastapi.concurrency import run_in_threadpool

from sentio_iot.api.auth import Admin, Caller, Svc
from sentio_iot.api.payloads import ModelVersion, Problem
from sentio_iot.api.routes_auth import REFUSALS
from sentio_iot.api.services import Services
from sentio_iot.errors import ConfigError

if TYPE_CHECKING:
    from sentio_iot.streams.rul.store import ModelStore

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/models", tags=["models"], responses=REFUSALS)
Name = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
Version = Annotated[int, Path(ge=1, le=1_000_000)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}


def _store(svc: Services) -> ModelStore:
    from sentio_iot.streams.rul.store import ModelStore  # numpy and keras on first use only

    return ModelStore(svc.config.streams.rul.resolved_store_dir())


def _payload(version: Any) -> ModelVersion:
    metadata = version.metadata
    rmse = (metadata.get("metrics") or {}).get("rmse")
    return ModelVersion(
        name=version.name,
        version=version.version,
        current=version.current,
        shipped=version.shipped,
        rul_unit=metadata.get("rul_unit"),
        rmse=float(rmse) if rmse is not None else None,
        created=metadata.get("created"),
    )


def _list(svc: Services) -> list[ModelVersion]:
    store = _store(svc)
    return [_payload(v) for name in store.names() for v in store.versions(name)]


@router.get("", response_model=list[ModelVersion])
async def models(who: Caller, svc: Svc) -> list[ModelVersion]:
    """Every model and version; `current` marks the one the stream serves."""
    return await run_in_threadpool(_list, svc)


@router.post("/{name}/{version}/promote", response_model=ModelVersion, responses=NOT_FOUND)
async def promote(name: Name, version: Version, who: Admin, svc: Svc) -> ModelVersion:
    """Serve this version (stream workers pick it up on restart)."""
    try:
        promoted = await run_in_threadpool(lambda: _store(svc).promote(name, version))
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from None
    log.info("model promoted name=%s version=%d user=%s", name, version, who.name)
    return _payload(promoted)


@router.post("/{name}/rollback", response_model=ModelVersion, responses=NOT_FOUND)
async def rollback(name: Name, who: Admin, svc: Svc) -> ModelVersion:
    """Serve the version that served before the last promotion."""
    try:
        current = await run_in_threadpool(lambda: _store(svc).rollback(name))
    except ConfigError as exc:
        raise HTTPException(404, str(exc)) from None
    log.info("model rolled back name=%s version=%d user=%s", name, current.version, who.name)
    return _payload(current)
