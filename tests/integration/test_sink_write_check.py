"""What a backend drops while answering 2xx is dead-lettered, never counted as written.

VictoriaMetrics and VictoriaLogs of this test only (free ports, own folders), started with
limits lower than their defaults, so that the records slip past the sinks' checks before
the write (which know the defaults) and the backend itself answers 204 and drops them:
VictoriaMetrics with ``-maxLabelsPerTimeseries=8 -maxLabelValueLen=64``, VictoriaLogs with
``-insert.maxFieldsPerLine=9 -maxBackfillAge=30d``. The sinks must find them from the
backends' drop counters and a read-back, dead-letter them with the reason, and count only
what is stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_sink_backend_limits import NOW_US, reading
from test_sink_loki import create_topics as loki_topics
from test_sink_loki import publish as loki_publish
from test_sink_loki import read_dead_letters
from test_sink_loki import sink_config as loki_config
from test_sink_victoriametrics import (
    create_topics,
    dead_letters,
    free_port,
    publish,
    run_until,
    sink_config,
)

from sentio_iot.config import SentioConfig
from sentio_iot.settings.alert_delivery import AlertmanagerSinkSettings
from sentio_iot.sinks.alertmanager_api import AlertmanagerApi
from sentio_iot.sinks.halving import refused_records
from sentio_iot.sinks.runtime import SinkRuntime
from sentio_iot.sinks.write_check import drop_counters, risen
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.prerequisites import find_program
from sentio_iot.stack.process import ProcessRecord, is_running, log_tail, spawn, stop

DAY_US = 86_400_000_000


class OwnServer:
    """A backend process of this test on a free port; stopped at the end."""

    def __init__(self, binary: Path, flags: list[str], home: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = home
        argv = [str(binary), f"-httpListenAddr=127.0.0.1:{self.port}", *flags]
        self.log = home / "server.log"
        self.record: ProcessRecord = spawn(argv, log_path=self.log, cwd=home)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if not is_running(self.record) or time.monotonic() > deadline:
                raise AssertionError(f"own server did not start: {log_tail(self.log)}")
            time.sleep(0.1)

    def close(self) -> None:
        if is_running(self.record):
            stop(self.record, grace_s=5)


@pytest.fixture
def strict_vm(tmp_path: Path) -> Iterator[OwnServer]:
    binary = find_program("victoria-metrics")
    assert binary is not None, "victoria-metrics is not installed (sentio stack up installs it)"
    server = OwnServer(
        binary,
        [
            f"-storageDataPath={tmp_path / 'data'}",
            "-retentionPeriod=100y",
            "-maxLabelsPerTimeseries=8",
            "-maxLabelValueLen=64",
        ],
        tmp_path,
    )
    try:
        server.wait_healthy()
        yield server
    finally:
        server.close()


@pytest.fixture
def limited_vm(tmp_path: Path) -> Iterator[OwnServer]:
    binary = find_program("victoria-metrics")
    assert binary is not None, "victoria-metrics is not installed (sentio stack up installs it)"
    flags = [f"-storageDataPath={tmp_path / 'data'}", "-storage.maxHourlySeries=3"]
    server = OwnServer(binary, [*flags, "-retentionPeriod=100y"], tmp_path)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.close()


@pytest.fixture
def strict_vl(tmp_path: Path, sentio_config: SentioConfig) -> Iterator[OwnServer]:
    binary = StackPaths(sentio_config.stack.home).bin / "victoria-logs"
    assert binary.exists(), f"{binary} missing (sentio stack up builds it)"
    server = OwnServer(
        binary,
        [
            f"-storageDataPath={tmp_path / 'vl'}",
            "-retentionPeriod=100y",
            "-insert.maxFieldsPerLine=9",
            "-maxBackfillAge=30d",
        ],
        tmp_path,
    )
    try:
        server.wait_healthy()
        yield server
    finally:
        server.close()


def test_drop_counters_read_from_a_metrics_page() -> None:
    page = (
        "# HELP x\n"
        'vm_rows_ignored_total{reason="big_timestamp"} 3\n'
        "vm_metrics_with_dropped_labels_total 1\n"
        "vm_rows_added_to_storage_total 99\n"
    )
    counters = drop_counters(
        page, ("vm_rows_ignored_total", "vm_metrics_with_dropped_labels_total")
    )
    assert counters == {
        'vm_rows_ignored_total{reason="big_timestamp"}': 3.0,
        "vm_metrics_with_dropped_labels_total": 1.0,
    }
    assert risen(counters, {**counters, "vm_metrics_with_dropped_labels_total": 3.0}) == {
        "vm_metrics_with_dropped_labels_total": 2.0
    }


def vm_export(url: str, match: str) -> dict[tuple[tuple[str, str], ...], list[int]]:
    httpx.get(f"{url}/internal/force_flush", timeout=10)
    response = httpx.post(f"{url}/api/v1/export", data={"match[]": match}, timeout=10)
    response.raise_for_status()
    return {
        tuple(sorted(doc["metric"].items())): doc["timestamps"]
        for doc in map(json.loads, response.text.splitlines())
    }


@pytest.mark.parametrize("method", ["import", "remote_write"])
async def test_victoriametrics_drops_behind_a_204_are_dead_lettered(
    unique_name: str, strict_vm: OwnServer, method: str
) -> None:
    config = sink_config(f"{unique_name}.", url=strict_vm.url, method=method)
    create_topics(config)
    device = f"{unique_name}-pump"
    wide = {f"l{i}": "v" for i in range(4)}  # 11 labels in all: under 30, over this VM's 8
    publish(
        config,
        [
            ("readings", reading(device, NOW_US, {"line": "a"})),
            ("readings", reading(device, NOW_US, {"line": "b", **wide})),
            ("readings", reading(device, NOW_US, {"line": "c", "note": "n" * 100})),
            ("readings", reading(device, NOW_US + 1000, {"line": "d"})),
        ],
    )
    runtime = SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=0)
    await run_until(runtime, done=4)

    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (2, 2)
    stored = [dict(labels) for labels in vm_export(strict_vm.url, "sentio_flow")]
    # a and d as sent (7 labels); b and c only as VictoriaMetrics cut them
    assert sorted(s["line"] for s in stored if len(s) == 7) == ["a", "d"]
    assert all(len(s) <= 8 for s in stored)
    assert [len(s["note"]) for s in stored if "note" in s] == [64]
    reasons = sorted(d["error"] for d in dead_letters(config, unique_name, 2))
    assert len(reasons) == 2
    assert all("answered 2xx but did not store 1 of 1 sample(s) as sent" in r for r in reasons)
    assert "vm_metrics_with_dropped_labels_total +1" in reasons[0] + reasons[1]
    assert "vm_too_long_label_values_total +1" in reasons[0] + reasons[1]
    firsts = sorted(r.split("(first: ")[1].split(" at ")[0] for r in reasons)
    assert "'line': 'b'" in firsts[0] + firsts[1]
    assert "'note': '" + "n" * 100 + "'" in firsts[0] + firsts[1]


async def test_series_over_the_hourly_limit_are_dead_lettered(
    unique_name: str, limited_vm: OwnServer
) -> None:
    """A cardinality limit no check before the write can know: 12 new series, about 3 allowed
    (VictoriaMetrics' limiter is a Bloom filter and may let a few more through): whatever it
    stored counts as written, whatever it dropped is dead-lettered."""
    config = sink_config(f"{unique_name}.", url=limited_vm.url)
    create_topics(config)
    devices = [f"{unique_name}-pump-{n}" for n in range(12)]
    publish(config, [("readings", reading(device, NOW_US, {})) for device in devices])
    runtime = SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=0)
    await run_until(runtime, done=12)

    stored = {dict(labels)["device"] for labels in vm_export(limited_vm.url, "sentio_flow")}
    assert 3 <= len(stored) < 12
    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (
        len(stored),
        12 - len(stored),
    )
    letters = dead_letters(config, unique_name, 12 - len(stored))
    lost = {d["key"].decode() for d in letters}
    assert stored | lost == set(devices) and not stored & lost
    for letter in letters:
        assert "vm_hourly_series_limit_rows_dropped_total +" in letter["error"]
        assert "answered 2xx but did not store 1 of 1 sample(s) as sent" in letter["error"]


def event(device: str, ts_us: int, message: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": ts_us,
        "kind": "INFO",
        "message": message,
        "source": "modbus",
        "labels": labels,
    }


def vl_lines(url: str, device: str) -> list[str]:
    httpx.get(f"{url}/internal/force_flush", timeout=10)
    query = f'device_id:"{device}" | fields _msg'
    response = httpx.post(f"{url}/select/logsql/query", data={"query": query}, timeout=10)
    response.raise_for_status()
    return sorted(json.loads(line)["_msg"] for line in response.text.splitlines())


async def test_victorialogs_drops_behind_a_204_are_dead_lettered(
    unique_name: str, strict_vl: OwnServer
) -> None:
    config = loki_config(f"{unique_name}.", f"{strict_vl.url}/insert/loki/api/v1/push", "protobuf")
    loki_topics(config)
    device = f"{unique_name}-press"
    loki_publish(
        config,
        [
            ("device-events", event(device, NOW_US, "kept now", {})),
            # past this VictoriaLogs' -maxBackfillAge=30d, within its retention of 100 years
            ("device-events", event(device, NOW_US - 40 * DAY_US, "backfilled", {})),
            # the kind label makes one field more than its -insert.maxFieldsPerLine
            ("device-events", event(device, NOW_US, "one field too many", {"kind": "press"})),
        ],
    )
    runtime = SinkRuntime(config, "loki", group_id=unique_name, health_port=0)
    await run_until(runtime, done=3)

    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (1, 2)
    assert vl_lines(strict_vl.url, device) == [f"{device} INFO: kept now"]
    reasons = sorted(d["error"] for d in read_dead_letters(config, unique_name, 2))
    assert len(reasons) == 2
    assert all(
        r.startswith("VictoriaLogs answered 2xx but did not store this line") for r in reasons
    )
    joined = " ".join(reasons)
    assert 'vl_rows_dropped_total{reason="too_small_timestamp"} +1' in joined
    assert 'vl_rows_dropped_total{reason="too_many_fields"} +1' in joined


async def test_alertmanager_takes_the_valid_alerts_of_a_request_and_names_the_invalid_one(
    unique_name: str, sentio_config: SentioConfig
) -> None:
    """What Alertmanager answers a request with one alert it refuses, and how the sink's
    halving finds exactly that one (posting a taken alert again changes nothing)."""
    url = f"http://127.0.0.1:{sentio_config.stack.alertmanager_port}"
    api = AlertmanagerApi(AlertmanagerSinkSettings(url=url), 5.0)
    now = datetime.now(UTC)

    def alert(n: int, starts: datetime, ends: datetime) -> dict[str, Any]:
        return {
            "labels": {"alertname": "write-check", "test": unique_name, "n": str(n)},
            "startsAt": starts.isoformat(),
            "endsAt": ends.isoformat(),
        }

    later = now + timedelta(minutes=5)
    alerts = [alert(0, now, later), alert(1, later, now), alert(2, now, later)]  # 1: ends first

    async def send(subset: list[int]) -> str | None:
        response = await api.post_alerts([alerts[i] for i in subset])
        return (
            None
            if response.status_code < 300
            else f"{response.status_code}: {response.text.strip()}"
        )

    try:
        assert await send([0, 1, 2]) == '400: "start time must be before end time"'
        assert await refused_records([0, 1, 2], send) == {
            1: '400: "start time must be before end time"'
        }
        listed = httpx.get(
            f"{url}/api/v2/alerts", params={"filter": f'test="{unique_name}"'}, timeout=10
        ).json()
        assert sorted(a["labels"]["n"] for a in listed) == ["0", "2"]
    finally:
        for n in (0, 2):  # resolve them
            await api.post_alerts([alert(n, now, datetime.now(UTC))])
        await api.close()
