"""History through the API against the real VictoriaMetrics and VictoriaLogs: a series reads
raw samples for a short range and the 1 min / 1 h rollups for longer ones (the names the
VictoriaMetrics sink writes), and a device's events come from VictoriaLogs, newest first."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sentio_iot.api.app import create_app
from sentio_iot.api.roles import Role
from sentio_iot.api.server import serving
from sentio_iot.api.services import Services
from sentio_iot.config import SentioConfig, load_config

PASSWORD = "history test password"
HOUR = 3600


@pytest.fixture
def api(tmp_path: Path, sentio_config: SentioConfig) -> Iterator[tuple[str, dict[str, str], str]]:
    """A running API (no Kafka feed: the device is put in the views by hand), a viewer's
    headers and a device id no other test uses."""
    config = load_config(data={"api": {"state_dir": str(tmp_path / "api")}})
    app = create_app(config, start_feed=False)
    svc: Services = app.state.services
    svc.users.add("vic", SecretStr(PASSWORD), Role.VIEWER, ("acme",))
    device = f"hist-{uuid.uuid4().hex[:8]}"
    svc.views.apply(
        "readings",
        {
            "device_id": device,
            "ts": int(time.time() * 1e6),
            "source": "simulate",
            "seq": 1,
            "metrics": [
                {"name": "temp", "value": 20.0, "text": None, "unit": "degC", "quality": "GOOD"}
            ],
            "labels": {"tenant": "acme", "site": "north"},
        },
    )
    with serving(app) as url:
        login = {"username": "vic", "password": PASSWORD}
        token = httpx.post(f"{url}/api/v1/auth/login", json=login).json()["access_token"]
        yield url, {"Authorization": f"Bearer {token}"}, device


def vm_import(
    base: str, name: str, labels: dict[str, str], points: list[tuple[int, float]]
) -> None:
    line = {
        "metric": {"__name__": name, **labels},
        "values": [v for _, v in points],
        "timestamps": [t * 1000 for t, _ in points],
    }
    httpx.post(f"{base}/api/v1/import", content=json.dumps(line), timeout=10).raise_for_status()


def test_series_reads_raw_samples_then_rollups(
    api: tuple[str, dict[str, str], str], sentio_config: SentioConfig
) -> None:
    url, viewer, device = api
    vm = f"http://127.0.0.1:{sentio_config.stack.victoriametrics_port}"
    end = (int(time.time()) // 60) * 60 - 10 * 60  # older than VictoriaMetrics' latency offset
    labels = {"device": device, "tenant": "acme", "site": "north"}
    raw = [(end - 600 + 10 * i, float(i)) for i in range(60)]  # every 10 s, 0..59
    minutes = [(end - 6 * HOUR + 60 * i, 100.0 + i) for i in range(360)]
    hours = [(end - 48 * HOUR + HOUR * i, 1000.0 + i) for i in range(48)]
    vm_import(vm, "sentio_temp", {**labels, "unit": "degC"}, raw)
    vm_import(vm, "sentio_temp_mean", {**labels, "window": "1m"}, minutes)
    vm_import(vm, "sentio_temp_mean", {**labels, "window": "1h"}, hours)
    rul_labels = {**labels, "model": "gbm", "model_version": "3", "unit": "cycles"}
    vm_import(vm, "sentio_rul", rul_labels, [(end - 600 + 10 * i, 90.0 - i) for i in range(10)])
    # and every 10 min for the 47 hours before: 200 - hours since the start, for the trend
    older = [(end - 48 * HOUR + 600 * i, 200.0 - (600 * i) // HOUR) for i in range(1, 47 * 6)]
    vm_import(vm, "sentio_rul", rul_labels, older)
    httpx.get(f"{vm}/internal/force_flush", timeout=10)

    def series(start: int, stop: int, step: int, metric: str = "temp") -> dict[str, Any]:
        params = {"metric": metric, "from": start, "to": stop, "step": step}
        deadline = time.monotonic() + 30
        while True:
            body: dict[str, Any] = httpx.get(
                f"{url}/api/v1/devices/{device}/series", params=params, headers=viewer, timeout=10
            ).json()
            if body.get("points") or time.monotonic() > deadline:
                return body
            time.sleep(0.5)

    short = series(end - 600, end - 10, 10)
    assert short["source"] == "raw"
    assert [p["value"] for p in short["points"]] == [float(i) for i in range(60)]
    assert short["points"][0]["ts"] == (end - 600) * 1_000_000
    assert short["unit"] == "degC"  # the series' unit label
    rul = series(end - 600, end - 510, 10, "rul")
    assert (rul["unit"], [p["value"] for p in rul["points"]][:2]) == ("cycles", [90.0, 89.0])
    day = series(end - 6 * HOUR, end - 60, 600)
    assert day["source"] == "rollup_1m"
    assert day["query"] == f'sentio_temp_mean{{device="{device}",tenant="acme",window="1m"}}'
    assert [p["value"] for p in day["points"]][:3] == [100.0, 110.0, 120.0]
    assert day["unit"] is None  # the rollups carry no unit label
    month = series(end - 48 * HOUR, end - HOUR, HOUR)
    assert month["source"] == "rollup_1h"
    assert [p["value"] for p in month["points"]][:2] == [1000.0, 1001.0]
    # RUL has no rollups: beyond the raw range, the mean of its samples in each step
    trend = series(end - 48 * HOUR, end - 20 * 60, HOUR, "rul")
    assert trend["source"] == "raw_averaged"
    assert trend["query"] == (
        f'avg_over_time(sentio_rul{{device="{device}",tenant="acme"}}[3600s])'
    )
    assert trend["unit"] == "cycles"  # the function keeps the labels
    values = [p["value"] for p in trend["points"]]
    assert len(values) >= 44, values
    assert values == sorted(values, reverse=True)  # falling, one point per hour
    assert min(values) >= 152.0 and max(values) <= 200.0

    too_many = httpx.get(
        f"{url}/api/v1/devices/{device}/series",
        params={"metric": "temp", "from": end - 86_400, "to": end, "step": 1},
        headers=viewer,
    )
    assert too_many.status_code == 422 and "points asked" in too_many.json()["error"]


def test_device_events_come_from_victorialogs(
    api: tuple[str, dict[str, str], str], sentio_config: SentioConfig
) -> None:
    url, viewer, device = api
    vl = f"http://127.0.0.1:{sentio_config.stack.victorialogs_port}"
    now = time.time()
    lines = [
        {
            "_time": f"{int((now - 120 + 60 * i) * 1000)}",
            "_msg": f"{device} {kind}: {why}",
            "service_name": "sentio",
            "stream": "device-events",
            "tenant": tenant,
            "site": "north",
            "event": kind,
            "level": "error" if kind == "OFFLINE" else "info",
            "device_id": device,
        }
        for i, (kind, why, tenant) in enumerate(
            [
                ("OFFLINE", "no reading for 30 s", "acme"),
                ("ONLINE", "back", "acme"),
                ("ONLINE", "another tenant's line", "globex"),
            ]
        )
    ]
    httpx.post(
        f"{vl}/insert/jsonline",
        params={
            "_stream_fields": "service_name,stream,tenant,site,event,level",
            "_time_field": "_time",
        },
        content="\n".join(json.dumps(line) for line in lines),
        timeout=10,
    ).raise_for_status()
    httpx.get(f"{vl}/internal/force_flush", timeout=10)
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{url}/api/v1/devices/{device}/events", headers=viewer, timeout=10)
        assert response.status_code == 200, response.text
        found = response.json()
        if len(found) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [(e["kind"], e["level"], e["message"]) for e in found] == [
        ("ONLINE", "info", f"{device} ONLINE: back"),
        ("OFFLINE", "error", f"{device} OFFLINE: no reading for 30 s"),
    ]
    assert found[1]["ts"] == int((now - 120) * 1000) * 1000
