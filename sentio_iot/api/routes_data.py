"""/api/v1 reads: devices, one device, a device's series, anomalies, the RUL ranking, health.

Every list is filtered to the caller's tenants before it is counted and paged; a device of
another tenant is refused with 403 (it is not hidden behind a 404: the caller asked for it
by name, and the reason helps them).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import httpx
from fastapi import APIRouter, HTTPException, Query

from sentio_iot.api.auth import Caller, Svc
from sentio_iot.api.errors import Forbidden
from sentio_iot.api.events import device_events, logsql
from sentio_iot.api.history import SeriesRequestError, plan, query_range
from sentio_iot.api.payloads import (
    Anomaly,
    Device,
    DeviceDetail,
    DeviceEvent,
    LoggedEvent,
    Page,
    PipelineHealth,
    Point,
    Problem,
    RulPrediction,
    Series,
)
from sentio_iot.api.pipeline_health import pipeline_report
from sentio_iot.api.principal import Principal
from sentio_iot.api.routes_auth import REFUSALS
from sentio_iot.api.services import Services
from sentio_iot.api.views import Device as DeviceState
from sentio_iot.errors import ConnectError

router = APIRouter(prefix="/api/v1", tags=["data"], responses=REFUSALS)
T = TypeVar("T")
Limit = Annotated[int, Query(ge=1, le=100_000, description="Most items returned.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Items skipped first.")]


def page(items: Sequence[T], limit: int, offset: int, svc: Services) -> Page[T]:
    limit = min(limit, svc.config.api.page_size_max)
    return Page[T](
        items=list(items[offset : offset + limit]), total=len(items), limit=limit, offset=offset
    )


def device_payload(svc: Services, device: DeviceState) -> Device:
    return Device(
        device_id=device.device_id,
        tenant=device.tenant,
        site=device.site,
        type=device.type,
        status=device.status,  # type: ignore[arg-type]
        labels=device.labels,
        last_seen_ts=device.last_seen_ts,
        last_values=device.last_values,  # type: ignore[arg-type]
        rul=RulPrediction.model_validate(device.rul) if device.rul else None,
        open_alerts=len(svc.views.open_alerts(device.device_id)),
    )


def visible_device(svc: Services, who: Principal, device_id: str) -> DeviceState:
    device = svc.views.devices.get(device_id)
    if device is None:
        raise HTTPException(404, f"no device {device_id!r} in the views")
    if not who.sees(device.tenant):
        raise Forbidden(f"device {device_id!r} belongs to a tenant your credentials do not cover")
    return device


@router.get("/devices", response_model=Page[Device])
async def devices(
    who: Caller,
    svc: Svc,
    site: str | None = None,
    status: Literal["ONLINE", "OFFLINE", "UNKNOWN"] | None = None,
    type: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Device]:
    """Devices of the caller's tenants: status, site, type, last values, RUL, open alerts."""
    found = [
        d
        for d in sorted(svc.views.devices.values(), key=lambda d: d.device_id)
        if who.sees(d.tenant)
        and (site is None or d.site == site)
        and (status is None or d.status == status)
        and (type is None or d.type == type)
    ]
    chosen = page(found, limit, offset, svc)
    return Page[Device](
        items=[device_payload(svc, d) for d in chosen.items],
        total=chosen.total,
        limit=chosen.limit,
        offset=chosen.offset,
    )


@router.get(
    "/devices/{device_id}", response_model=DeviceDetail, responses={404: {"model": Problem}}
)
async def device(device_id: str, who: Caller, svc: Svc) -> DeviceDetail:
    """One device, with its open alerts and last device event."""
    state = visible_device(svc, who, device_id)
    base = device_payload(svc, state)
    return DeviceDetail(
        **base.model_dump(),
        alerts=svc.views.open_alerts(device_id),  # type: ignore[arg-type]
        last_event=DeviceEvent.model_validate(state.last_event) if state.last_event else None,
    )


