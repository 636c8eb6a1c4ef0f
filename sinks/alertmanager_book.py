"""What the Alertmanager sink knows and still owes Alertmanager; pure, no I/O.

- ``open``: the latest record of every open alert (FIRING or ACKNOWLEDGED) by key
  ``device_id/type``; these are (re-)sent as firing.
- ``posted``: the label set last sent per open ``alert_id``. When it changes (a severity
  escalates, a device label changes) the old set is a different Alertmanager alert: it goes
  to ``retire`` and is sent resolved.
- ``silences``: the silence the sink made for an acknowledged alert, by ``alert_id``;
  ``foreign``: a silence someone made in Alertmanager that acknowledged the alert in Sentio
  (left alone when the alert resolves).
- ``to_silence`` / ``to_expire``: silence work not yet done. Everything owed is cleared only
  after Alertmanager took it, so a write retried after an outage sends it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sentio_iot.sinks.alert_fields import key_of
from sentio_iot.sinks.alertmanager_alerts import Labels, Linking, labels

FIRING, ACKNOWLEDGED, RESOLVED = "FIRING", "ACKNOWLEDGED", "RESOLVED"
SILENCE_COMMENT = "Acknowledged in Sentio"  # how the sink knows its own silences


@dataclass
class AlertBook:
    linking: Linking
    open: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    posted: dict[str, Labels] = field(default_factory=dict)
    retire: set[Labels] = field(default_factory=set)
    silences: dict[str, str] = field(default_factory=dict)
    foreign: dict[str, str] = field(default_factory=dict)
    to_silence: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    to_expire: dict[str, str] = field(default_factory=dict)  # alert_id -> silence id
    ack_authors: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> user, comment

    def apply(self, record: Mapping[str, Any]) -> None:
        """One state change of an alert (raises KeyError/ValueError when it breaks the contract)."""
        key, alert_id, status = key_of(record), str(record["alert_id"]), str(record["status"])
        label_set = labels(record, self.linking)
        if status == RESOLVED:
            if key in self.open and self.open[key]["alert_id"] == alert_id:
                del self.open[key]
            old = self.posted.pop(alert_id, None)
            if old is not None and old != label_set:
                self.retire.add(old)
            self.to_silence.pop(alert_id, None)
            if alert_id in self.silences:
                self.to_expire[alert_id] = self.silences.pop(alert_id)
            self.foreign.pop(alert_id, None)
            return
        previous = self.open.get(key)
        if previous is not None and previous["alert_id"] != alert_id:
            self._forget(str(previous["alert_id"]))  # an occurrence we never saw resolve
        self.open[key] = record
        old = self.posted.get(alert_id)
        if old is not None and old != label_set:
            self.retire.add(old)
        self.posted[alert_id] = label_set
        self.retire.discard(label_set)
        unsilenced = alert_id not in self.silences and alert_id not in self.foreign
        if status == ACKNOWLEDGED and unsilenced:
            self.to_silence[alert_id] = record

    def command(self, command: Mapping[str, Any]) -> None:
        """An AlertCommand: an ACK's user and comment name the silence it leads to."""
        if str(command.get("action")) == "ACK":
            key = f"{command['device_id']}/{command['type']}"
            self.ack_authors[key] = (
                str(command.get("user") or ""),
                str(command.get("comment") or ""),
            )

    def drop(self, record: Mapping[str, Any]) -> None:
        """Alertmanager refused this alert: stop sending it."""
        key, alert_id = key_of(record), str(record["alert_id"])
        if key in self.open and self.open[key]["alert_id"] == alert_id:
            del self.open[key]
        self.posted.pop(alert_id, None)  # never retired: its labels may be what was refused
        self._forget(alert_id)

    def by_alert_id(self, alert_id: str) -> Mapping[str, Any] | None:
        for record in self.open.values():
            if record["alert_id"] == alert_id:
                return record
        return None

    def silence_for(self, record: Mapping[str, Any], now: str, until: str) -> dict[str, Any]:
        """The silence an acknowledgement makes: this occurrence only, named after who acked."""
        user, comment = self.ack_authors.get(key_of(record), ("", ""))
        note = f"{SILENCE_COMMENT}: {comment}" if comment else SILENCE_COMMENT
        return {
            "matchers": [
                {
                    "name": "sentio",
                    "value": self.linking.pipeline,
                    "isRegex": False,
                    "isEqual": True,
                },
                {
                    "name": "alert_id",
                    "value": str(record["alert_id"]),
                    "isRegex": False,
                    "isEqual": True,
                },
            ],
            "startsAt": now,
            "endsAt": until,
            "createdBy": user or "sentio",
            "comment": f"{note} (alert {record['alert_id']})",
        }

    def owed_retired(self) -> list[Labels]:
        return sorted(self.retire)

    def _forget(self, alert_id: str) -> None:
        old = self.posted.pop(alert_id, None)
        if old is not None:
            self.retire.add(old)
        self.to_silence.pop(alert_id, None)
        if alert_id in self.silences:
            self.to_expire[alert_id] = self.silences.pop(alert_id)
        self.foreign.pop(alert_id, None)
