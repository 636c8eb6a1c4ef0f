"""Home Assistant writer: anomaly scores, RUL predictions and open alerts as MQTT sensors.

Each Sentio device becomes a Home Assistant device (manufacturer "Sentio IoT", model its
``kind`` label) with sensors announced through MQTT discovery::

    <discovery_prefix>/sensor/<device>/<object>/config   retained JSON (below)
    <base_topic>/<device>/<object>/state                 JSON; value_template picks the state
    <base_topic>/availability                            online / offline (retained; last will)

- ``<metric>_anomaly_score``: the latest anomaly score of a metric (state_class measurement);
  value, threshold, detector ... as attributes.
- ``remaining_useful_life``: the RUL prediction, in ``h`` (device class duration) when the
  model predicts hours, else in its own unit (``cycles``).
- ``alert_<type>``: an enum sensor, the alert's severity while it is open (FIRING or
  ACKNOWLEDGED), ``ok`` once resolved.

A config is published (retained) before the first state of its sensor and again when Home
Assistant announces itself (``<discovery_prefix>/status`` = ``online``). States are
retained by default: Home Assistant subscribes to a state topic only after it read the
config, and a retained state is what it finds then. A batch counts as written once the
broker acknowledged every message (QoS 1 by default); a broker that is away or slow is
BackendUnavailable. With MQTT 5 (the default) an acknowledgement may refuse a message
(reason code 0x80 or above: not authorized by the broker's ACL, too large, quota exceeded):
the records behind it go to the dead-letter topic with the broker's reason, never counted
as written. MQTT 3.1.1 brokers acknowledge (or drop) a refused message like a taken one.
TLS: ``tls`` with ``ca_file`` and, for a broker that asks for one, a client certificate
(``cert_file``, ``key_file``, ``key_password``), see :mod:`sentio_iot.mqtt_tls`. Several sink processes share one availability topic: the sink is
"online" while any of them last said so.

Tested against Home Assistant core 2024.3.3 (tests/integration/test_homeassistant_real.py):
the sensors appear with their device class, unit and device, follow the states and turn
unavailable when the sink stops. Its MQTT sensors take no ``options`` yet (added in 2024.9,
home-assistant/core PR #123248), so an alert sensor there is an enum without its list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from sentio_iot import __version__
from sentio_iot.config import SentioConfig
from sentio_iot.errors import ConfigError
from sentio_iot.mqtt_tls import MqttTls
from sentio_iot.plugins import SinkPlugin
from sentio_iot.secret_values import secret_value
from sentio_iot.settings.sinks import HomeAssistantSinkSettings
from sentio_iot.sinks.writer import BackendUnavailable, RejectedRecords, SinkRecord, Writer

log = logging.getLogger(__name__)

FIELD = "sinks.homeassistant"
ONLINE, OFFLINE = "online", "offline"
OPEN_STATUSES = ("FIRING", "ACKNOWLEDGED")
ALERT_STATES = ["ok", "critical", "major", "minor", "warning", "indeterminate"]
RUL_UNITS = {"hours": ("h", "duration"), "cycles": ("cycles", None)}  # unit, device class


def topic_id(text: str) -> str:
    """A node or object id Home Assistant accepts: ``[a-zA-Z0-9_-]``."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", text)


def iso_time(ts_us: int) -> str:
    seconds, micros = divmod(ts_us, 1_000_000)  # exact: no float rounding of microseconds
    moment = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micros)
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Sensor:
    """One Home Assistant sensor and its latest state, as found in one record."""

    device_id: str
    kind: str  # the device's kind label, its model in Home Assistant
    object_id: str
    name: str
    value_key: str  # the state JSON key the sensor shows
    state: Mapping[str, Any]
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = "measurement"
    options: tuple[str, ...] = ()


def anomaly_sensor(value: Mapping[str, Any]) -> Sensor:
    metric = str(value["metric"])
    state = {
        "score": float(value["score"]),
        "value": float(value["value"]),
        "threshold": float(value["threshold"]),
        "expected": value.get("expected"),
        "lower": value.get("lower"),
        "upper": value.get("upper"),
        "detector": str(value["detector"]),
        "detector_version": str(value["detector_version"]),
        "time": iso_time(int(value["ts"])),
    }
    return Sensor(
        device_id=str(value["device_id"]),
        kind=str((value.get("labels") or {}).get("kind", "")),
        object_id=topic_id(f"{metric}_anomaly_score"),
        name=f"{metric} anomaly score",
        value_key="score",
        state={k: v for k, v in state.items() if v is not None},
    )