@router.get(
    "/devices/{device_id}/series",
    response_model=Series,
    responses={404: {"model": Problem}, 422: {"model": Problem}, 502: {"model": Problem}},
)
async def series(
    device_id: str,
    who: Caller,
    svc: Svc,
    metric: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            pattern=r"^[A-Za-z0-9_.:-]+$",
            description="Metric name as in the readings, e.g. temperature.",
        ),
    ],
    start: Annotated[datetime | None, Query(alias="from", description="Default: to - 1 h.")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="Default: now.")] = None,
    step: Annotated[float | None, Query(gt=0, le=86_400 * 31, description="Seconds.")] = None,
) -> Series:
    """A metric of a device over time, raw or from the rollups depending on range and step."""
    state = visible_device(svc, who, device_id)
    end_s = end.timestamp() if end else time.time()
    start_s = start.timestamp() if start else end_s - 3600
    try:
        chosen = plan(svc.config.api.history, device_id, state.tenant, metric, start_s, end_s, step)
    except SeriesRequestError as exc:
        raise HTTPException(422, str(exc)) from None
    try:
        assert svc.http is not None
        points, unit = await query_range(
            svc.http, svc.history_url, chosen, start_s, end_s, svc.history_headers
        )
    except (ConnectError, httpx.HTTPError, ValueError) as exc:
        raise HTTPException(502, f"history not available: {exc}") from None
    return Series(
        device_id=device_id,
        metric=metric,
        source=chosen.source,  # type: ignore[arg-type]
        query=chosen.query,
        start_ts=int(start_s * 1e6),
        end_ts=int(end_s * 1e6),
        step_s=chosen.step_s,
        unit=unit,
        points=[Point(ts=ts, value=v) for ts, v in points],
    )


@router.get(
    "/devices/{device_id}/events",
    response_model=list[LoggedEvent],
    responses={404: {"model": Problem}, 502: {"model": Problem}},
)
async def events(
    device_id: str,
    who: Caller,
    svc: Svc,
    start: Annotated[
        datetime | None, Query(alias="from", description="Default: to - 24 h.")
    ] = None,
    end: Annotated[datetime | None, Query(alias="to", description="Default: now.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[LoggedEvent]:
    """A device's events (online, offline, errors, ...) from VictoriaLogs, newest first."""
    state = visible_device(svc, who, device_id)
    end_s = end.timestamp() if end else time.time()
    start_s = start.timestamp() if start else end_s - 86_400
    if start_s >= end_s:
        raise HTTPException(422, "from must be before to")
    query = logsql(device_id, state.tenant, start_s, end_s, limit)
    try:
        assert svc.http is not None
        found = await device_events(svc.http, svc.logs_url, query, svc.logs_headers)
    except (ConnectError, httpx.HTTPError, ValueError, KeyError) as exc:
        raise HTTPException(502, f"events not available: {exc}") from None
    return [LoggedEvent.model_validate(e) for e in found]


@router.get("/anomalies", response_model=Page[Anomaly])
async def anomalies(
    who: Caller,
    svc: Svc,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    device_id: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Anomaly]:
    """Recent anomalies (newest first) of the caller's tenants, in an event-time range."""
    low = int(start.timestamp() * 1e6) if start else None
    high = int(end.timestamp() * 1e6) if end else None
    found = [
        Anomaly.model_validate(u.data)
        for u in reversed(svc.views.anomalies)
        if who.sees(u.tenant)
        and (device_id is None or u.device_id == device_id)
        and (low is None or u.data["ts"] >= low)
        and (high is None or u.data["ts"] < high)
    ]
    return page(found, limit, offset, svc)


@router.get("/rul", response_model=Page[RulPrediction])
async def rul_ranking(
    who: Caller, svc: Svc, site: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> Page[RulPrediction]:
    """The latest RUL per device, lowest first (what to service next)."""
    found: Iterable[Any] = (
        d.rul
        for d in svc.views.devices.values()
        if d.rul is not None and who.sees(d.tenant) and (site is None or d.site == site)
    )
    ranked = sorted(found, key=lambda r: (r["rul"], r["device_id"]))
    return page([RulPrediction.model_validate(r) for r in ranked], limit, offset, svc)


@router.get("/health/pipeline", response_model=PipelineHealth)
async def pipeline_health(who: Caller, svc: Svc) -> PipelineHealth:
    """Each worker's health and throughput, consumer lag per group, and the views' state;
    live clients subscribed to kind ``pipeline`` are sent it at each new measurement."""
    snapshot: Any = svc.health.latest if svc.health else None
    return pipeline_report(snapshot, svc.feed_ready, svc.feed_records)
