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
from sentio_iot.api.payloads import (
    Alert,
    AlertAction,
    AlertCommand,
    AlertHistory,
    AlertHistoryEntry,
    Page,
    Problem,
)
from sentio_iot.api.principal import Principal
from sentio_iot.api.routes_auth import REFUSALS
from sentio_iot.api.routes_data import Limit, Offset, page
from sentio_iot.api.services import Services
from sentio_iot.api.views import OPEN_ALERT, Update
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


def _visible_alert(svc: Services, who: Principal, device_id: str, alert_type: str) -> Update:
    update = svc.views.alerts.get(f"alerts/{device_id}/{alert_type}")
    if update is None:
        raise HTTPException(404, f"no alert {device_id}/{alert_type} in the views")
    if not who.sees(update.tenant):
        raise Forbidden(
            f"alert {device_id}/{alert_type} belongs to a tenant your credentials do not cover"
        )
    return update


@router.get(
    "/{device_id}/{alert_type}/history",
    response_model=AlertHistory,
    responses={404: {"model": Problem}},
)
async def history(device_id: Name, alert_type: Name, who: Caller, svc: Svc) -> AlertHistory:
    """Who did what to an alert: every acknowledge and clear the views hold (with user,
    comment and occurrence), and when each occurrence the views hold started and ended."""
    update = _visible_alert(svc, who, device_id, alert_type)
    alert = Alert.model_validate(update.data)
    entries = [
        AlertHistoryEntry(
            ts=int(c["ts"]),
            event=c["action"] if c["action"] in ("ACK", "CLEAR") else "ACK",
            user=c.get("user") or "",
            comment=c.get("comment") or "",
            alert_id=c.get("alert_id"),
            command_id=c.get("command_id"),
        )
        for c in svc.views.commands.get(update.key, ())
    ]
    for occurrence in (*svc.views.past_alerts.get(update.key, ()), update.data):
        entries += _occurrence(Alert.model_validate(occurrence))
    order = {"FIRING": 0, "ACK": 1, "CLEAR": 2, "RESOLVED": 3}
    entries.sort(key=lambda e: (e.ts, order[e.event]))
    return AlertHistory(alert=alert, entries=entries)


def _occurrence(alert: Alert) -> list[AlertHistoryEntry]:
    """When an occurrence fired and, if it has, was resolved (by whom, when by hand)."""
    fired = AlertHistoryEntry(ts=alert.start_ts, event="FIRING", alert_id=alert.alert_id)
    if alert.status != "RESOLVED" or alert.end_ts is None:
        return [fired]
    user = alert.details.get("cleared_by", "")
    resolved = AlertHistoryEntry(
        ts=alert.end_ts, event="RESOLVED", user=user, alert_id=alert.alert_id
    )
    return [fired, resolved]


async def _command(
    svc: Services, who: Operator, device_id: str, alert_type: str, action: str, body: AlertAction
) -> AlertCommand:
    _visible_alert(svc, who, device_id, alert_type)
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
