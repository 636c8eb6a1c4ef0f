"""The Alertmanager sink against the real Alertmanager of the local stack.

The alerts agent runs in a real stream worker; the sink runs in the test process; the
stack's Alertmanager routes every alert to ``stack.alertmanager_webhook_url``, where an
aiohttp receiver of the test takes Alertmanager's notifications (webhook format version 4).
Each test labels its devices with a site of its own: Alertmanager groups by alertname and
site, so a test sees only its own groups.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from alert_delivery import Receiver, Request, alert, create_topics, pipeline_config, publish
from click.testing import CliRunner
from silences import silence_device
from stream_worker import StreamTestbed, free_port, stream_testbed_fixture  # noqa: F401

from sentio_iot.api.app import create_app
from sentio_iot.api.server import serving
from sentio_iot.cli.main import cli
from sentio_iot.config import SentioConfig
from sentio_iot.records import now_us
from sentio_iot.settings.sinks import SinkSettings
from sentio_iot.sinks.runtime import SinkRuntime
from sentio_iot.stack import Stack
from sentio_iot.stack.alertmanager import AlertmanagerService

S = 1_000_000


@pytest.fixture
async def notifications(sentio_config: SentioConfig) -> AsyncIterator[Receiver]:
    """The webhook the stack's Alertmanager routes to, served by this test."""
    url = urlsplit(sentio_config.stack.alertmanager_webhook_url)
    receiver = await Receiver().start(port=url.port or 80)
    yield receiver
    await receiver.stop()


def am_url(config: SentioConfig) -> str:
    return f"http://127.0.0.1:{config.stack.alertmanager_port}"


def sink_config(bed: StreamTestbed, base: SentioConfig) -> SentioConfig:
    sinks = SinkSettings.model_validate(
        {
            "batch_timeout_s": 0.2,
            "retry_backoff_initial_s": 0.5,
            "retry_backoff_max_s": 3.0,
            "alertmanager": {
                "url": am_url(base),
                "health_port": 0,
                "resend_interval_s": 2,
                "firing_ttl_s": 30,
                "runbook_url": "https://wiki.example/runbooks/{type}",
            },
        }
    )
    return bed.config.model_copy(update={"sinks": sinks})


def offline(device: str, site: str, ts: int, kind: str = "OFFLINE") -> tuple[str, dict[str, Any]]:
    return device, {
        "device_id": device,
        "ts": ts,
        "kind": kind,
        "message": "no reading for 30 s" if kind == "OFFLINE" else "",
        "source": "streams",
        "details": {},
        "labels": {"kind": "pump", "site": site},
    }


def of_site(site: str) -> Callable[[Request], dict[str, Any] | None]:
    def parse(request: Request) -> dict[str, Any] | None:
        body: dict[str, Any] = json.loads(request.body)
        return body if body.get("groupLabels", {}).get("site") == site else None

    return parse


def groups(receiver: Receiver, site: str, since: int = 0) -> list[dict[str, Any]]:
    """The notifications of ``site``'s groups, from the ``since``-th request on."""
    parse = of_site(site)
    return [b for b in (parse(r) for r in receiver.requests[since:]) if b is not None]


def states(notification: dict[str, Any]) -> dict[str, str]:
    """device -> status ("firing", "resolved") of the alerts in one notification."""
    return {a["labels"]["device"]: a["status"] for a in notification["alerts"]}


