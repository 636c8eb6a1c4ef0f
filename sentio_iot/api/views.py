"""In-memory views of the derived topics: the latest state per key, with a cursor.

Every record applied becomes an :class:`Update` with a sequence number. The views keep the
latest update per key (a device's reading, an alert, a device's RUL and last event) and a
bounded ring of recent anomalies; ``since(cursor)`` is what a reconnecting client missed.
A cursor is ``<epoch>.<seq>``; the epoch changes at each start (the views are rebuilt from
Kafka), so a cursor from an earlier run is answered with everything the views hold.
Only the event loop's thread calls ``apply`` and reads: no locks.
"""

from __future__ import annotations

import json
import uuid
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

KINDS = ("readings", "anomalies", "alerts", "rul", "device_events", "pipeline")
EVERY_TENANT = ""  # the tenant of an update every caller sees (pipeline health: no device)
OPEN_ALERT = ("FIRING", "ACKNOWLEDGED")
COMMANDS = "alert_commands"  # the feed's kind for AlertCommands: history, not a live kind
COMMANDS_KEPT = 200  # per alert (device and type): the newest are kept
OCCURRENCES_KEPT = 20  # earlier occurrences per alert (device and type), their last state
OFFLINE_KINDS = ("OFFLINE", "DISCONNECTED", "REMOVED")
ONLINE_KINDS = ("ONLINE", "CONNECTED", "DISCOVERED")


@dataclass(frozen=True)
class Update:
    """One record as the views and live clients see it."""

    seq: int
    kind: str  # one of KINDS
    key: str  # coalescing key: a newer update with the same key supersedes this one
    device_id: str
    tenant: str
    site: str
    metrics: frozenset[str]
    data: Mapping[str, Any]
    epoch: str = ""

    @property
    def cursor(self) -> str:
        return f"{self.epoch}.{self.seq}"

    @cached_property
    def message(self) -> str:
        """The live message, serialised once however many clients it goes to."""
        body = {"type": "update", "kind": self.kind, "cursor": self.cursor, "data": self.data}
        return json.dumps(body, separators=(",", ":"))


@dataclass
class Device:
    device_id: str
    tenant: str
    site: str
    type: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    status: str = "UNKNOWN"
    last_seen_ts: int | None = None
    last_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_event: Mapping[str, Any] | None = None
    rul: Mapping[str, Any] | None = None
    seq: int = 0


