"""The webhook sink against the real Kafka and registry, and receivers in the test.

Alert state changes are published (Avro) to topics of this test only; the sink POSTs them to
aiohttp receivers. The signature is checked with the snippet of docs/alerting.md, executed
here as a reader would paste it; a tampered body or another secret must fail it.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from alert_delivery import (
    Receiver,
    Request,
    alert,
    create_topics,
    pipeline_config,
    publish,
    read_topic,
    run_until,
)

from sentio_iot.errors import ConfigError
from sentio_iot.sinks.runtime import SinkRuntime

DOCS = Path(__file__).parents[2] / "docs" / "alerting.md"
SECRET = "correct-horse-battery-staple"
OTHER_SECRET = "another-secret-of-16+"


def documented_verify() -> Any:
    """The ``verify`` function of docs/alerting.md's snippet, as a reader would paste it."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"<!-- verify-snippet -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/alerting.md lost its verification snippet"
    scope: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOCS), "exec"), scope)
    return scope["verify"]


def endpoint(url: str, secret: str = SECRET, **extra: Any) -> dict[str, Any]:
    return {"url": url, "secret": secret, **extra}


async def test_changes_arrive_signed_in_order_and_the_documented_check_verifies(
    unique_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    every, resolved_only = await Receiver().start(), await Receiver().start()
    config = pipeline_config(
        f"{unique_name}.",
        webhook={
            "health_port": 0,
            "endpoints": [
                endpoint(every.url("/every?token=s3cr3t-in-query")),
                endpoint(resolved_only.url("/resolved"), OTHER_SECRET, statuses=["RESOLVED"]),
            ],
        },
    )
    create_topics(config)
    pump, press = f"{unique_name}-pump", f"{unique_name}-press"
    changes = [
        alert(pump, "FIRING"),
        alert(press, "FIRING", severity="CRITICAL", labels={"site": "hall-9"}),
        alert(pump, "ACKNOWLEDGED"),
        alert(pump, "RESOLVED"),
    ]
    publish(config, changes)
    runtime = SinkRuntime(config, "webhook", group_id=unique_name, health_port=0)
    try:
        await run_until(runtime, lambda: runtime.metrics.records_written >= 4)
    finally:
        await every.stop()
        await resolved_only.stop()

    bodies = [json.loads(r.body) for r in every.requests]
    assert [
        (b["alert"]["device_id"], b["event"]) for b in bodies if b["alert"]["device_id"] == pump
    ] == [
        (pump, "alert.firing"),
        (pump, "alert.acknowledged"),
        (pump, "alert.resolved"),
    ]
    first = next(b for b in bodies if b["alert"]["device_id"] == press)
    topic = f"{unique_name}.alerts"
    assert first == {
        "version": "1",
        "event": "alert.firing",
        "delivery_id": f"{topic}/0/1",
        "alert": {
            "alert_id": f"{press}/device_offline/1795000000000000",
            "key": f"{press}/device_offline",
            "device_id": press,
            "type": "device_offline",
            "severity": "CRITICAL",
            "status": "FIRING",
            "started_at": "2026-11-18T11:06:40Z",
            "ended_at": None,
            "acknowledged_at": None,
            "changed_at": "2026-11-18T11:06:40Z",
            "count": 1,
            "message": f"{press} OFFLINE: no reading for 30 s",
            "details": {"metric": "availability", "value": "0"},
            "labels": {"kind": "pump", "site": "hall-9"},
            "tenant": "acme",
            "site": "hall-9",
        },
    }
    resolved = bodies[-1] if bodies[-1]["alert"]["device_id"] == pump else bodies[-2]
    assert (resolved["alert"]["ended_at"], resolved["alert"]["acknowledged_at"]) == (
        "2026-11-18T11:07:20Z",
        None,
    )
    assert [json.loads(r.body)["event"] for r in resolved_only.requests] == ["alert.resolved"]

    verify = documented_verify()
    for request in every.requests:
        assert request.headers["X-Sentio-Signature"].startswith("sha256=")
        assert request.headers["X-Sentio-Delivery"] == json.loads(request.body)["delivery_id"]
        assert request.headers["X-Sentio-Event"] == json.loads(request.body)["event"]
        assert verify(SECRET.encode(), request.headers, request.body)
        assert not verify(OTHER_SECRET.encode(), request.headers, request.body)
        tampered = request.body.replace(b'"count":1', b'"count":2')
        assert tampered != request.body
        assert not verify(SECRET.encode(), request.headers, tampered)
        stale = {
            **request.headers,
            "X-Sentio-Timestamp": str(int(request.headers["X-Sentio-Timestamp"]) - 3600),
        }
        assert not verify(SECRET.encode(), stale, request.body)
    held = resolved_only.requests[0]
    assert verify(OTHER_SECRET.encode(), held.headers, held.body)

    # The sink's own lines (httpx's request lines are WARNING-only in a sink: telemetry.py)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("sentio_iot"))
    assert SECRET not in logged and OTHER_SECRET not in logged and "s3cr3t-in-query" not in logged


async def test_unavailable_is_retried_and_refused_is_dead_lettered_with_the_answer(
    unique_name: str,
) -> None:
    """503 twice (retried with backoff), then a 400 for one device (dead-lettered); nothing lost."""
    failures = {"left": 2}

    async def answer(request: Request) -> web.Response:
        if failures["left"] > 0:
            failures["left"] -= 1
            return web.Response(status=503, text="maintenance")
        if b"-broken" in request.body:
            return web.Response(status=422, text="unknown device broken")
        return web.Response(status=204)

    receiver = await Receiver(answer).start()
    config = pipeline_config(
        f"{unique_name}.",
        webhook={"health_port": 0, "endpoints": [endpoint(receiver.url())]},
    )
    create_topics(config)
    devices = [f"{unique_name}-{n}" for n in ("a", "broken", "b")]
    publish(config, [alert(d, "FIRING") for d in devices] + [alert(devices[0], "RESOLVED")])
    runtime = SinkRuntime(config, "webhook", group_id=unique_name, health_port=0)
    try:
        await run_until(
            runtime, lambda: runtime.metrics.records_written + runtime.metrics.deadletter >= 4
        )
    finally:
        await receiver.stop()

    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (3, 1)
    assert runtime.metrics.retries >= 1
    got = [orjson.loads(r.body) for r in receiver.requests]
    delivered = [(b["alert"]["device_id"], b["alert"]["status"]) for b in got]
    assert sorted(delivered) == sorted(
        [(devices[0], "FIRING"), (devices[0], "RESOLVED"), (devices[2], "FIRING")]
    )
    assert len({b["delivery_id"] for b in got}) == len(got)  # each change once
    letters = read_topic(config, "deadletter", 1)
    assert len(letters) == 1
    assert letters[0]["error"] == f"{receiver.url()} answered 422: unknown device broken"
    assert letters[0]["key"] == f"{devices[1]}/device_offline".encode()


async def test_no_endpoint_stops_at_start(unique_name: str) -> None:
    config = pipeline_config(f"{unique_name}.", webhook={"health_port": 0})
    with pytest.raises(ConfigError, match=r"^sinks\.webhook\.endpoints: no URL to send alerts to"):
        await SinkRuntime(config, "webhook", group_id=unique_name, health_port=0).run()


def test_a_short_secret_is_refused_with_its_path_and_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        pipeline_config("x.", webhook={"endpoints": [endpoint("http://h/", "tiny-s3cret")]})
    message = str(caught.value)
    assert "sinks.webhook.endpoints[0].secret: " in message
    assert "tiny-s3cret" not in message
