"""Home Assistant WebSocket events: any state_changed event and any get_states answer become
readings, events or a dead letter with a one-line reason; the connector never raises, and a
reading it emits always has a time and finite values."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sentio_iot.errors import DataError
from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.homeassistant_ws.config import HomeAssistantWsConfig
from sentio_iot.producers.homeassistant_ws.connector import HomeAssistantWsConnector
from sentio_iot.producers.homeassistant_ws.states import parse_time_us
from sentio_iot.producers.recording import RecordingEmitter

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
times = (
    st.sampled_from(
        [
            "2026-12-07T10:00:00.123456+00:00",
            "2026-12-07T10:00:01+00:00",
            "2026-12-07",
            "9999-12-31",
        ]
    )
    | st.text(max_size=30)
    | scalars
)
entity_ids = st.sampled_from(
    ["sensor.kitchen_temperature", "binary_sensor.door", "switch.pump", "sensor.x"]
) | st.text(max_size=30)
states = st.sampled_from(["21.5", "unknown", "unavailable", "on", "off", "nan", "inf", "1e999"])
state_objects = st.fixed_dictionaries(
    {},
    optional={
        "entity_id": entity_ids | scalars,
        "state": states | scalars,
        "last_changed": times,
        "last_updated": times,
        "attributes": st.fixed_dictionaries(
            {},
            optional={
                "unit_of_measurement": st.sampled_from(["°C", "W", ""]) | scalars,
                "device_class": st.sampled_from(["temperature", "power"]) | scalars,
                "state_class": st.sampled_from(["measurement"]) | scalars,
                "friendly_name": scalars,
            },
        )
        | documents,
    },
)
events = st.fixed_dictionaries(
    {},
    optional={
        "time_fired": times,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "entity_id": entity_ids | scalars,
                "new_state": st.none() | state_objects | documents,
                "old_state": st.none() | state_objects | documents,
            },
        )
        | documents,
    },
)


def connector(recorder: RecordingEmitter) -> HomeAssistantWsConnector:
    config = HomeAssistantWsConfig.model_validate({"access_token": "fuzz"})
    return HomeAssistantWsConnector(config, recorder, ConnectorContext())


def check(recorder: RecordingEmitter) -> None:
    for letter in recorder.dead_letters:
        assert letter.reason and "\n" not in letter.reason, letter
        json.loads(letter.raw)  # what came over the wire, as JSON
    for reading in recorder.readings:
        assert isinstance(reading.ts_us, int)
        assert all(m.value is None or math.isfinite(m.value) for m in reading.metrics), reading


@given(st.lists(events, min_size=1, max_size=6))
def test_any_state_changed_event_is_read_or_dead_lettered(changes: list[dict[str, Any]]) -> None:
    recorder = RecordingEmitter()
    ws = connector(recorder)
    for event in changes:
        ws._on_state_changed(event)
    check(recorder)


@given(st.lists(state_objects | documents, max_size=6) | documents)
def test_any_get_states_answer_is_read_or_dead_lettered(answer: Any) -> None:
    recorder = RecordingEmitter()
    connector(recorder)._apply_snapshot(answer)
    check(recorder)


@given(times)
def test_a_time_parses_or_is_a_data_error(text: Any) -> None:
    try:
        assert isinstance(parse_time_us(text), int)
    except DataError as exc:
        assert "\n" not in str(exc)