def rul_sensor(value: Mapping[str, Any]) -> Sensor:
    unit, device_class = RUL_UNITS.get(str(value["rul_unit"]), (str(value["rul_unit"]), None))
    state = {
        "rul": float(value["rul"]),
        "lower": value.get("lower"),
        "upper": value.get("upper"),
        "model": str(value["model_name"]),
        "model_version": str(value["model_version"]),
        "time": iso_time(int(value["ts"])),
    }
    return Sensor(
        device_id=str(value["device_id"]),
        kind=str((value.get("labels") or {}).get("kind", "")),
        object_id="remaining_useful_life",
        name="Remaining useful life",
        value_key="rul",
        state={k: v for k, v in state.items() if v is not None},
        unit=unit,
        device_class=device_class,
    )


def alert_sensor(value: Mapping[str, Any]) -> Sensor:
    alert_type = str(value["type"])
    status = str(value["status"])
    severity = str(value["severity"]).lower()
    if severity not in ALERT_STATES:
        raise ValueError(f"unknown severity {value['severity']!r}")
    state = {
        "state": severity if status in OPEN_STATUSES else "ok",
        "status": status,
        "alert_id": str(value["alert_id"]),
        "severity": str(value["severity"]),
        "message": str(value["message"]),
        "since": iso_time(int(value["start_ts"])),
    }
    return Sensor(
        device_id=str(value["device_id"]),
        kind=str((value.get("labels") or {}).get("kind", "")),
        object_id=topic_id(f"alert_{alert_type}"),
        name=f"{alert_type.replace('_', ' ')} alert",
        value_key="state",
        state=state,
        device_class="enum",
        state_class=None,  # Home Assistant refuses a state class on enum sensors
        options=tuple(ALERT_STATES),
    )


SENSORS = {"anomalies": anomaly_sensor, "rul": rul_sensor, "alerts": alert_sensor}


class Discovery:
    """Topics and payloads of the discovery protocol for one settings section."""

    def __init__(self, settings: HomeAssistantSinkSettings) -> None:
        self.settings = settings
        self.availability_topic = f"{settings.base_topic}/availability"
        self.status_topic = f"{settings.discovery_prefix}/status"

    def config_topic(self, sensor: Sensor) -> str:
        node = topic_id(sensor.device_id)
        return f"{self.settings.discovery_prefix}/sensor/{node}/{sensor.object_id}/config"

    def state_topic(self, sensor: Sensor) -> str:
        return f"{self.settings.base_topic}/{topic_id(sensor.device_id)}/{sensor.object_id}/state"

    def config(self, sensor: Sensor) -> dict[str, Any]:
        node = topic_id(sensor.device_id)
        state_topic = self.state_topic(sensor)
        config: dict[str, Any] = {
            "name": sensor.name,
            "unique_id": f"sentio_{node}_{sensor.object_id}",
            "state_topic": state_topic,
            "value_template": f"{{{{ value_json.{sensor.value_key} }}}}",
            "json_attributes_topic": state_topic,
            "availability_topic": self.availability_topic,
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": {
                "identifiers": [f"sentio_{node}"],
                "name": sensor.device_id,
                "manufacturer": "Sentio IoT",
                "model": sensor.kind or "device",
            },
            "origin": {"name": "Sentio IoT", "sw_version": __version__},
        }
        if sensor.unit:
            config["unit_of_measurement"] = sensor.unit
        if sensor.device_class:
            config["device_class"] = sensor.device_class
        if sensor.state_class:
            config["state_class"] = sensor.state_class
        if sensor.options:
            config["options"] = list(sensor.options)
        if self.settings.expire_after_s:
            config["expire_after"] = self.settings.expire_after_s
        return config