async def wait_for(
    check: Callable[[], Any], timeout_s: float = 60, what: str = "", seen: Receiver | None = None
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() >= deadline:
            got = [
                (json.loads(r.body).get("groupLabels"), states(json.loads(r.body)))
                for r in (seen.requests if seen else [])
            ]
            raise AssertionError(f"timed out waiting for {what}; notifications: {got}")
        await asyncio.sleep(0.2)


class RunningSink:
    def __init__(self, config: SentioConfig, group: str) -> None:
        self.runtime = SinkRuntime(config, "alertmanager", group_id=f"{group}-sink", health_port=0)
        self.task = asyncio.create_task(self.runtime.run())

    async def stop(self) -> None:
        self.runtime.stop()
        await asyncio.wait_for(self.task, 30)


async def test_agent_alerts_reach_the_webhook_grouped_and_their_resolution_follows(
    stream_testbed: StreamTestbed, notifications: Receiver, sentio_config: SentioConfig
) -> None:
    bed = stream_testbed.configure(partitions=1, streams={"alerts": {"check_interval_s": 1}})
    site = bed.name
    worker = bed.start_worker(agents="alerts")
    sink = RunningSink(sink_config(bed, sentio_config), bed.name)
    try:
        t0 = now_us()
        pumps = [f"{site}-pump-{n}" for n in range(3)]
        bed.produce("device-events", [offline(p, site, t0) for p in pumps])

        def all_three() -> dict[str, Any] | None:
            return next((g for g in groups(notifications, site) if len(g["alerts"]) == 3), None)

        first = await wait_for(
            all_three, what="one notification with the three alerts", seen=notifications
        )
        assert first["status"] == "firing"
        assert first["groupLabels"] == {"alertname": "device_offline", "site": site}
        assert states(first) == dict.fromkeys(pumps, "firing")
        one = next(a for a in first["alerts"] if a["labels"]["device"] == pumps[0])
        assert one["labels"] == {
            "alertname": "device_offline",
            "alert_id": f"{pumps[0]}/device_offline/{t0}",
            "device": pumps[0],
            "kind": "pump",
            "sentio": bed.name,
            "severity": "major",
            "site": site,
            "tenant": "default",
        }
        assert one["annotations"] == {
            "summary": f"{pumps[0]} OFFLINE: no reading for 30 s",
            "description": f"{pumps[0]} OFFLINE: no reading for 30 s (source=streams)",
            "count": "1",
            "sentio_status": "FIRING",
            "grafana_url": f"http://127.0.0.1:3000/d/sentio-device?var-device={pumps[0]}",
            "runbook_url": "https://wiki.example/runbooks/device_offline",
        }
        assert one["generatorURL"] == one["annotations"]["grafana_url"]
        assert one["startsAt"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(t0 / S)))

        bed.produce("device-events", [offline(pumps[0], site, t0 + 5 * S, "ONLINE")])

        def resolved() -> dict[str, Any] | None:
            return next(
                (g for g in groups(notifications, site) if states(g).get(pumps[0]) == "resolved"),
                None,
            )

        later = await wait_for(resolved, what="the resolution of pump-0")
        assert states(later) == {pumps[0]: "resolved", pumps[1]: "firing", pumps[2]: "firing"}
        gone = next(a for a in later["alerts"] if a["labels"]["device"] == pumps[0])
        assert gone["endsAt"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(t0 / S + 5)))
        assert sink.runtime.metrics.records_written >= 4
    finally:
        await sink.stop()
        assert worker.stop() == 0


