"""A silence made in Alertmanager by a person, as the relay tests make it."""

from __future__ import annotations

import time

import httpx


async def silence_device(am: httpx.AsyncClient, device: str, by: str, comment: str) -> str:
    """Silence ``device``'s alerts for an hour in Alertmanager, as ``by``; the silence's id."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    made = await am.post(
        "/api/v2/silences",
        json={
            "matchers": [{"name": "device", "value": device, "isRegex": False, "isEqual": True}],
            "startsAt": now,
            "endsAt": until,
            "createdBy": by,
            "comment": comment,
        },
    )
    assert made.status_code == 200, made.text
    silence_id: str = made.json()["silenceID"]
    return silence_id