def payload(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


class HomeAssistantWriter(Writer):
    """Publishes sensors to the MQTT broker Home Assistant listens to."""

    topics = ("anomalies", "rul", "alerts")

    def __init__(self, config: SentioConfig) -> None:
        self.settings = config.sinks.homeassistant
        self.startup_timeout_s = config.sinks.startup_timeout_s
        self.discovery = Discovery(self.settings)
        self._configs: dict[str, bytes] = {}  # config topic -> payload the broker acknowledged
        self._states: dict[str, bytes] = {}  # state topic -> latest payload
        self._lock = threading.Lock()  # the two dicts are read in paho's thread
        self._connected = threading.Event()
        self._refused: str | None = None
        self._publish_refusals: dict[int, str] = {}  # message id -> the broker's reason
        self._tls = MqttTls(
            FIELD,
            self.settings.ca_file,
            self.settings.cert_file,
            self.settings.key_file,
            self.settings.key_password,
        )
        self._client = self._new_client()

    def _new_client(self) -> mqtt.Client:
        settings = self.settings
        client_id = (
            settings.client_id or f"sentio-sink-homeassistant-{socket.gethostname()}-{os.getpid()}"
        )
        version = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version)
        if settings.username is not None:
            client.username_pw_set(settings.username, secret_value(settings.password))
        if settings.tls:
            client.tls_set_context(self._tls.context())
        client.will_set(self.discovery.availability_topic, OFFLINE, qos=settings.qos, retain=True)
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        client.on_connect = self._paho_connected
        client.on_disconnect = self._paho_disconnected
        client.on_message = self._paho_message
        client.on_publish = self._paho_published
        return client

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        self._client.connect_async(settings.host, settings.port, settings.keepalive_s)
        self._client.loop_start()
        connected = await asyncio.to_thread(self._connected.wait, self.startup_timeout_s)
        if self._refused is not None:
            await self._stop_client()
            raise ConfigError(
                f"{FIELD}.username: the broker {settings.host}:{settings.port} refused the "
                f"connection ({self._refused}); check username and password"
            )
        if not connected:
            await self._stop_client()
            if settings.tls:
                problem = await asyncio.to_thread(self._tls.diagnose, settings.host, settings.port)
                if problem is not None:
                    raise ConfigError(problem)
            raise ConfigError(
                f"{FIELD}.host: cannot reach the MQTT broker {settings.host}:{settings.port} "
                f"within {self.startup_timeout_s:g} s; check host and port"
            )
        log.info(
            "publishing sensors to %s:%d (discovery prefix %s)",
            settings.host,
            settings.port,
            settings.discovery_prefix,
        )

    async def close(self) -> None:
        if self._connected.is_set():
            info = self._client.publish(
                self.discovery.availability_topic, OFFLINE, qos=self.settings.qos, retain=True
            )
            await asyncio.to_thread(
                self._wait_acknowledged, [info], self.settings.publish_timeout_s
            )
        await self._stop_client()

    async def _stop_client(self) -> None:
        if self._client.is_connected():  # paho logs an error for a disconnect without one
            self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)

    # -- writing ---------------------------------------------------------------------------

    async def write(self, batch: Sequence[SinkRecord]) -> None:
        sensors: dict[str, Sensor] = {}  # state topic -> its latest sensor in the batch
        behind: dict[str, list[int]] = {}  # state topic -> the records that led to it
        reasons: dict[int, str] = {}
        for index, record in enumerate(batch):
            try:
                sensor = self.sensor(record)
            except (KeyError, TypeError, ValueError) as exc:
                reasons[index] = f"record does not fit the {record.catalog_name} contract: {exc!r}"
                continue
            topic = self.discovery.state_topic(sensor)
            sensors.pop(topic, None)  # keep batch order for the latest
            sensors[topic] = sensor
            behind.setdefault(topic, []).append(index)
        if sensors:
            refused = await self._publish(list(sensors.values()))
            for topic, answer in refused.items():
                for index in behind[topic]:
                    reasons[index] = answer
        if reasons:
            raise RejectedRecords(reasons)

    def sensor(self, record: SinkRecord) -> Sensor:
        value = record.value
        if isinstance(value, bytes):
            raise TypeError(f"{record.catalog_name} records are Avro, got raw bytes")
        make = SENSORS.get(record.catalog_name)
        if make is None:
            raise ValueError(f"no sensor for records of {record.catalog_name}")
        return make(value)

    async def _publish(self, sensors: list[Sensor]) -> dict[str, str]:
        """Publish configs and states; ``state topic -> the broker's refusal`` for the sensors
        whose config or state the broker refused (MQTT 5 acknowledgements)."""
        if not self._connected.is_set():
            raise BackendUnavailable(f"not connected to {self.settings.host}:{self.settings.port}")
        messages: list[tuple[str, bytes, bool, str]] = []  # topic, body, retain, state topic
        new_configs: dict[str, bytes] = {}
        for sensor in sensors:
            config_topic = self.discovery.config_topic(sensor)
            state_topic = self.discovery.state_topic(sensor)
            config = payload(self.discovery.config(sensor))
            if self._configs.get(config_topic) != config:
                new_configs[config_topic] = config
                messages.append((config_topic, config, True, state_topic))
            messages.append(
                (state_topic, payload(sensor.state), self.settings.retain_states, state_topic)
            )
        infos = [
            self._client.publish(topic, body, qos=self.settings.qos, retain=retain)
            for topic, body, retain, _ in messages
        ]
        await asyncio.to_thread(self._wait_acknowledged, infos, self.settings.publish_timeout_s)
        refused: dict[str, str] = {}
        with self._lock:
            for info, (topic, _, _, state_topic) in zip(infos, messages, strict=True):
                reason = self._publish_refusals.pop(info.mid, None)
                if reason is not None:
                    refused.setdefault(
                        state_topic,
                        f"the broker {self.settings.host}:{self.settings.port} refused the "
                        f"publish to {topic}: {reason}; check its ACL and message size limit "
                        "for this client",
                    )
            self._configs.update(
                (t, body) for t, body in new_configs.items() if not self._refused_config(t, refused)
            )
            self._states.update(
                (topic, body)
                for topic, body, _, state_topic in messages
                if topic == state_topic and state_topic not in refused
            )
        if refused:
            log.warning(
                "the broker refused %d sensor(s); first: %s",
                len(refused),
                next(iter(refused.values())),
            )
        return refused

    def _refused_config(self, config_topic: str, refused: dict[str, str]) -> bool:
        return any(f"publish to {config_topic}:" in answer for answer in refused.values())

    def _wait_acknowledged(self, infos: list[mqtt.MQTTMessageInfo], timeout_s: float) -> None:
        """In a worker thread: every message acknowledged, else BackendUnavailable."""
        deadline = time.monotonic() + timeout_s
        for info in infos:
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise BackendUnavailable(f"publish failed: {mqtt.error_string(info.rc)}")
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                raise BackendUnavailable(f"publish failed: {exc}") from exc
            if not info.is_published():
                raise BackendUnavailable(
                    f"the broker did not acknowledge {len(infos)} message(s) within {timeout_s:g} s"
                )

    # -- paho's thread ---------------------------------------------------------------------

    def _paho_connected(
        self, client: mqtt.Client, _: Any, flags: Any, reason: ReasonCode, __: Any
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._connected.set()  # wakes start(), which reports the refusal
            return
        self._refused = None
        client.subscribe(self.discovery.status_topic, qos=1)
        client.publish(
            self.discovery.availability_topic, ONLINE, qos=self.settings.qos, retain=True
        )
        self._republish(client, with_states=True)  # a restarted broker may have lost them
        self._connected.set()

    def _paho_published(
        self, client: mqtt.Client, _: Any, mid: int, reason: ReasonCode, __: Any
    ) -> None:
        if reason.is_failure:  # MQTT 5: a PUBACK/PUBREC with a reason code of 0x80 or more
            with self._lock:
                self._publish_refusals[mid] = f"{reason} (MQTT reason code {reason.value})"

    def _paho_disconnected(
        self, client: mqtt.Client, _: Any, flags: Any, reason: ReasonCode, __: Any
    ) -> None:
        self._connected.clear()
        log.warning("disconnected from %s (%s); reconnecting", self.settings.host, reason)

    def _paho_message(self, client: mqtt.Client, _: Any, message: mqtt.MQTTMessage) -> None:
        # Home Assistant's birth message: it (re)started and needs every config again.
        if message.topic == self.discovery.status_topic and message.payload == ONLINE.encode():
            log.info("Home Assistant is online: publishing %d sensor config(s)", len(self._configs))
            self._republish(client, with_states=not self.settings.retain_states)

    def _republish(self, client: mqtt.Client, *, with_states: bool) -> None:
        """Every config (retained), then, if asked, the latest state of every sensor."""
        with self._lock:
            configs = list(self._configs.items())
            states = list(self._states.items()) if with_states else []
        for topic, body in configs:
            client.publish(topic, body, qos=self.settings.qos, retain=True)
        for topic, body in states:
            client.publish(topic, body, qos=self.settings.qos, retain=self.settings.retain_states)


PLUGIN = SinkPlugin(
    name="homeassistant",
    summary="Anomaly scores, RUL and open alerts as Home Assistant sensors (MQTT discovery)",
    settings_model="sentio_iot.settings.sinks:HomeAssistantSinkSettings",
    writer="sentio_iot.sinks.homeassistant:HomeAssistantWriter",
)