async def test_ack_creates_a_silence_that_suppresses_notifications_and_clear_expires_it(
    stream_testbed: StreamTestbed, notifications: Receiver, sentio_config: SentioConfig
) -> None:
    bed = stream_testbed.configure(partitions=1, streams={"alerts": {"check_interval_s": 1}})
    site = bed.name
    worker = bed.start_worker(agents="alerts")
    sink = RunningSink(sink_config(bed, sentio_config), bed.name)
    api = httpx.AsyncClient(base_url=am_url(sentio_config), timeout=10)
    try:
        a, b, c = (f"{site}-{n}" for n in ("a", "b", "c"))
        t0 = now_us()
        bed.produce("device-events", [offline(a, site, t0), offline(b, site, t0)])
        await wait_for(
            lambda: any(
                states(g) == {a: "firing", b: "firing"} for g in groups(notifications, site)
            ),
            what="a and b notified",
        )

        config = ["-c", str(bed.config_path)]
        acked = CliRunner().invoke(
            cli, ["alerts", "ack", a, "device_offline", "--comment", "on it", *config]
        )
        assert acked.exit_code == 0, acked.output
        alert_id = f"{a}/device_offline/{t0}"

        async def silence() -> dict[str, Any] | None:
            found = (
                await api.get("/api/v2/silences", params={"filter": f'alert_id="{alert_id}"'})
            ).json()
            return found[0] if found else None

        made = None
        deadline = time.monotonic() + 40
        while made is None:
            assert time.monotonic() < deadline, "no silence for the acknowledged alert"
            await asyncio.sleep(0.3)
            made = await silence()
        assert made["status"]["state"] == "active"
        assert made["createdBy"] == getpass.getuser()
        assert made["comment"] == f"Acknowledged in Sentio: on it (alert {alert_id})"
        assert sorted(
            (m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in made["matchers"]
        ) == [
            ("alert_id", alert_id, True, False),
            ("sentio", bed.name, True, False),
        ]

        seen = len(notifications.requests)
        bed.produce("device-events", [offline(c, site, now_us())])
        news = await wait_for(
            lambda: next((g for g in groups(notifications, site, seen) if c in states(g)), None),
            what="the notification that brings c",
        )
        assert states(news) == {b: "firing", c: "firing"}  # a is silenced

        cleared = CliRunner().invoke(cli, ["alerts", "clear", a, "device_offline", *config])
        assert cleared.exit_code == 0, cleared.output
        deadline = time.monotonic() + 40
        while (await silence() or {}).get("status", {}).get("state") != "expired":
            assert time.monotonic() < deadline, "the silence was not expired"
            await asyncio.sleep(0.3)
    finally:
        await api.aclose()
        await sink.stop()
        assert worker.stop() == 0


async def test_a_silence_made_in_alertmanager_acknowledges_the_alert_in_sentio(
    stream_testbed: StreamTestbed, notifications: Receiver, sentio_config: SentioConfig
) -> None:
    """The API relays the silence (only it may write alert-commands); the sink then leaves
    the silence alone and makes none of its own."""
    bed = stream_testbed.configure(partitions=1, streams={"alerts": {"check_interval_s": 1}})
    site = bed.name
    worker = bed.start_worker(agents="alerts")
    config = sink_config(bed, sentio_config)
    sink = RunningSink(config, bed.name)
    api_config = config.model_copy(
        update={"api": config.api.model_copy(update={"state_dir": bed.tmp_path / "api"})}
    )
    relay = serving(create_app(api_config))
    relay.__enter__()
    api = httpx.AsyncClient(base_url=am_url(sentio_config), timeout=10)
    try:
        device = f"{site}-d"
        t0 = now_us()
        bed.produce("device-events", [offline(device, site, t0)])
        await wait_for(lambda: groups(notifications, site), what="the alert notified")
        silence_id = await silence_device(api, device, by="maria", comment="pump swap")

        # Kafka reads on a thread: the sink shares this event loop
        alerts = await asyncio.to_thread(bed.read, "alerts", 2, 40.0)
        latest = alerts[-1].value
        assert (latest["status"], latest["device_id"]) == ("ACKNOWLEDGED", device)
        commands = await asyncio.to_thread(bed.read, "alert-commands", 1)
        assert commands[0].value["user"] == "maria"
        assert (
            commands[0].value["comment"]
            == f"silenced in Alertmanager (silence {silence_id}): pump swap"
        )
        assert commands[0].value["alert_id"] == f"{device}/device_offline/{t0}"
        await asyncio.sleep(3)  # a re-send later: no second silence, no second ack
        ours = (await api.get("/api/v2/silences", params={"filter": f'sentio="{bed.name}"'})).json()
        assert ours == []
        assert len(await asyncio.to_thread(bed.read, "alert-commands", 1, 10.0, 1.0)) == 1
        assert '{what="silences_adopted"} 1' in sink.runtime.writer.metrics_text()
    finally:
        await asyncio.to_thread(relay.__exit__, None, None, None)
        await api.aclose()
        await sink.stop()
        assert worker.stop() == 0


def private_alertmanager(base: SentioConfig, home: Path, webhook_url: str) -> Stack:
    """An Alertmanager of this test only, started by the stack's own service code: its own
    port, configuration and data, the binary the stack built. Stopping the shared one would
    make the stack look unhealthy to every other test session on this machine."""
    home.mkdir(parents=True)
    (home / "bin").symlink_to(Stack(base.stack).paths.bin)
    settings = base.stack.model_copy(
        update={
            "home": home,
            "alertmanager_port": free_port(),
            "alertmanager_webhook_url": webhook_url,
        }
    )
    stack = Stack(settings)
    stack.services = [AlertmanagerService(settings, stack.paths)]
    return stack


@pytest.mark.timeout(180)
async def test_alertmanager_down_30_s_loses_no_change(
    stream_testbed: StreamTestbed, sentio_config: SentioConfig, tmp_path: Path
) -> None:
    bed = stream_testbed.configure(partitions=1, streams={"alerts": {"check_interval_s": 1}})
    site = bed.name
    receiver = await Receiver().start()
    stack = private_alertmanager(sentio_config, tmp_path / "am", receiver.url("/alertmanager"))
    await asyncio.to_thread(stack.up)
    worker, sink = None, None
    try:
        worker = bed.start_worker(agents="alerts")
        base = sentio_config.model_copy(update={"stack": stack.settings})
        sink = RunningSink(sink_config(bed, base), bed.name)
        x, y = f"{site}-x", f"{site}-y"
        t0 = now_us()
        bed.produce("device-events", [offline(x, site, t0)])
        await wait_for(lambda: groups(receiver, site), what="x notified")

        assert await asyncio.to_thread(stack.down) == ["alertmanager"]
        down_at = time.monotonic()
        bed.produce("device-events", [offline(y, site, now_us())])
        bed.produce("device-events", [offline(x, site, t0 + 5 * S, "ONLINE")])
        await asyncio.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
        assert sink.runtime.metrics.retries >= 1
        assert [g for g in groups(receiver, site) if y in states(g)] == []
        await asyncio.to_thread(stack.up)

        def both() -> bool:
            seen = [states(g) for g in groups(receiver, site)]
            return any(s.get(y) == "firing" for s in seen) and any(
                s.get(x) == "resolved" for s in seen
            )

        await wait_for(both, timeout_s=60, what="y firing and x resolved after the outage")
    finally:
        if sink is not None:
            await sink.stop()
        await asyncio.to_thread(stack.down)
        await receiver.stop()
        assert worker is None or worker.stop() == 0


async def test_a_restarted_sink_reconciles_alertmanager_with_the_alerts_topic(
    unique_name: str, sentio_config: SentioConfig
) -> None:
    """Its records already committed, a firing alert is re-sent by the next sink; an alert
    Alertmanager holds that Sentio has no longer open (its resolution lost) is resolved."""
    config = pipeline_config(
        f"{unique_name}.",
        alertmanager={
            "url": am_url(sentio_config),
            "health_port": 0,
            "resend_interval_s": 60,
            "firing_ttl_s": 600,
        },
    )
    create_topics(config)
    pipeline = unique_name
    firing = alert(f"{unique_name}-x", "FIRING", start_ts=now_us() - 60 * S)
    publish(config, [firing])
    api = httpx.AsyncClient(base_url=am_url(sentio_config), timeout=10)

    async def held() -> dict[str, dict[str, Any]]:
        found = await api.get("/api/v2/alerts", params={"filter": f'sentio="{pipeline}"'})
        return {a["labels"]["alert_id"]: a for a in found.json()}

    try:
        first = RunningSink(config, unique_name)
        await wait_for(lambda: first.runtime.metrics.records_written >= 1, what="x written")
        await first.stop()
        before = (await held())[firing["alert_id"]]["endsAt"]
        ghost = {
            "sentio": pipeline,
            "alertname": "device_offline",
            "alert_id": "ghost/1",
            "device": "ghost",
        }
        made = await api.post(
            "/api/v2/alerts", json=[{"labels": ghost, "endsAt": "2099-01-01T00:00:00Z"}]
        )
        assert made.status_code == 200, made.text
        assert set(await held()) == {firing["alert_id"], "ghost/1"}

        await asyncio.sleep(1.1)  # endsAt has millisecond resolution: let it move
        second = RunningSink(config, unique_name)
        try:
            deadline = time.monotonic() + 30
            while set(await held()) != {firing["alert_id"]}:
                assert time.monotonic() < deadline, f"not reconciled: {set(await held())}"
                await asyncio.sleep(0.3)
            assert (await held())[firing["alert_id"]]["endsAt"] > before
            assert second.runtime.metrics.records_written == 0  # nothing new on the topic
        finally:
            await second.stop()
    finally:
        await api.aclose()


async def test_the_compose_configuration_is_one_alertmanager_accepts(
    sentio_config: SentioConfig, tmp_path: Path
) -> None:
    """deploy/alertmanager/alertmanager.yml, loaded by the real binary the stack built."""
    deployed = Path(__file__).parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"
    port = free_port()
    binary = Stack(sentio_config.stack).paths.bin / "alertmanager"
    process = await asyncio.create_subprocess_exec(
        str(binary),
        f"--config.file={deployed}",
        f"--storage.path={tmp_path}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:
            deadline = time.monotonic() + 20
            while True:
                assert process.returncode is None, "Alertmanager refused the configuration"
                try:
                    if (await api.get("/-/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "Alertmanager did not get ready"
                await asyncio.sleep(0.2)
            status = (await api.get("/api/v2/status")).json()
        assert "receiver: webhook" in status["config"]["original"]
        assert "group_by:\n  - alertname\n  - site" in status["config"]["original"]
    finally:
        process.terminate()
        await process.wait()
