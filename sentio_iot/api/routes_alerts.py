"""/api/v1/alerts: the alerts of the caller's tenants; acknowledge and clear (operators).

An acknowledgement or clear is written as an AlertCommand whose ``user`` is the name in the
caller's verified token (the audit trail): the alerts agent applies it in the stream.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool

from sentio_iot.api.auth import Caller, Operator, Svc
from sentio_iot.api.errors import Forbidden
from sentio_iot.api.payloads import Alert, AlertAction, AlertCommand, Page, Problem
from sentio_iot.api.routes_auth import REFUSALS
from sentio_iot.api.routes_data import Limit, Offset, page
from sentio_iot.api.services import Services
from sentio_iot.api.views import OPEN_ALERT
from sentio_iot.errors import TransientError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], responses=REFUSALS)
State = Literal["open", "FIRING", "ACKNOWLEDGED", "RESOLVED", "all"]
Name = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("", response_model=Page[Alert])
async def alerts(
    who: Caller,
    svc: Svc,
    state: Annotated[State, Query(description="open: FIRING or ACKNOWLEDGED.")] = "open",
    device_id: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Alert]:
    """The latest state of each alert (from the compacted alerts topic), newest first."""
    found = [
        u.data
        for u in svc.views.alert_list()
        if who.sees(u.tenant)
        and (device_id is None or u.device_id == device_id)
        and (
            state == "all"
            or (state == "open" and u.data["status"] in OPEN_ALERT)
            or u.data["status"] == state
        )
    ]
    found.sort(key=lambda a: (-a["start_ts"], a["device_id"], a["type"]))
    return page([Alert.model_validate(a) for a in found], limit, offset, svc)


async def _command(
    svc: Services, who: Operator, device_id: str, alert_type: str, action: str, body: AlertAction
) -> AlertCommand:
    update = svc.views.alerts.get(f"alerts/{device_id}/{alert_type}")
    if update is None:
        raise HTTPException(404, f"no alert {device_id}/{alert_type} in the views")
    if not who.sees(update.tenant):
        raise Forbidden(
            f"alert {device_id}/{alert_type} belongs to a tenant your credentials do not cover"
        )
    try:
        record = await run_in_threadpool(
            svc.commands.send, device_id, alert_type, action, who.name, body.alert_id, body.comment
        )
    except TransientError as exc:
        raise HTTPException(503, f"the command could not be written: {exc}") from None
    log.info("alert command action=%s alert=%s/%s user=%s", action, device_id, alert_type, who.name)
    return AlertCommand.model_validate(record)


@router.post(
    "/{device_id}/{alert_type}/acknowledge",
    response_model=AlertCommand,
    status_code=202,
    responses={404: {"model": Problem}, 503: {"model": Problem}},
)
async def acknowledge(
    device_id: Name, alert_type: Name, who: Operator, svc: Svc, body: AlertAction | None = None
) -> AlertCommand:
    """Acknowledge the open alert (operator or admin); the stream applies it."""
    return await _command(
        svc, who, device_id, alert_type, "ACK", body or AlertAction.model_validate({})
    )


@router.post(
    "/{device_id}/{alert_type}/clear",
    response_model=AlertCommand,
    status_code=202,
    responses={404: {"model": Problem}, 503: {"model": Problem}},
)
async def clear(
    device_id: Name, alert_type: Name, who: Operator, svc: Svc, body: AlertAction | None = None
) -> AlertCommand:
    """Resolve the open alert by hand (operator or admin)."""
    return await _command(
        svc, who, device_id, alert_type, "CLEAR", body or AlertAction.model_validate({})
    )
