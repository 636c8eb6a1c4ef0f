"""The Zigbee2MQTT preset: devices from ``bridge/devices``, their state, availability, bridge events.

Topics under the base topic (``zigbee2mqtt``):

- ``bridge/devices`` (retained array): the devices, keyed on ``ieee_address`` (friendly names
  change), with model, vendor and exposes (units, the words a binary value uses for on/off).
  New devices give DISCOVERED, vanished ones REMOVED, renamed ones INFO.
- ``bridge/groups``: group names, so a group's state is not mistaken for a device (ignored).
- ``bridge/state``: the bridge ONLINE/OFFLINE, ``{"state":"online"}`` (2.x) or ``online``.
- ``bridge/event``: device_joined (DISCOVERED), device_leave (REMOVED), device_interview and
  device_announce (INFO; a failed interview is ERROR).
- ``<friendly_name>`` (a JSON object): one reading with a metric per numeric field (units from
  exposes), booleans and ON/OFF as 1/0, other text kept as text, nested objects flattened
  (``color.x`` -> ``color_x``). Friendly names may contain ``/``: the longest known name wins.
- ``<friendly_name>/availability``: ONLINE/OFFLINE, JSON (2.x) or plain text (1.x).
- ``<friendly_name>/set``, ``/get`` (and their sub-topics) are commands: ignored.

Until the device list has arrived, state of devices keyed by ieee_address is held (at most
``devices_wait_s``), so a restart does not key early readings by friendly name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sentio_iot.producers.mqtt.config import DeviceIdSource, Zigbee2MqttPreset
from sentio_iot.producers.mqtt.output import Message, Output
from sentio_iot.producers.mqtt.payloads import PayloadError, decode, decode_json, to_number
from sentio_iot.records import EventKind, Metric

log = logging.getLogger(__name__)

MAX_PENDING = 10_000
BRIDGE_EVENTS = {
    "device_joined": EventKind.DISCOVERED,
    "device_leave": EventKind.REMOVED,
    "device_announce": EventKind.INFO,
    "device_interview": EventKind.INFO,
}
Schedule = Callable[[float, Callable[[], None]], object]


@dataclass
class Zigbee2MqttDevice:
    """What ``bridge/devices`` says about one device."""

    ieee_address: str
    friendly_name: str
    model: str = ""
    vendor: str = ""
    units: dict[str, str] = field(default_factory=dict)  # state field -> unit
    binaries: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (on, off)

    @classmethod
    def from_bridge(cls, entry: dict[str, Any]) -> Zigbee2MqttDevice:
        definition = entry.get("definition") or {}
        device = cls(
            ieee_address=str(entry["ieee_address"]),
            friendly_name=str(entry.get("friendly_name") or entry["ieee_address"]),
            model=str(definition.get("model") or entry.get("model_id") or ""),
            vendor=str(definition.get("vendor") or entry.get("manufacturer") or ""),
        )
        device.learn_exposes(definition.get("exposes") or [], prefix="")
        return device

    def learn_exposes(self, exposes: Iterable[Any], prefix: str) -> None:
        """Units and on/off words from exposes; composite features nest under their property."""
        for expose in exposes:
            if not isinstance(expose, dict):
                continue
            prop = expose.get("property")
            name = f"{prefix}{prop}" if prop else None
            if expose.get("features"):
                nested = f"{name}_" if name and expose.get("type") == "composite" else prefix
                self.learn_exposes(expose["features"], nested)
                continue
            if name is None:
                continue
            if expose.get("unit"):
                self.units[name] = str(expose["unit"])
            if expose.get("type") == "binary":
                self.binaries[name] = (expose.get("value_on"), expose.get("value_off"))

    def labels(self) -> dict[str, str]:
        labels = {"friendly_name": self.friendly_name, "ieee_address": self.ieee_address}
        if self.model:
            labels["model"] = self.model
        if self.vendor:
            labels["vendor"] = self.vendor
        return labels


def resolve_friendly_name(rest: str, names: Iterable[str] | set[str]) -> tuple[str, str] | None:
    """Split ``rest`` (the topic after the base) into (known friendly name, the levels after it).

    The longest name that fills whole levels wins: with devices ``kitchen`` and
    ``kitchen/light``, ``kitchen/light/availability`` is ``("kitchen/light", "availability")``.
    """
    known = names if isinstance(names, set) else set(names)
    levels = rest.split("/")
    for end in range(len(levels), 0, -1):
        candidate = "/".join(levels[:end])
        if candidate in known:
            return candidate, "/".join(levels[end:])
    return None


def guess_friendly_name(rest: str) -> tuple[str, str]:
    """Without a device list: the topic names a device, maybe followed by a known suffix."""
    levels = rest.split("/")
    for index, level in enumerate(levels[1:], start=1):
        if level in ("set", "get") or (level == "availability" and index == len(levels) - 1):
            return "/".join(levels[:index]), "/".join(levels[index:])
    return rest, ""


def state_metrics(
    state: dict[str, Any],
    device: Zigbee2MqttDevice | None,
    *,
    exclude: Iterable[str] = (),
    text_values: bool = True,
    prefix: str = "",
) -> list[Metric]:
    """The metrics of one state message (units and on/off words from the device's exposes)."""
    units = device.units if device else {}
    binaries = device.binaries if device else {}
    metrics: list[Metric] = []
    for key, value in state.items():
        name = f"{prefix}{key}"
        if key in exclude or value is None or isinstance(value, list):
            continue
        if isinstance(value, dict):
            metrics += state_metrics(value, device, text_values=text_values, prefix=f"{name}_")
            continue
        on, off = binaries.get(name, (None, None))
        try:
            metrics.append(Metric(name, to_number(value, on=on, off=off), units.get(name)))
        except PayloadError:
            if text_values:
                metrics.append(Metric(name, None, units.get(name), text=str(value)))
    return metrics


def availability_kind(payload: bytes) -> EventKind:
    """ONLINE/OFFLINE from ``{"state":"online"}`` (2.x) or ``online`` (1.x); PayloadError else."""
    value = decode(payload)
    if isinstance(value, dict):
        value = value.get("state")
    if value in ("online", "offline"):
        return EventKind.ONLINE if value == "online" else EventKind.OFFLINE
    raise PayloadError(f"availability must be online or offline, got {str(value)[:40]!r}")


class Zigbee2Mqtt:
    """Reads one Zigbee2MQTT bridge's topics into readings and device events."""

    def __init__(self, preset: Zigbee2MqttPreset, output: Output, schedule: Schedule) -> None:
        self.preset = preset
        self.output = output
        self.schedule = schedule
        self.base = preset.base_topic + "/"
        self.devices: dict[str, Zigbee2MqttDevice] = {}  # by ieee_address
        self.by_name: dict[str, Zigbee2MqttDevice] = {}
        self.groups: set[str] = set()
        self.names: set[str] = set()  # device and group friendly names, for resolving topics
        self.devices_known = False
        self.pending: list[Message] = []

    def subscriptions(self) -> list[str]:
        return [self.base + "#"]

    def handle(self, message: Message) -> bool:
        if not message.topic.startswith(self.base):
            return False
        rest = message.topic[len(self.base) :]
        if rest.startswith("bridge/") or rest == "bridge":
            self._bridge(rest.removeprefix("bridge/"), message)
            return True
        resolved = resolve_friendly_name(rest, self.names) or guess_friendly_name(rest)
        name, suffix = resolved
        if suffix.split("/")[0] in ("set", "get") or name in self.groups:
            return True
        if name not in self.by_name and self._hold(message):
            return True
        if suffix == "":
            self._state(name, message)
        elif suffix == "availability":
            self._availability(name, message)
        else:
            log.debug("zigbee2mqtt: ignoring topic %s", message.topic)
        return True

    def _hold(self, message: Message) -> bool:
        """Keep a message of a not-yet-known device until the device list arrives."""
        if self.devices_known or self.preset.device_id_from is DeviceIdSource.FRIENDLY_NAME:
            return False
        if len(self.pending) >= MAX_PENDING:
            return False
        if not self.pending:
            self.schedule(self.preset.devices_wait_s, self.release_pending)
        self.pending.append(message)
        return True

    def release_pending(self) -> None:
        """Handle held messages: with the device list if it came, else by friendly name."""
        if not self.devices_known and self.pending:
            log.warning(
                "zigbee2mqtt: no %sbridge/devices after %.0f s; keying %d held messages by friendly name",
                self.base,
                self.preset.devices_wait_s,
                len(self.pending),
            )
        self.devices_known = True
        held, self.pending = self.pending, []
        for message in held:
            self.handle(message)

    def _device_id(self, name: str) -> tuple[str, dict[str, str], Zigbee2MqttDevice | None]:
        device = self.by_name.get(name)
        if device is None:
            return name, {"friendly_name": name}, None
        if self.preset.device_id_from is DeviceIdSource.FRIENDLY_NAME:
            return device.friendly_name, device.labels(), device
        return device.ieee_address, device.labels(), device

    def _state(self, name: str, message: Message) -> None:
        device_id, labels, device = self._device_id(name)
        try:
            state = decode_json(message.payload)
            if not isinstance(state, dict):
                raise PayloadError("Zigbee2MQTT state must be a JSON object")
        except PayloadError as exc:
            self.output.dead_letter(message, str(exc), device_id)
            return
        metrics = state_metrics(
            state,
            device,
            exclude=self.preset.exclude_fields,
            text_values=self.preset.text_values,
        )
        if metrics:
            self.output.reading(device_id, metrics, message.ts_us, labels)

    def _availability(self, name: str, message: Message) -> None:
        device_id, labels, _ = self._device_id(name)
        try:
            kind = availability_kind(message.payload)
        except PayloadError as exc:
            self.output.dead_letter(message, str(exc), device_id)
            return
        self.output.event(
            device_id, kind, f"{name} is {kind.value.lower()}", message.ts_us, labels=labels
        )

    def _bridge(self, what: str, message: Message) -> None:
        try:
            if what == "devices":
                self._devices(message)
            elif what == "groups":
                groups = decode_json(message.payload)
                self.groups = {str(g.get("friendly_name")) for g in groups if isinstance(g, dict)}
                self.names = set(self.by_name) | self.groups
            elif what == "state":
                kind = availability_kind(message.payload)
                device = self.preset.bridge_device_id
                self.output.event(device, kind, f"bridge is {kind.value.lower()}", message.ts_us)
            elif what == "event":
                self._bridge_event(message)
        except (PayloadError, TypeError, KeyError, AttributeError) as exc:
            reason = (
                str(exc)
                if isinstance(exc, PayloadError)
                else f"unexpected bridge/{what} shape: {exc!r}"
            )
            self.output.dead_letter(message, reason)

    def _devices(self, message: Message) -> None:
        entries = decode_json(message.payload)
        if not isinstance(entries, list):
            raise PayloadError("bridge/devices must be a JSON array")
        found = {}
        for entry in entries:
            if isinstance(entry, dict) and entry.get("type") != "Coordinator":
                device = Zigbee2MqttDevice.from_bridge(entry)
                found[device.ieee_address] = device
        for ieee, device in found.items():
            old = self.devices.get(ieee)
            if old is None:
                self._device_event(device, EventKind.DISCOVERED, "joined the list", message.ts_us)
            elif old.friendly_name != device.friendly_name:
                text = f"renamed from {old.friendly_name} to {device.friendly_name}"
                self._device_event(device, EventKind.INFO, text, message.ts_us)
        for ieee, device in self.devices.items():
            if ieee not in found:
                self._device_event(device, EventKind.REMOVED, "left the list", message.ts_us)
        self.devices = found
        self.by_name = {d.friendly_name: d for d in found.values()}
        self.names = set(self.by_name) | self.groups
        if not self.devices_known:
            self.release_pending()

    def _device_event(
        self, device: Zigbee2MqttDevice, kind: EventKind, text: str, ts_us: int
    ) -> None:
        device_id = self._device_id_of(device)
        details = {"model": device.model, "vendor": device.vendor}
        self.output.event(
            device_id, kind, f"{device.friendly_name} {text}", ts_us, details, device.labels()
        )

    def _device_id_of(self, device: Zigbee2MqttDevice) -> str:
        if self.preset.device_id_from is DeviceIdSource.FRIENDLY_NAME:
            return device.friendly_name
        return device.ieee_address

    def _bridge_event(self, message: Message) -> None:
        event = decode_json(message.payload)
        kind = BRIDGE_EVENTS.get(str(event.get("type")))
        if kind is None:
            return
        data = event.get("data") or {}
        ieee, name = str(data.get("ieee_address", "")), str(data.get("friendly_name", ""))
        if not ieee:
            raise PayloadError(f"bridge/event {event['type']} without data.ieee_address")
        status = str(data.get("status", ""))
        if event["type"] == "device_interview" and status == "failed":
            kind = EventKind.ERROR
        known = self.devices.get(ieee)
        if self.preset.device_id_from is DeviceIdSource.FRIENDLY_NAME:
            device_id = name or ieee
        else:
            device_id = ieee
        labels = known.labels() if known else {"friendly_name": name or ieee, "ieee_address": ieee}
        details = {"event": str(event["type"])} | ({"status": status} if status else {})
        text = f"{name or ieee}: {event['type']}" + (f" {status}" if status else "")
        self.output.event(device_id, kind, text, message.ts_us, details, labels)
