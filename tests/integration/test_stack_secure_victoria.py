"""`sentio stack up --secure` for VictoriaMetrics and VictoriaLogs: HTTP basic auth, on real
servers started by the stack's code (``Stack(..., secure=True, only={...})``) in their own
home on free ports (the shared stack's build linked in). Without the password their data
APIs answer 401; the sinks (with their post-write checks) and the API's history reads work
with the settings the stack writes to ``clients/<service>.env``; the password is never on a
command line, in the output or in a log."""

from __future__ import annotations

import json
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from stream_worker import free_port
from test_sink_backend_limits import NOW_US, reading
from test_sink_loki import create_topics as loki_topics
from test_sink_loki import publish as loki_publish
from test_sink_victoriametrics import create_topics, publish, run_until

from sentio_iot.api.app import create_app
from sentio_iot.api.roles import Role
from sentio_iot.api.server import serving
from sentio_iot.api.services import Services
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.errors import ConfigError
from sentio_iot.pipeline.secure_roles import SecureRoles
from sentio_iot.sinks.loki import LokiWriter
from sentio_iot.sinks.runtime import SinkRuntime
from sentio_iot.sinks.victoriametrics import VictoriaMetricsWriter
from sentio_iot.stack import Stack
from sentio_iot.stack.process import read_record
from sentio_iot.stack.victoria_secure import SecureVictoriaFiles, client_settings

SAID: list[str] = []  # what the module's `up` printed
SERVICES = ("victoriametrics", "victorialogs")
# Paths that hold or take data; every one needs the password on both binaries' versions.
VM_PATHS = ("/api/v1/query?query=1", "/api/v1/export?match[]=x", "/api/v1/labels")
VL_PATHS = ("/select/logsql/query?query=*", "/metrics", "/flags", "/internal/force_flush")


