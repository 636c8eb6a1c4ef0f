"""Alert delivery without I/O: Alertmanager labels and bodies, the sink's book, signatures."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
import yaml

from sentio_iot.config import load_config
from sentio_iot.errors import ConfigError
from sentio_iot.settings.alert_delivery import AlertmanagerSinkSettings
from sentio_iot.sinks.alert_fields import Defaults, iso_time
from sentio_iot.sinks.alertmanager_alerts import Linking, labels, postable, resolved
from sentio_iot.sinks.alertmanager_book import AlertBook
from sentio_iot.sinks.webhook_signature import signature, signed_headers
from sentio_iot.stack.alertmanager import render_alertmanager_yml

S = 1_000_000
START = 1_795_000_000_000_000


def linking(**settings: Any) -> Linking:
    return Linking(
        "plant-a", Defaults(tenant="acme", site="hall-2"), AlertmanagerSinkSettings(**settings)
    )


def record(status: str = "FIRING", severity: str = "MAJOR", **extra: Any) -> dict[str, Any]:
    return {
        "alert_id": f"pump-1/anomaly/{START}",
        "device_id": "pump-1",
        "type": "anomaly",
        "severity": severity,
        "status": status,
        "start_ts": START,
        "end_ts": START + 40 * S if status == "RESOLVED" else None,
        "ack_ts": None,
        "count": 3,
        "message": "pump-1 anomaly: temp=56 (score 0.98)",
        "details": {"metric": "temp", "value": "56"},
        "labels": {"kind": "pump", "line": "L2", "bad-name": "x", "site": "hall-9"},
        **extra,
    }


def test_an_alert_becomes_these_labels_and_annotations() -> None:
    now = START + 100 * S
    body = postable(record(), linking(runbook_url="https://wiki/{type}"), now)
    assert body == {
        "labels": {
            "alert_id": f"pump-1/anomaly/{START}",
            "alertname": "anomaly",
            "device": "pump-1",
            "kind": "pump",
            "line": "L2",
            "sentio": "plant-a",
            "severity": "major",
            "site": "hall-9",
            "tenant": "acme",
        },
        "annotations": {
            "summary": "pump-1 anomaly: temp=56 (score 0.98)",
            "description": "pump-1 anomaly: temp=56 (score 0.98) (metric=temp, value=56)",
            "count": "3",
            "sentio_status": "FIRING",
            "grafana_url": "http://127.0.0.1:3000/d/sentio-device?var-device=pump-1",
            "runbook_url": "https://wiki/anomaly",
        },
        "startsAt": "2026-11-18T11:06:40Z",
        "endsAt": iso_time(now + 180 * S),  # firing_ttl_s ahead
        "generatorURL": "http://127.0.0.1:3000/d/sentio-device?var-device=pump-1",
    }


def test_a_resolution_ends_at_its_end_never_in_the_future() -> None:
    gone = record("RESOLVED")
    assert postable(gone, linking(), START + 100 * S)["endsAt"] == "2026-11-18T11:07:20Z"
    assert postable(gone, linking(), START + 10 * S)["endsAt"] == "2026-11-18T11:06:50Z"
    retired = resolved((("alertname", "anomaly"),), START + 10 * S)
    assert retired == {
        "labels": {"alertname": "anomaly"},
        "startsAt": "2026-11-18T11:06:49Z",
        "endsAt": "2026-11-18T11:06:50Z",
    }


def test_the_book_follows_an_alert_through_ack_escalation_and_resolution() -> None:
    book = AlertBook(linking())
    book.command(
        {
            "action": "ACK",
            "device_id": "pump-1",
            "type": "anomaly",
            "user": "ana",
            "comment": "on it",
        }
    )
    book.apply(record())
    major = labels(record(), book.linking)
    assert (list(book.open), book.posted) == (["pump-1/anomaly"], {record()["alert_id"]: major})

    book.apply(record("ACKNOWLEDGED"))
    assert list(book.to_silence) == [record()["alert_id"]]
    silence = book.silence_for(record("ACKNOWLEDGED"), "T0", "T1")
    assert silence == {
        "matchers": [
            {"name": "sentio", "value": "plant-a", "isRegex": False, "isEqual": True},
            {"name": "alert_id", "value": record()["alert_id"], "isRegex": False, "isEqual": True},
        ],
        "startsAt": "T0",
        "endsAt": "T1",
        "createdBy": "ana",
        "comment": f"Acknowledged in Sentio: on it (alert {record()['alert_id']})",
    }
    book.silences[record()["alert_id"]] = "s-1"
    del book.to_silence[record()["alert_id"]]

    book.apply(record("ACKNOWLEDGED", severity="CRITICAL"))  # escalated: another label set
    assert book.owed_retired() == [major]
    assert book.to_silence == {}  # the silence covers the occurrence, whatever its severity

    book.apply(record("RESOLVED", severity="CRITICAL"))
    assert (book.open, book.posted, book.silences) == ({}, {}, {})
    assert book.to_expire == {record()["alert_id"]: "s-1"}


def test_a_silence_made_in_alertmanager_is_not_doubled_nor_expired() -> None:
    book = AlertBook(linking())
    book.apply(record())
    book.foreign[record()["alert_id"]] = "theirs"
    book.apply(record("ACKNOWLEDGED"))
    assert book.to_silence == {}
    book.apply(record("RESOLVED"))
    assert (book.to_expire, book.foreign) == ({}, {})


def test_a_refused_alert_is_dropped_without_retiring_its_labels() -> None:
    book = AlertBook(linking())
    book.apply(record())
    book.drop(record())
    assert (book.open, book.posted, book.owed_retired()) == ({}, {}, [])


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"event":"alert.firing"}'
    expected = hmac.new(b"k" * 16, b"1765101600." + body, hashlib.sha256).hexdigest()
    assert signature(b"k" * 16, 1765101600, body) == "sha256=" + expected
    assert signed_headers(b"k" * 16, 1765101600, body) == {
        "X-Sentio-Timestamp": "1765101600",
        "X-Sentio-Signature": "sha256=" + expected,
    }


def test_firing_alerts_must_outlive_two_resends() -> None:
    with pytest.raises(
        ConfigError,
        match=r"sinks\.alertmanager: .*firing_ttl_s \(50\) must be at least 2 x resend_interval_s \(30\)",
    ):
        load_config(data={"sinks": {"alertmanager": {"firing_ttl_s": 50}}})


def test_the_local_alertmanager_routes_everything_to_one_webhook() -> None:
    config = yaml.safe_load(render_alertmanager_yml("http://127.0.0.1:9097/alertmanager"))
    assert config == {
        "route": {
            "receiver": "sentio-webhook",
            "group_by": ["alertname", "site"],
            "group_wait": "2s",
            "group_interval": "4s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "sentio-webhook",
                "webhook_configs": [
                    {"url": "http://127.0.0.1:9097/alertmanager", "send_resolved": True}
                ],
            }
        ],
    }


def test_the_live_view_shows_notifications_sent_once_reported() -> None:
    from sentio_iot.pipeline.liveview import View, WorkerRow, progress_line, render
    from sentio_iot.pipeline.results import Results

    def view(counts: dict[str, int]) -> View:
        row = WorkerRow("sink-alertmanager", "running", True, 7, 1.0, 9.0)
        return View(1.0, None, "plant", [row], None, Results(counts=counts), [])

    counts = {"rollups": 1, "anomalies": 2, "alerts": 3, "rul": 4}
    assert "results  rollups 1  anomalies 2  alerts 3  RUL predictions 4" in render(
        view(counts), color=False
    )
    shown = render(view({**counts, "notifications": 1234}), color=False)
    assert (
        "results  rollups 1  anomalies 2  alerts 3  RUL predictions 4  notifications sent 1,234"
        in shown
    )
    failing = render(view({**counts, "notifications": 5, "notifications_failed": 2}), color=False)
    assert (
        "results  rollups 1  anomalies 2  alerts 3  RUL predictions 4  notifications sent 5 (2 failed: "
        "Alertmanager's receivers refused them, its log says why; see docs/alerting.md)" in failing
    )
    assert progress_line(view({**counts, "notifications": 5})).endswith(
        "alerts 3, RUL 4, notifications sent 5"
    )


def test_the_sink_reports_what_alertmanager_sent(tmp_path: Any) -> None:
    from sentio_iot.pipeline.metrics_text import parse_metrics, total
    from sentio_iot.sinks.alertmanager import AlertmanagerWriter

    writer = AlertmanagerWriter(load_config(data={"topics": {"prefix": "p."}}))
    writer.counts.inc("alerts_posted", by=3)
    writer.notified.values = {("sent", "webhook"): 4.0, ("failed", "webhook"): 1.0}
    samples = parse_metrics(writer.metrics_text())
    assert total(samples, "sentio_sink_alertmanager_total", what="alerts_posted") == 3
    assert total(samples, "sentio_sink_alertmanager_notifications", outcome="sent") == 4
    assert total(samples, "sentio_sink_alertmanager_notifications", outcome="failed") == 1


def test_the_local_alertmanager_listens_on_its_own_port_without_gossip(tmp_path: Any) -> None:
    from sentio_iot.config import StackSettings
    from sentio_iot.stack.alertmanager import AlertmanagerService
    from sentio_iot.stack.paths import StackPaths

    settings = StackSettings(home=tmp_path, alertmanager_port=19095)  # type: ignore[call-arg]
    service = AlertmanagerService(settings, StackPaths(tmp_path))
    service.prepare(progress=lambda line: None)
    assert service.command() == [
        str(tmp_path / "bin" / "alertmanager"),
        f"--config.file={tmp_path / 'state' / 'conf' / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'state' / 'data' / 'alertmanager'}",
        "--web.listen-address=127.0.0.1:19095",
        "--web.external-url=http://127.0.0.1:19095",
        "--cluster.listen-address=",
    ]
    assert service.ports() == [(19095, "stack.alertmanager_port")]
    written = (tmp_path / "state" / "conf" / "alertmanager.yml").read_text()
    assert "http://127.0.0.1:9097/alertmanager" in written


def test_a_run_shows_the_notifications_alertmanager_sent_since_its_sink_first_reported() -> None:
    from sentio_iot.pipeline.orchestrator import SinceFirst

    counts = SinceFirst()
    assert counts.since_first((597.0, 574.0)) == (0.0, 0.0)  # earlier runs' notifications
    assert counts.since_first((602.0, 575.0)) == (5.0, 1.0)
    assert counts.since_first((3.0, 0.0)) == (0.0, 0.0)  # Alertmanager restarted: anew
    assert counts.since_first((7.0, 2.0)) == (4.0, 2.0)