class Views:
    def __init__(self, default_tenant: str, default_site: str, anomalies_kept: int) -> None:
        self.default_tenant = default_tenant
        self.default_site = default_site
        self.epoch = uuid.uuid4().hex[:8]
        self.seq = 0
        self.latest: dict[str, Update] = {}
        self.anomalies: deque[Update] = deque(maxlen=anomalies_kept)
        self.devices: dict[str, Device] = {}
        self.alerts: dict[str, Update] = {}
        self.commands: dict[str, deque[Mapping[str, Any]]] = {}
        self.past_alerts: dict[str, deque[Mapping[str, Any]]] = {}
        self._ordered: tuple[int, list[int], list[Update]] = (-1, [], [])

    @property
    def cursor(self) -> str:
        return f"{self.epoch}.{self.seq}"

    def parse_cursor(self, cursor: str | None) -> int:
        """The sequence number after which a client has everything; 0: send it all."""
        if not cursor:
            return 0
        epoch, _, seq = cursor.partition(".")
        if epoch != self.epoch or not seq.isdigit():
            return 0
        return min(int(seq), self.seq)

    def apply(self, kind: str, record: Mapping[str, Any]) -> Update:
        self.seq += 1
        labels: Mapping[str, str] = record.get("labels") or {}
        device_id = str(record["device_id"])
        update = Update(
            self.seq,
            kind,
            _key(kind, record),
            device_id,
            labels.get("tenant") or self.default_tenant,
            labels.get("site") or self.default_site,
            _metrics(kind, record),
            record,
            self.epoch,
        )
        if kind == "anomalies":
            self.anomalies.append(update)
        else:
            self.latest[update.key] = update
        if kind == "alerts":
            before = self.alerts.get(update.key)
            if before is not None and before.data.get("alert_id") != record.get("alert_id"):
                self._past(update.key).append(before.data)  # a new occurrence of the alert
            self.alerts[update.key] = update
        self._device(update)
        return update

    def apply_command(self, record: Mapping[str, Any]) -> None:
        """An AlertCommand (acknowledge, clear; an Alertmanager silence arrives as an
        acknowledgement by its author) into its alert's history; it has no tenant of its own:
        readers filter by the alert's."""
        key = f"alerts/{record['device_id']}/{record['type']}"
        kept = self.commands.get(key)
        if kept is None:
            kept = self.commands[key] = deque(maxlen=COMMANDS_KEPT)
        kept.append(record)

    def _past(self, key: str) -> deque[Mapping[str, Any]]:
        kept = self.past_alerts.get(key)
        if kept is None:
            kept = self.past_alerts[key] = deque(maxlen=OCCURRENCES_KEPT)
        return kept

    def apply_pipeline(self, health: Mapping[str, Any]) -> Update:
        """The pipeline's health (the body of GET /api/v1/health/pipeline): one key, no device,
        seen by every tenant; kept as the latest so a resume gets it too."""
        self.seq += 1
        update = Update(
            self.seq, "pipeline", "pipeline", "", EVERY_TENANT, "", frozenset(), health, self.epoch
        )
        self.latest[update.key] = update
        return update

    def since(self, seq: int) -> list[Update]:
        """Everything the views hold that is newer than ``seq``, oldest first. The order is
        kept until the next update, so the clients that catch up together sort once."""
        at, seqs, ordered = self._ordered
        if at != self.seq:
            held: Iterable[Update] = (*self.latest.values(), *self.anomalies)
            ordered = sorted(held, key=lambda u: u.seq)
            seqs = [u.seq for u in ordered]
            self._ordered = (self.seq, seqs, ordered)
        return ordered[bisect_right(seqs, seq) :]

    def open_alerts(self, device_id: str) -> list[Mapping[str, Any]]:
        return [
            u.data
            for u in self.alerts.values()
            if u.device_id == device_id and u.data.get("status") in OPEN_ALERT
        ]

    def alert_list(self) -> Iterator[Update]:
        return iter(self.alerts.values())

    def _device(self, update: Update) -> None:
        device = self.devices.get(update.device_id)
        if device is None:
            device = Device(update.device_id, update.tenant, update.site)
            self.devices[update.device_id] = device
        device.seq = update.seq
        data = update.data
        labels = data.get("labels") or {}
        if labels:
            device.labels = dict(labels)
            device.tenant, device.site = update.tenant, update.site
            device.type = labels.get("type") or labels.get("kind") or device.type
        if update.kind == "readings":
            _merge_values(device.last_values, data)
            device.last_seen_ts = max(device.last_seen_ts or 0, int(data["ts"]))
            if device.status == "UNKNOWN":
                device.status = "ONLINE"
        elif update.kind == "device_events":
            device.last_event = data
            if data["kind"] in OFFLINE_KINDS:
                device.status = "OFFLINE"
            elif data["kind"] in ONLINE_KINDS:
                device.status = "ONLINE"
        elif update.kind == "rul":
            device.rul = data


def _key(kind: str, record: Mapping[str, Any]) -> str:
    device = record["device_id"]
    if kind == "alerts":
        return f"alerts/{device}/{record['type']}"
    if kind == "anomalies":
        return f"anomalies/{device}/{record['metric']}"
    return f"{kind}/{device}"


def _metrics(kind: str, record: Mapping[str, Any]) -> frozenset[str]:
    if kind == "readings":
        return frozenset(m["name"] for m in record["metrics"])
    if kind == "anomalies":
        return frozenset((record["metric"],))
    return frozenset()


def _merge_values(values: dict[str, dict[str, Any]], reading: Mapping[str, Any]) -> None:
    ts = int(reading["ts"])
    for metric in reading["metrics"]:
        known = values.get(metric["name"])
        if known is not None and known["ts"] > ts:
            continue  # an older reading read late must not replace a newer value
        values[metric["name"]] = {
            "value": metric.get("value"),
            "text": metric.get("text"),
            "unit": metric.get("unit"),
            "quality": metric.get("quality", "GOOD"),
            "ts": ts,
        }