@pytest.fixture(scope="module")
def stack(sentio_config: SentioConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("secure-victoria")
    (home / "bin").symlink_to(sentio_config.stack.home / "bin", target_is_directory=True)
    settings = sentio_config.stack.model_copy(
        update={"home": home, "victoriametrics_port": free_port(), "victorialogs_port": free_port()}
    )
    secure = Stack(settings, secure=True, only=set(SERVICES))
    secure.up(progress=SAID.append)
    try:
        yield secure
    finally:
        secure.down()


def urls(stack: Stack) -> tuple[str, str]:
    vm = f"http://127.0.0.1:{stack.settings.victoriametrics_port}"
    return vm, f"http://127.0.0.1:{stack.settings.victorialogs_port}"


def client_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Put what the clients' files say into the environment, as ``sentio run`` does."""
    pairs = dict(client_settings(stack.paths))
    for name, value in pairs.items():
        monkeypatch.setenv(name, value)
    return pairs


def test_no_password_no_data_and_the_password_stays_secret(stack: Stack) -> None:
    vm, vl = urls(stack)
    files = {name: SecureVictoriaFiles(stack.paths, name) for name in SERVICES}
    passwords = {name: f.password() for name, f in files.items()}
    statuses = {s.name: (s.healthy, s.detail) for s in stack.status()}
    assert statuses == {name: (True, "basic auth; ok") for name in SERVICES}
    for base, name, paths in ((vm, "victoriametrics", VM_PATHS), (vl, "victorialogs", VL_PATHS)):
        with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
            for path in paths:
                assert client.get(path).status_code == 401, path
                assert client.get(path, auth=("sentio", "wrong")).status_code == 401, path
                assert client.get(path, auth=("sentio", passwords[name])).status_code == 200
    line = json.dumps({"metric": {"__name__": "door"}, "values": [1], "timestamps": [NOW_US]})
    assert httpx.post(f"{vm}/api/v1/import", content=line).status_code == 401
    deleted = httpx.post(f"{vm}/api/v1/admin/tsdb/delete_series", data={"match[]": "door"})
    assert deleted.status_code == 401
    pushed = httpx.post(f"{vl}/insert/jsonline", content=json.dumps({"_msg": "door"}))
    assert pushed.status_code == 401
    for name, f in files.items():
        for path in (f.password_path, f.client_env):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        record = read_record(stack.paths.pid(name))
        assert record is not None
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes().decode()
        assert "-httpAuth.username=sentio" in cmdline and passwords[name] not in cmdline
        log = stack.paths.log(name).read_text(encoding="utf-8")
        assert passwords[name] not in log
        assert all(passwords[name] not in said for said in SAID)
        assert any(str(f.client_env) in said for said in SAID)


def test_the_client_files_give_sinks_api_and_children_their_settings(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm_password = SecureVictoriaFiles(stack.paths, "victoriametrics").password()
    vl_password = SecureVictoriaFiles(stack.paths, "victorialogs").password()
    pairs = client_env(stack, monkeypatch)
    assert pairs == {
        "SENTIO_SINKS__VICTORIAMETRICS__AUTH__BASIC_AUTH": f"sentio:{vm_password}",
        "SENTIO_API__HISTORY__AUTH__BASIC_AUTH": f"sentio:{vm_password}",
        "SENTIO_SINKS__LOKI__AUTH__BASIC_AUTH": f"sentio:{vl_password}",
        "SENTIO_API__HISTORY__LOGS_AUTH__BASIC_AUTH": f"sentio:{vl_password}",
    }
    config = load_config(None)
    assert config.api.history.logs_auth.basic_auth == SecretStr(f"sentio:{vl_password}")
    assert vm_password not in config.model_dump_json() + repr(config)
    # `sentio run` hands them to every child next to the role's Kafka settings
    roles = SecureRoles(stack.paths.state / "secure" / "clients", {}, client_settings(stack.paths))
    assert dict(roles.http) == pairs


async def test_the_victoriametrics_sink_writes_and_checks_with_the_password(
    stack: Stack, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm, _vl = urls(stack)
    data = {
        "topics": {"prefix": f"{unique_name}.", "partitions": 2},
        "sinks": {"batch_timeout_s": 0.2, "victoriametrics": {"health_port": 0, "url": vm}},
    }
    refused = VictoriaMetricsWriter(load_config(data=data))
    with pytest.raises(ConfigError, match=r"sinks\.victoriametrics\.auth: .* answered 401"):
        await refused.start()
    await refused.close()
    client_env(stack, monkeypatch)
    config = load_config(data=data)
    create_topics(config)
    device = f"{unique_name}-pump"
    publish(config, [("readings", reading(device, NOW_US + i * 1000, {})) for i in range(3)])
    runtime = SinkRuntime(config, "victoriametrics", group_id=unique_name, health_port=0)
    await run_until(runtime, done=3)
    writer = runtime.writer
    assert isinstance(writer, VictoriaMetricsWriter)
    assert writer.drops.enabled  # the post-write check read /metrics
    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (3, 0)
    password = SecureVictoriaFiles(stack.paths, "victoriametrics").password()
    httpx.get(f"{vm}/internal/force_flush", auth=("sentio", password)).raise_for_status()
    exported = httpx.post(
        f"{vm}/api/v1/export", data={"match[]": f'{{device="{device}"}}'}, auth=("sentio", password)
    )
    stamps = sorted(
        t for doc in map(json.loads, exported.text.splitlines()) for t in doc["timestamps"]
    )
    assert stamps == [NOW_US // 1000 + i for i in range(3)]


async def test_the_loki_sink_writes_to_victorialogs_and_checks_with_the_password(
    stack: Stack, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _vm, vl = urls(stack)
    client_env(stack, monkeypatch)
    config = load_config(
        data={
            "tenant": "acme",
            "site": "hall-2",
            "topics": {"prefix": f"{unique_name}.", "partitions": 1},
            "sinks": {
                "batch_timeout_s": 0.2,
                "loki": {"url": f"{vl}/insert/loki/api/v1/push", "health_port": 0},
            },
        }
    )
    loki_topics(config)
    device = f"{unique_name}-press"
    events = [
        {
            "device_id": device,
            "ts": NOW_US + i * 1000,
            "kind": "INFO",
            "message": f"line {i}",
            "source": "modbus",
            "labels": {},
        }
        for i in range(2)
    ]
    loki_publish(config, [("device-events", e) for e in events])
    runtime = SinkRuntime(config, "loki", group_id=unique_name, health_port=0)
    await run_until(runtime, done=2)
    writer = runtime.writer
    assert isinstance(writer, LokiWriter)
    assert writer.drops is not None and writer.drops.enabled  # read /metrics with the password
    assert (runtime.metrics.records_written, runtime.metrics.deadletter) == (2, 0)
    password = SecureVictoriaFiles(stack.paths, "victorialogs").password()
    found = httpx.post(
        f"{vl}/select/logsql/query",
        data={"query": f'device_id:"{device}" | fields _msg'},
        auth=("sentio", password),
    )
    messages = sorted(json.loads(line)["_msg"] for line in found.text.splitlines())
    assert messages == [f"{device} INFO: line {i}" for i in range(2)]


def test_the_api_reads_history_and_events_with_the_password(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm, vl = urls(stack)
    vm_auth = ("sentio", SecureVictoriaFiles(stack.paths, "victoriametrics").password())
    vl_auth = ("sentio", SecureVictoriaFiles(stack.paths, "victorialogs").password())
    device = f"hist-{uuid.uuid4().hex[:8]}"
    end = (int(time.time()) // 60) * 60 - 600
    line = {
        "metric": {"__name__": "sentio_temp", "device": device, "tenant": "acme"},
        "values": [float(i) for i in range(6)],
        "timestamps": [(end - 60 + 10 * i) * 1000 for i in range(6)],
    }
    httpx.post(f"{vm}/api/v1/import", content=json.dumps(line), auth=vm_auth).raise_for_status()
    event = {
        "_time": f"{(end - 30) * 1000}",
        "_msg": f"{device} OFFLINE: quiet",
        "service_name": "sentio",
        "stream": "device-events",
        "tenant": "acme",
        "site": "north",
        "event": "OFFLINE",
        "level": "error",
        "device_id": device,
    }
    httpx.post(
        f"{vl}/insert/jsonline",
        params={
            "_stream_fields": "service_name,stream,tenant,site,event,level",
            "_time_field": "_time",
        },
        content=json.dumps(event),
        auth=vl_auth,
    ).raise_for_status()
    for base, auth in ((vm, vm_auth), (vl, vl_auth)):
        httpx.get(f"{base}/internal/force_flush", auth=auth).raise_for_status()

    def api_config(state: str) -> SentioConfig:
        return load_config(
            data={
                "api": {
                    "state_dir": str(tmp_path / state),
                    "history": {"url": vm, "logs_url": vl},
                }
            }
        )

    assert api_read(api_config("plain"), device, end) == (502, 502)  # no credentials: refused
    client_env(stack, monkeypatch)
    series, events = api_read(api_config("secure"), device, end, want=True)
    assert [p["value"] for p in series["points"]] == [float(i) for i in range(6)]
    assert [(e["kind"], e["message"]) for e in events] == [("OFFLINE", f"{device} OFFLINE: quiet")]


def api_read(
    config: SentioConfig, device: str, end: int, *, want: bool = False
) -> tuple[object, object]:
    """The device's series and events through a running API; the status codes when refused."""
    app = create_app(config, start_feed=False)
    svc: Services = app.state.services
    svc.users.add("vic", SecretStr("viewer password 1"), Role.VIEWER, ("acme",))
    svc.views.apply(
        "readings",
        {
            "device_id": device,
            "ts": int(time.time() * 1e6),
            "source": "simulate",
            "seq": 1,
            "metrics": [
                {"name": "temp", "value": 1.0, "text": None, "unit": None, "quality": "GOOD"}
            ],
            "labels": {"tenant": "acme", "site": "north"},
        },
    )
    with serving(app) as url:
        login = {"username": "vic", "password": "viewer password 1"}
        token = httpx.post(f"{url}/api/v1/auth/login", json=login).json()["access_token"]
        viewer = {"Authorization": f"Bearer {token}"}
        params = {"metric": "temp", "from": end - 60, "to": end - 10, "step": 10}
        deadline = time.monotonic() + 30
        while True:
            series = httpx.get(
                f"{url}/api/v1/devices/{device}/series", params=params, headers=viewer, timeout=10
            )
            events = httpx.get(
                f"{url}/api/v1/devices/{device}/events",
                params={"from": end - 120, "to": end},
                headers=viewer,
                timeout=10,
            )
            if not want:
                return series.status_code, events.status_code
            ready = series.status_code == 200 and series.json().get("points") and events.json()
            if ready or time.monotonic() > deadline:
                assert series.status_code == 200 and events.status_code == 200, events.text
                return series.json(), events.json()
            time.sleep(0.5)
