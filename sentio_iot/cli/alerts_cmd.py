"""``sentio alerts``: list the open alerts, acknowledge or clear one.

``list`` reads the compacted alerts topic from the start (read_committed) and keeps the
latest state per key ``device_id/type``. ``ack`` and ``clear`` write an AlertCommand (key:
the device id, so it lands on the partition that holds the alert) to the alert-commands
topic; the alerts agent applies it in the stream and emits the new state.
"""

from __future__ import annotations

import getpass
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from sentio_iot.cli.options import config_option, load
from sentio_iot.config import SentioConfig
from sentio_iot.errors import OperationTimeout
from sentio_iot.records import now_us

OPEN_STATUSES = ("FIRING", "ACKNOWLEDGED")
SEND_TIMEOUT_S = 15.0


@click.group("alerts")
def alerts_group() -> None:
    """Alerts: see the open ones, acknowledge or clear them."""


@alerts_group.command("list")
@config_option
@click.option("--all", "show_all", is_flag=True, help="Also show resolved alerts.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to read the topic.")
def list_alerts(config_path: Path | None, show_all: bool, timeout: float) -> None:
    """The latest state of every open alert (from the compacted alerts topic)."""
    config = load(config_path)
    latest = latest_per_key(read_alerts(config, timeout))
    rows = [("KEY", "STATUS", "SEVERITY", "COUNT", "SINCE", "ALERT ID", "MESSAGE")]
    shown = [a for a in latest.values() if show_all or a["status"] in OPEN_STATUSES]
    for alert in sorted(shown, key=lambda a: (a["device_id"], a["type"])):
        rows.append(
            (
                f"{alert['device_id']}/{alert['type']}",
                alert["status"],
                alert["severity"],
                str(alert["count"]),
                _time(alert["start_ts"]),
                alert["alert_id"],
                _message(alert),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{len(shown)} {'alert(s)' if show_all else 'open alert(s)'}")


@alerts_group.command("ack")
@config_option
@click.argument("device_id")
@click.argument("alert_type")
@click.option("--alert-id", default=None, help="Only this occurrence (from `sentio alerts list`).")
@click.option("--comment", default="", help="A note for the other operators.")
def ack(config_path: Path | None, device_id: str, alert_type: str, **options: Any) -> None:
    """Acknowledge the open alert of DEVICE_ID and ALERT_TYPE (e.g. pump-1 anomaly)."""
    send_command(load(config_path), command_record(device_id, alert_type, "ACK", **options))
    click.echo(f"ACK sent for {device_id}/{alert_type}")


@alerts_group.command("clear")
@config_option
@click.argument("device_id")
@click.argument("alert_type")
@click.option("--alert-id", default=None, help="Only this occurrence (from `sentio alerts list`).")
@click.option("--comment", default="", help="A note for the other operators.")
def clear(config_path: Path | None, device_id: str, alert_type: str, **options: Any) -> None:
    """Resolve the open alert of DEVICE_ID and ALERT_TYPE by hand."""
    send_command(load(config_path), command_record(device_id, alert_type, "CLEAR", **options))
    click.echo(f"CLEAR sent for {device_id}/{alert_type}")


def command_record(
    device_id: str,
    alert_type: str,
    action: str,
    *,
    alert_id: str | None = None,
    comment: str = "",
    user: str | None = None,
) -> dict[str, Any]:
    """An AlertCommand record (schemas/avro/AlertCommand.avsc)."""
    return {
        "command_id": uuid.uuid4().hex,
        "device_id": device_id,
        "type": alert_type,
        "action": action,
        "alert_id": alert_id,
        "ts": now_us(),
        "user": user if user is not None else _user(),
        "comment": comment,
    }


def latest_per_key(alerts: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The last state of each ``device_id/type``, in the order read (topic order per key)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for alert in alerts:
        latest[f"{alert['device_id']}/{alert['type']}"] = alert
    return latest


def send_command(config: SentioConfig, command: Mapping[str, Any]) -> None:
    from confluent_kafka import Producer

    from sentio_iot.kafka import producer_config
    from sentio_iot.registry import SchemaRegistry
    from sentio_iot.schemas.catalog import spec
    from sentio_iot.serde import AvroSerde
    from sentio_iot.topic_admin import apply_topics

    entry = spec("alert-commands")
    apply_topics(config, (entry,))
    topic = entry.topic(config.topics)
    with SchemaRegistry(config.schema_registry) as registry:
        serde = AvroSerde(registry, topic, "AlertCommand")
        serde.register()
        value = serde.encode(command)
    producer = Producer(producer_config(config.kafka))
    producer.produce(topic, key=str(command["device_id"]).encode(), value=value)
    if producer.flush(SEND_TIMEOUT_S) != 0:
        raise OperationTimeout(f"the command was not delivered to {topic} in time")


def read_alerts(config: SentioConfig, timeout_s: float) -> list[dict[str, Any]]:
    """Every record of the alerts topic up to its current end (read_committed)."""
    from confluent_kafka import Consumer, TopicPartition

    from sentio_iot.kafka import consumer_config
    from sentio_iot.registry import SchemaRegistry
    from sentio_iot.schemas.catalog import spec
    from sentio_iot.serde import AvroSerde

    topic = spec("alerts").topic(config.topics)
    group = f"sentio-alerts-list-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(config.kafka, group))
    out: list[dict[str, Any]] = []
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        ends: dict[int, int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        if not ends:
            return out
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout_s
        with SchemaRegistry(config.schema_registry) as registry:
            serde = AvroSerde(registry, topic, "Alert")
            while ends and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    _drop_finished(consumer, topic, ends)
                    continue
                if message.error():
                    continue
                if message.value() is not None:
                    out.append(serde.decode(message.value()))
                if message.offset() + 1 >= ends.get(message.partition(), 0):
                    ends.pop(message.partition(), None)
        if ends:
            raise OperationTimeout(f"reading {topic} took longer than {timeout_s:g} s")
    finally:
        consumer.close()
    return out


def _drop_finished(consumer: Any, topic: str, ends: dict[int, int]) -> None:
    """Partitions whose position reached the end (transaction markers end a partition too)."""
    from confluent_kafka import TopicPartition

    for tp in consumer.position([TopicPartition(topic, p) for p in list(ends)]):
        if tp.offset >= 0 and tp.offset >= ends[tp.partition]:
            ends.pop(tp.partition, None)


def _message(alert: Mapping[str, Any]) -> str:
    """The message, and who acknowledged or cleared the alert when the command named them."""
    details = alert.get("details") or {}
    who = [
        f"{verb} by {details[key]}"
        for key, verb in (("acked_by", "acknowledged"), ("cleared_by", "cleared"))
        if details.get(key)
    ]
    return f"{alert['message']} [{'; '.join(who)}]" if who else alert["message"]


def _time(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _user() -> str:
    try:
        return getpass.getuser()
    except OSError:
        return ""
